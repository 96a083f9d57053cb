# Copyright (c) OpenMMLab. All rights reserved.
"""ClipTracker on synthetic clip outputs, against plain references."""
import math

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.structures import InstanceData

from mdqe_mm.models.trackers import ClipTracker, bi_softmax_similarity

H, W = 8, 12
FG = 6.0


def box_logits(num_frames, box, frames_visible=None):
    """Logits (T, H, W): +FG inside ``box`` (y0, x0, y1, x1), -FG outside."""
    logits = torch.full((num_frames, H, W), -FG)
    y0, x0, y1, x1 = box
    for t in range(num_frames):
        if frames_visible is None or t in frames_visible:
            logits[t, y0:y1, x0:x1] = FG
    return logits


def make_dets(items, num_frames=4, num_classes=3):
    """items: list of (score, logits (T, H, W), embed (C,))."""
    dets = InstanceData()
    if not items:
        dets.scores = torch.zeros(0)
        dets.mask_logits = torch.zeros((0, num_frames, H, W))
        dets.embeds = torch.zeros((0, 16))
        dets.cls_probs = torch.zeros((0, num_classes))
        return dets
    dets.scores = torch.tensor([it[0] for it in items])
    dets.mask_logits = torch.stack([it[1] for it in items])
    dets.embeds = torch.stack([it[2] for it in items])
    dets.cls_probs = dets.scores[:, None].repeat(1, num_classes)
    return dets


def run_clip(tracker, start, items, num_frames=4):
    dets = make_dets(items, num_frames)
    ids = tracker.update(dets, list(range(start, start + num_frames)))
    tracker.pop_final_frames(start + 1)
    return ids.tolist()


def embed(axis, scale=4.0, dims=16):
    vec = torch.zeros(dims)
    vec[axis] = scale
    return vec


def ref_bi_softmax(track_embeds, det_embeds):
    a = track_embeds.double().tolist()
    b = det_embeds.double().tolist()
    dots = [[sum(x * y for x, y in zip(r, c)) for c in b] for r in a]
    ns, nd = len(a), len(b)
    out = [[0.0] * nd for _ in range(ns)]
    for i in range(ns):
        for j in range(nd):
            col = sum(math.exp(dots[k][j]) for k in range(ns))
            row = sum(math.exp(dots[i][k]) for k in range(nd))
            over_tracks = math.exp(dots[i][j]) / col
            over_dets = math.exp(dots[i][j]) / row
            parts = []
            if ns > 1 or (ns == 1 and nd == 1):
                parts.append(over_tracks)
            if nd > 1 or (ns == 1 and nd == 1):
                parts.append(over_dets)
            out[i][j] = sum(parts) / len(parts)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize('ns,nd', [(3, 4), (1, 3), (3, 1), (1, 1), (2, 2)])
def test_bi_softmax_similarity(ns, nd):
    gen = torch.Generator().manual_seed(ns * 10 + nd)
    tracks = torch.randn((ns, 6), generator=gen)
    dets = torch.randn((nd, 6), generator=gen)
    torch.testing.assert_close(
        bi_softmax_similarity(tracks, dets).double(),
        ref_bi_softmax(tracks, dets),
        rtol=1e-5,
        atol=1e-6)


def test_build_from_registry_and_validation():
    tracker = MODELS.build(dict(type='ClipTracker', num_frames=2, cls_thr=0.2))
    assert tracker.short_memory_clips == 5
    assert tracker.new_track_score_thr == pytest.approx(0.4)
    assert tracker.match_thr == pytest.approx(0.6)
    assert 'ClipTracker' in repr(tracker)
    with pytest.raises(ValueError, match='max_num_instances'):
        ClipTracker(max_num_instances=0)


def test_persistent_object_keeps_one_id():
    tracker = ClipTracker(num_frames=4, cls_thr=0.1)
    for start in range(8):
        box = (2, start % 6, 6, start % 6 + 4)  # drifts right
        gen = torch.Generator().manual_seed(start)
        noisy = embed(0) + 0.3 * torch.randn(16, generator=gen)
        ids = run_clip(tracker, start, [(0.9, box_logits(4, box), noisy)])
        assert ids == [0]
    assert tracker.num_tracks == 1


def test_memory_embedding_is_exp_weighted_mean_of_last_three_clips():
    tracker = ClipTracker(num_frames=4, cls_thr=0.1)
    gen = torch.Generator().manual_seed(0)
    embeds = {c: embed(0) + torch.randn(16, generator=gen) for c in range(6)}
    present = [0, 1, 3, 5]
    for clip in range(6):
        items = [(0.9, box_logits(4, (2, 2, 6, 6)),
                  embeds[clip])] if clip in present else []
        ids = run_clip(tracker, clip, items)
        assert ids == ([0] if clip in present else [])
        if clip not in present:
            # The memory only changes in clips where the track is matched.
            torch.testing.assert_close(tracker.memory_embeddings()[0].double(),
                                       ref)
            continue
        oldest = max(clip - 2, 0)
        used = [c for c in present if oldest <= c <= clip]
        weights = [math.exp(0.25 * (c - oldest)) for c in used]
        ref = sum(w * embeds[c].double()
                  for w, c in zip(weights, used)) / sum(weights)
        torch.testing.assert_close(
            tracker.memory_embeddings()[0].double(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('gap,expect_same_id', [(6, True), (16, False)])
def test_disappear_and_reappear(gap, expect_same_id):
    """A leaves for ``gap`` clips and comes back elsewhere: re-linked by
    its embedding within the 15-clip long memory, a new track after it."""
    tracker = ClipTracker(num_frames=4, cls_thr=0.1)
    box_a, box_a2, box_b = (0, 0, 3, 3), (5, 8, 8, 12), (4, 4, 7, 8)
    start = 0
    for _ in range(4):
        ids = run_clip(tracker, start, [(0.9, box_logits(4, box_a), embed(0)),
                                        (0.8, box_logits(4, box_b), embed(1))])
        assert ids == [0, 1]
        start += 1
    for _ in range(gap):
        assert run_clip(tracker, start,
                        [(0.8, box_logits(4, box_b), embed(1))]) == [1]
        start += 1
    ids = run_clip(tracker, start, [(0.9, box_logits(4, box_a2), embed(0)),
                                    (0.8, box_logits(4, box_b), embed(1))])
    assert ids == ([0, 1] if expect_same_id else [2, 1])


def test_two_objects_swapping_positions_keep_identity():
    """The objects cross: in the overlap frames each new detection covers
    the other track's old mask, so mask IoU alone would swap the ids; the
    clip-query embeddings keep them."""
    box_left, box_right = (2, 2, 6, 7), (2, 4, 6, 9)

    def sequence(tracker):
        first = run_clip(tracker, 0,
                         [(0.9, box_logits(4, box_left), embed(0)),
                          (0.9, box_logits(4, box_right), embed(1))])
        crossed = run_clip(tracker, 1,
                           [(0.9, box_logits(4, box_right), embed(0)),
                            (0.9, box_logits(4, box_left), embed(1))])
        return first, crossed

    first, crossed = sequence(ClipTracker(num_frames=4, cls_thr=0.1))
    assert first == [0, 1]
    assert crossed == [0, 1]
    # Control: without the embedding term the masks swap the identities.
    _, crossed = sequence(
        ClipTracker(num_frames=4, cls_thr=0.1, emb_weight=0.0))
    assert crossed == [1, 0]


def test_duplicates_and_low_scores_are_dropped():
    tracker = ClipTracker(num_frames=4, cls_thr=0.1)
    box_a, box_n = (1, 1, 5, 5), (4, 7, 8, 12)
    assert run_clip(tracker, 0, [(0.9, box_logits(4, box_a), embed(0))]) == [0]
    ids = run_clip(
        tracker,
        1,
        [
            (0.9, box_logits(4, box_a), embed(0)),  # A again
            (0.9, box_logits(4, box_a), embed(2)),  # mask duplicate of A
            (0.9, box_logits(4, box_n), embed(3)),  # a new object
            (0.15, box_logits(4, (0, 9, 2, 12)), embed(4)),  # too weak
        ])
    assert ids == [0, -1, 1, -1]
    assert tracker.num_tracks == 2


def test_track_slots_are_capped():
    tracker = ClipTracker(num_frames=2, cls_thr=0.1, max_num_instances=2)
    items = [(0.9, box_logits(2, (0, 4 * i, 2, 4 * i + 3)), embed(i))
             for i in range(3)]
    ids = tracker.update(make_dets(items), [0, 1])
    assert ids.tolist() == [0, 1, -1]
    assert tracker.num_dropped_for_capacity == 1


def test_mean_logits_and_mask_iou_against_reference():
    gen = torch.Generator().manual_seed(7)
    tracker = ClipTracker(num_frames=3, cls_thr=0.1)
    emitted = {}
    for start in range(3):
        logits = torch.randn((3, H, W), generator=gen) * 2 + 0.5
        emitted[start] = logits.double()
        assert tracker.update(
            make_dets([(0.9, logits, embed(0))]),
            list(range(start, start + 3))).tolist() == [0]
        if start < 2:
            assert [f for f, _ in tracker.pop_final_frames(start + 1)
                    ] == [start]
    # Open frames 2, 3, 4: frame 2 is covered by clips 0, 1, 2, etc.
    assert tracker.open_frames == [2, 3, 4]
    for frame in (2, 3, 4):
        covering = [
            emitted[s][frame - s] for s in emitted if s <= frame < s + 3
        ]
        ref = sum(covering) / len(covering)
        torch.testing.assert_close(
            tracker.track_mean_logits(frame)[0].double(),
            ref,
            rtol=1e-5,
            atol=1e-5)

    new = torch.randn((2, 3, H, W), generator=gen) * 2
    new[1, 0] = -5.0  # det 1 is empty on the overlap frames 3, 4 ...
    new[1, 1] = -5.0
    ious = tracker.mask_iou_scores(new, [3, 4, 5])
    for det in range(2):
        inter = union = 0
        for local, frame in ((0, 3), (1, 4)):
            covering = [
                emitted[s][frame - s] for s in emitted if s <= frame < s + 3
            ]
            mean = sum(covering) / len(covering)
            for y in range(H):
                for x in range(W):
                    a = 1 / (1 + math.exp(-mean[y, x].item())) > 0.5
                    b = 1 / (1 + math.exp(-new[det, local, y, x].item())) > 0.5
                    inter += a and b
                    union += a or b
        ref = inter / (union + 1e-6) if inter else 0.0
        assert ious[0, det].item() == pytest.approx(ref, abs=1e-6)
    assert ious[0, 1].item() == 0.0  # ... so its IoU is 0


def test_out_of_order_clips_are_rejected():
    tracker = ClipTracker(num_frames=2)
    tracker.update(
        make_dets([(0.9, box_logits(2, (0, 0, 2, 2)), embed(0))]), [0, 1])
    with pytest.raises(RuntimeError, match='pop_final_frames'):
        tracker.update(make_dets([], 2), [2, 3])
    with pytest.raises(ValueError, match='increasing'):
        tracker.update(make_dets([], 2), [1, 1])


def test_carry_over_window_matches_the_reference_memory():
    """Embeddings: the carried one is the exp(0.25 i) weighted mean of the
    track's embeddings in the last max(3, T-1) clips (i = place among them);
    the next clips' memory treats it as the clip just before them. Masks:
    open frames keep their mean as one clip."""
    torch.manual_seed(0)
    tracker = ClipTracker(num_frames=4, cls_thr=0.1)
    base = embed(0, scale=6.0)
    embeds = [base + 0.3 * torch.randn(16) for _ in range(6)]
    logits = [torch.randn(4, H, W) for _ in range(6)]
    inside = 20 * (box_logits(4, (1, 1, 6, 8)) > 0)
    for clip in range(4):  # one track, clips 0..3
        items = [(0.9, logits[clip] + inside, embeds[clip])]
        assert run_clip(tracker, clip, items) == [0]
    open_sums = {
        frame: entries[0][0].clone() / entries[0][1]
        for frame, entries in tracker._open_frames.items()
    }
    tracker.carry_over_window(4)
    weights = [math.exp(0.25 * i) for i in range(3)]  # clips 1, 2, 3
    carried = sum(w * e.double()
                  for w, e in zip(weights, embeds[1:4])) / sum(weights)
    for frame, entries in tracker._open_frames.items():
        assert entries[0][1] == 1
        torch.testing.assert_close(entries[0][0], open_sums[frame])
    # clip 4: memory = carried (place 0) and clip 4 (place 1)
    run_clip(tracker, 4, [(0.9, logits[4], embeds[4])])
    expected = (carried +
                math.exp(0.25) * embeds[4].double()) / (1 + math.exp(0.25))
    torch.testing.assert_close(
        tracker.memory_embeddings()[0].double(),
        expected,
        rtol=1e-5,
        atol=1e-5)
    # clip 5: carried, 4, 5; clip 6 would drop the carried one
    run_clip(tracker, 5, [(0.9, logits[5], embeds[5])])
    expected = (carried + weights[1] * embeds[4].double() +
                weights[2] * embeds[5].double()) / sum(weights)
    torch.testing.assert_close(
        tracker.memory_embeddings()[0].double(),
        expected,
        rtol=1e-5,
        atol=1e-5)
    with pytest.raises(RuntimeError, match='pop them'):
        tracker.carry_over_window(7)

# Copyright (c) OpenMMLab. All rights reserved.
import math

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch

from mdqe_mm.models.trackers import VideoResultAggregator, rle_boxes


def ref_upsample(logits, factor):
    """Plain aligned-bilinear x``factor`` of one (h, w) map, float64.

    Output pixel (y, x) samples the input, replicated past its bottom/right
    border, at ((y - factor // 2) / factor, (x - factor // 2) / factor),
    clamped at 0 on the top/left."""
    h, w = logits.shape
    src = logits.double().tolist()

    def at(r, c):
        return src[min(r, h - 1)][min(c, w - 1)]

    out = np.zeros((factor * h, factor * w))
    for y in range(factor * h):
        for x in range(factor * w):
            sy = max(y - factor // 2, 0) / factor
            sx = max(x - factor // 2, 0) / factor
            y0, x0 = int(math.floor(sy)), int(math.floor(sx))
            dy, dx = sy - y0, sx - x0
            out[y,
                x] = ((1 - dy) * (1 - dx) * at(y0, x0) +
                      (1 - dy) * dx * at(y0, x0 + 1) + dy *
                      (1 - dx) * at(y0 + 1, x0) + dy * dx * at(y0 + 1, x0 + 1))
    return out


def ref_mask(logits, factor, img_shape, ori_shape):
    up = ref_upsample(logits, factor)[:img_shape[0], :img_shape[1]]
    out = np.zeros(ori_shape, dtype=bool)
    for y in range(ori_shape[0]):
        for x in range(ori_shape[1]):
            sy = int(math.floor(y * img_shape[0] / ori_shape[0]))
            sx = int(math.floor(x * img_shape[1] / ori_shape[1]))
            out[y, x] = 1 / (1 + math.exp(-up[sy, sx])) > 0.5
    return out, up


@pytest.mark.parametrize('factor,img_shape,ori_shape',
                         [(1, (5, 7), (11, 13)), (4, (22, 30), (33, 47))])
def test_masks_to_rles_against_reference(factor, img_shape, ori_shape):
    gen = torch.Generator().manual_seed(factor)
    logits = torch.randn((3, 6, 8), generator=gen) * 3
    agg = VideoResultAggregator(mask_stride=factor)
    agg.start_video(1, img_shape, ori_shape)
    rles = agg.masks_to_rles(logits)
    for idx, rle in enumerate(rles):
        ref, up = ref_mask(logits[idx], factor, img_shape, ori_shape)
        got = mask_util.decode(rle).astype(bool)
        assert got.shape == ori_shape
        # Pixels whose upsampled logit is within float32 noise of 0 may
        # legitimately differ.
        ambiguous = np.zeros(ori_shape, dtype=bool)
        for y in range(ori_shape[0]):
            for x in range(ori_shape[1]):
                sy = y * img_shape[0] // ori_shape[0]
                sx = x * img_shape[1] // ori_shape[1]
                ambiguous[y, x] = abs(up[sy, sx]) < 1e-4
        assert np.array_equal(got[~ambiguous], ref[~ambiguous])
        assert 0 < got.sum() < got.size


def test_masks_too_small_for_image_raise():
    agg = VideoResultAggregator(mask_stride=4)
    agg.start_video(1, (40, 40), (40, 40))
    with pytest.raises(ValueError, match='smaller than the input'):
        agg.masks_to_rles(torch.zeros((1, 8, 8)))


def _feed(agg, clips):
    for start, ids, probs in clips:
        agg.add_clip(start, torch.tensor(ids), torch.tensor(probs))


CLIPS = [  # (clip start, track ids, class probs)
    (0, [0, 1], [[0.9, 0.1], [0.2, 0.6]]),
    (1, [0, -1], [[0.7, 0.35], [0.9, 0.9]]),
    (2, [1], [[0.1, 0.4]]),
    (3, [0, 1], [[0.5, 0.2], [0.3, 0.8]]),
    (4, [2], [[0.05, 0.3]]),
]


def test_clip_score_aggregation():
    agg = VideoResultAggregator(score_aggregation='clip')
    agg.start_video(8, (4, 4), (4, 4))
    _feed(agg, CLIPS)
    track_ids, scores = agg.track_scores()
    assert track_ids == [0, 1, 2]
    for row, track in enumerate(track_ids):
        per_clip = [
            p for _, ids, probs in CLIPS for i, p in zip(ids, probs)
            if i == track
        ]
        for k in range(2):
            values = [p[k] for p in per_clip]
            ref = 0.75 * sum(values) / len(values) + 0.25 * max(values)
            assert scores[row, k].item() == pytest.approx(ref, abs=1e-7)


def test_window_score_aggregation():
    agg = VideoResultAggregator(score_aggregation='window', window_size=2)
    agg.start_video(8, (4, 4), (4, 4))
    _feed(agg, CLIPS)
    track_ids, scores = agg.track_scores()
    num_windows = 4 // 2 + 1  # clip starts 0..4, two per window
    for row, track in enumerate(track_ids):
        for k in range(2):
            per_window = []
            for win in range(num_windows):
                values = [
                    p[k] for start, ids, probs in CLIPS
                    for i, p in zip(ids, probs)
                    if i == track and start // 2 == win
                ]
                per_window.append(sum(values) / len(values) if values else 0.0)
            ref = 0.75 * sum(per_window) / num_windows + 0.25 * max(per_window)
            assert scores[row, k].item() == pytest.approx(ref, abs=1e-7)


def reference_window_scores(clips, window_size, clip_len, track, k):
    """The reference's per-window class means of one track, as its tracker
    keeps them: one slot per clip, and from the second window on slot 0
    holds the previous window's mean, valid for the tracks whose clips
    covered a frame of the new window."""
    last_start = max(start for start, _, _ in clips)
    windows = []
    carried = None
    for win in range(last_start // window_size + 1):
        slots = [] if carried is None else [carried]
        reached = False
        for start, ids, probs in clips:
            if start // window_size != win:
                continue
            for i, p in zip(ids, probs):
                if i == track:
                    slots.append(p[k])
                    reached |= start + clip_len - 1 >= (win + 1) * window_size
        windows.append(sum(slots) / len(slots) if slots else 0.0)
        carried = windows[-1] if reached else None
    return windows


@pytest.mark.parametrize('window_size', [2, 3])
def test_window_score_carry_over(window_size):
    clip_len = 3
    agg = VideoResultAggregator(
        score_aggregation='window', window_size=window_size)
    agg.start_video(8, (4, 4), (4, 4))
    for start, ids, probs in CLIPS:
        agg.add_clip(
            start,
            torch.tensor(ids),
            torch.tensor(probs),
            clip_end=start + clip_len - 1)
    track_ids, scores = agg.track_scores()
    carried_somewhere = False
    for row, track in enumerate(track_ids):
        for k in range(2):
            per_window = reference_window_scores(CLIPS, window_size, clip_len,
                                                 track, k)
            ref = 0.75 * sum(per_window) / len(per_window) + \
                0.25 * max(per_window)
            assert scores[row, k].item() == pytest.approx(ref, abs=1e-7)
            no_carry = reference_window_scores(CLIPS, window_size, 1, track, k)
            carried_somewhere |= no_carry != per_window
    assert carried_somewhere  # the data exercise the carry-over
    agg.window_carry = False
    _, plain = agg.track_scores()
    assert not torch.allclose(plain, scores)
    with pytest.raises(ValueError, match='clip_end'):
        agg.add_clip(
            5, torch.tensor([0]), torch.tensor([[0.5, 0.5]]), clip_end=4)


def test_finalize_multilabel_topk_and_frame_rles():
    agg = VideoResultAggregator(
        min_num_outputs=4, output_score_thr=0.3, mask_stride=1)
    agg.start_video(3, (4, 4), (4, 4))
    _feed(agg, CLIPS)
    logits = torch.full((4, 4), -3.0)
    logits[:2, :2] = 3.0
    agg.add_final_frame(0, {0: logits, 1: -logits})
    agg.add_final_frame(1, {})
    with pytest.raises(RuntimeError, match='never finished'):
        agg.finalize()
    agg.add_final_frame(2, {1: logits})
    with pytest.raises(RuntimeError, match='twice'):
        agg.add_final_frame(2, {})
    out = agg.finalize()

    _, scores = agg.track_scores()
    flat = scores.flatten().tolist()
    num = max(sum(s > 0.3 for s in flat), 4)
    order = sorted(range(len(flat)), key=lambda i: -flat[i])[:num]
    assert out['track_ids'].tolist() == [i // 2 for i in order]
    assert out['labels'].tolist() == [i % 2 for i in order]
    np.testing.assert_allclose(
        out['scores'].numpy(), [flat[i] for i in order], rtol=1e-6)
    assert len(out['frame_rles']) == 3
    for frame, rles in enumerate(out['frame_rles']):
        assert len(rles) == num
        for track, rle in zip(out['track_ids'].tolist(), rles):
            area = int(mask_util.area(rle))
            if (frame, track) == (0, 0) or (frame, track) == (2, 1):
                assert area == 4
            elif (frame, track) == (0, 1):
                assert area == 12
            else:
                assert area == 0
    boxes = rle_boxes(out['frame_rles'][0])
    assert boxes.shape == (num, 4)


def test_invalid_args():
    with pytest.raises(ValueError, match='score_aggregation'):
        VideoResultAggregator(score_aggregation='video')
    with pytest.raises(ValueError, match='window_size'):
        VideoResultAggregator(window_size=0)

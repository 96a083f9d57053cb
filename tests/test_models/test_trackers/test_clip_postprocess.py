# Copyright (c) OpenMMLab. All rights reserved.
"""Each post-processing step against a plain float64 reference (loops)."""
import math

import pytest
import torch

from mdqe_mm.models.trackers import (dedup_by_query_similarity,
                                     mask_quality_scores, postprocess_clip,
                                     remove_empty_masks, select_by_score,
                                     select_top_scores, soft_mask_nms)

TOL = dict(rtol=1e-5, atol=1e-6)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def ref_select_by_score(probs, thr):
    tops = [max(row) for row in probs.double().tolist()]
    order = sorted(range(len(tops)), key=lambda q: -tops[q])
    cut = min(thr, tops[order[0]])
    return [q for q in order if tops[q] >= cut]


def ref_dedup(embeds, thr, max_keep):
    vecs = embeds.double().tolist()
    norms = [math.sqrt(sum(v * v for v in vec)) for vec in vecs]
    keep = []
    for j in range(len(vecs)):
        best = 0.0
        for i in range(j):
            cos = sum(a * b for a, b in zip(vecs[i], vecs[j]))
            best = max(best, cos / (norms[i] * norms[j]))
        if best < thr:
            keep.append(j)
    return keep[:max_keep]


def ref_thin(masks):
    """Every 2nd frame if T >= 5, then rows/cols 0, 2, ... (floor(n/2))."""
    num_frames, h, w = masks.shape[1:]
    frames = list(range(0, num_frames, 2)) if num_frames >= 5 else list(
        range(num_frames))
    return [[[[masks[q, t, 2 * y, 2 * x].item() for x in range(w // 2)]
              for y in range(h // 2)] for t in frames]
            for q in range(masks.shape[0])]


def ref_soft_nms(probs, masks, iou_thr):
    thin = ref_thin(masks.double())
    soft = [[sigmoid(v) for t in q for row in t for v in row] for q in thin]
    hard = [[1.0 if p > 0.5 else 0.0 for p in q] for q in soft]
    num = len(soft)
    max_iou = []
    for j in range(num):
        best = 0.0
        for i in range(j):
            inter = sum(p * b for p, b in zip(soft[i], hard[j]))
            union = sum(soft[i]) + sum(hard[j]) - inter
            best = max(best, inter / (union + 1.0))
        max_iou.append(best)
    rescaled = [[p * (1 - max_iou[q]) for p in probs[q].double().tolist()]
                for q in range(num)]
    keep = [iou < iou_thr for iou in max_iou]
    return rescaled, keep


def ref_quality(masks):
    out = []
    for q in range(masks.shape[0]):
        values = [sigmoid(v) for v in masks[q].double().flatten().tolist()]
        fg = [v for v in values if v > 0.5]
        out.append(sum(fg) / (len(fg) + 1e-6))
    return out


def ref_top(probs, thr):
    tops = [max(row) for row in probs]
    order = sorted(range(len(tops)), key=lambda q: -tops[q])
    return order[:max(sum(t > thr for t in tops), 1)]


def test_select_by_score_keeps_at_least_top():
    gen = torch.Generator().manual_seed(1)
    probs = torch.rand((12, 4), generator=gen) * 0.3
    assert select_by_score(probs,
                           0.2).tolist() == ref_select_by_score(probs, 0.2)
    # Nothing above the threshold: the top query (and ties) survive.
    low = probs * 0.1
    kept = select_by_score(low, 0.5).tolist()
    assert kept == ref_select_by_score(low, 0.5)
    assert len(kept) == 1
    assert select_by_score(torch.zeros((0, 4)), 0.1).numel() == 0


def test_dedup_by_query_similarity():
    gen = torch.Generator().manual_seed(2)
    base = torch.randn((6, 8), generator=gen, dtype=torch.float64)
    # 6 duplicates 0, 7 duplicates 6 (and 0), 8 duplicates 3 (scaled).
    embeds = torch.cat([
        base, base[:1] + 1e-3, base[:1] - 1e-3, 5 * base[3:4],
        torch.randn((2, 8), generator=gen, dtype=torch.float64)
    ]).float()
    keep = dedup_by_query_similarity(embeds, 0.99, max_keep=100)
    assert keep.tolist() == ref_dedup(embeds, 0.99, 100)
    assert 6 not in keep.tolist() and 8 not in keep.tolist()
    keep = dedup_by_query_similarity(embeds, 0.99, max_keep=4)
    assert keep.tolist() == ref_dedup(embeds, 0.99, 4)


def test_remove_empty_masks():
    masks = -torch.rand((4, 3, 5, 6)) - 0.1
    masks[1, 2, 4, 5] = 0.3
    masks[3, 0, 0, 0] = 0.0  # a zero logit is not foreground
    assert remove_empty_masks(masks).tolist() == [False, True, False, False]


@pytest.mark.parametrize('num_frames,h,w', [(3, 7, 9), (6, 8, 10)])
def test_soft_mask_nms(num_frames, h, w):
    gen = torch.Generator().manual_seed(num_frames)
    base = torch.randn((1, num_frames, h, w), generator=gen)
    masks = torch.cat([
        base * 4,
        base * 4 + 0.5 * torch.randn(base.shape, generator=gen),  # overlap
        torch.randn((3, num_frames, h, w), generator=gen) * 4
    ])
    probs = torch.rand((5, 3), generator=gen)
    rescaled, keep = soft_mask_nms(probs, masks, iou_thr=0.5)
    ref_probs, ref_keep = ref_soft_nms(probs, masks, 0.5)
    torch.testing.assert_close(rescaled.double(),
                               torch.tensor(ref_probs, dtype=torch.float64),
                               **TOL)
    assert keep.tolist() == ref_keep
    assert not keep[1]  # the near copy of query 0 is suppressed
    assert keep[0]


def test_mask_quality_scores():
    gen = torch.Generator().manual_seed(3)
    masks = torch.randn((4, 2, 5, 6), generator=gen) * 3
    masks[3] = -5.0  # empty mask scores 0
    torch.testing.assert_close(
        mask_quality_scores(masks).double(),
        torch.tensor(ref_quality(masks), dtype=torch.float64), **TOL)


def test_select_top_scores():
    probs = torch.tensor([[0.05, 0.3], [0.4, 0.1], [0.02, 0.01], [0.2, 0.25]])
    assert select_top_scores(probs,
                             0.1).tolist() == ref_top(probs.tolist(), 0.1)
    assert select_top_scores(probs, 0.9).tolist() == [1]


def test_postprocess_clip_chain_matches_reference():
    gen = torch.Generator().manual_seed(4)
    num_q, num_frames, h, w, num_cls = 14, 4, 8, 10, 3
    probs = torch.rand((num_q, num_cls), generator=gen) * 0.6
    masks = torch.randn((num_q, num_frames, h, w), generator=gen) * 3
    embeds = torch.randn((num_q, 8), generator=gen)
    masks[2] = -4.0  # empty
    masks[5] = masks[1] + 0.1  # NMS duplicate of 1 (ranked below if lower)
    embeds[7] = embeds[0] * 2  # query duplicate
    out = postprocess_clip(probs, masks, embeds, score_thr=0.1, max_dets=10)

    inds = ref_select_by_score(probs, 0.1)
    inds = [inds[k] for k in ref_dedup(embeds[inds], 0.99, 100)]
    inds = [q for q in inds if (masks[q] > 0).any()]
    nms_probs, nms_keep = ref_soft_nms(probs[inds], masks[inds], 0.5)
    quality = ref_quality(masks[inds])
    cand = [(q, [p * quality[k] for p in nms_probs[k]])
            for k, q in enumerate(inds) if nms_keep[k]]
    top = ref_top([c[1] for c in cand], 0.1)
    ref_inds = [cand[k][0] for k in top]
    ref_cls = torch.tensor([cand[k][1] for k in top], dtype=torch.float64)

    assert out.query_inds.tolist() == ref_inds
    torch.testing.assert_close(out.cls_probs.double(), ref_cls, **TOL)
    torch.testing.assert_close(out.scores.double(), ref_cls.max(1)[0], **TOL)
    assert out.labels.tolist() == ref_cls.argmax(1).tolist()
    assert torch.equal(out.mask_logits, masks[ref_inds])
    assert torch.equal(out.embeds, embeds[ref_inds])
    assert 2 not in ref_inds
    assert not {0, 7}.issubset(ref_inds)
    assert not {1, 5}.issubset(ref_inds)


def test_postprocess_clip_rejects_bad_shapes():
    with pytest.raises(ValueError, match='number of queries'):
        postprocess_clip(
            torch.rand(3, 2), torch.rand(4, 1, 2, 2), torch.rand(3, 4))
    with pytest.raises(ValueError, match='expects'):
        postprocess_clip(torch.rand(3, 2), torch.rand(3, 2, 2), torch.rand(3))

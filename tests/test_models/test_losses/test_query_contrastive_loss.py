# Copyright (c) OpenMMLab. All rights reserved.
import itertools
import math

import pytest
import torch
from mmdet.registry import MODELS

from mdqe_mm.models.losses import (QueryContrastiveLoss,
                                   contrastive_candidate_area)


def ref_area(anchor_t, anchor_q, num_frames, num_grid, w):
    area = []
    for t in range(num_frames):
        for q in range(num_grid * num_grid):
            dc = abs(q % num_grid - anchor_q % num_grid)
            dr = abs(q // num_grid - anchor_q // num_grid)
            area.append(max(dc, dr) <= w * (abs(t - anchor_t) + 1))
    return area


def ref_instance(embeds, ids, inst, num_grid, w, pos=None, neg=None):
    """float64 losses of one instance using *all* (or the given) samples."""
    num_frames, num_queries, _ = embeds.shape
    flat = embeds.double().reshape(num_frames * num_queries, -1).tolist()
    flat_ids = ids.reshape(-1).tolist()
    anchor = flat_ids.index(inst)
    area = ref_area(anchor // num_queries, anchor % num_queries, num_frames,
                    num_grid, w)
    if all(i == inst for i, a in zip(flat_ids, area) if a):
        area = [True] * len(area)
    if pos is None:
        pos = [k for k, a in enumerate(area) if a and flat_ids[k] == inst]
        neg = [k for k, a in enumerate(area) if a and flat_ids[k] != inst]

    def dot(u, v):
        return sum(x * y for x, y in zip(u, v))

    a = flat[anchor]
    ctt = []
    for p in pos:
        s = sum(math.exp(dot(flat[n], a) - dot(flat[p], a)) for n in neg)
        ctt.append(math.log(1 + min(s, 1e3)))
    aux = []
    for k, label in [(p, 1.0) for p in pos] + [(n, 0.0) for n in neg]:
        cos = dot(flat[k], a) / math.sqrt(dot(flat[k], flat[k]) * dot(a, a))
        aux.append((cos - label)**2)
    return sum(ctt) / len(ctt), sum(aux) / len(aux)


def test_candidate_area_matches_loops():
    for anchor_t, anchor_q, w in [(0, 27, 2), (1, 0, 3), (2, 63, 1)]:
        got = contrastive_candidate_area(anchor_t, anchor_q, 3, 8, w)
        exp = torch.tensor(ref_area(anchor_t, anchor_q, 3, 8, w))
        assert torch.equal(got.reshape(-1), exp)


@pytest.mark.parametrize('scale', [0.3, 4.0])  # 4.0 hits the 1e3 cap
def test_all_candidates_used_matches_direct_formula(scale):
    gen = torch.Generator().manual_seed(0)
    embeds = (torch.randn(2, 2, 16, 8, generator=gen) * scale).requires_grad_()
    ids = torch.full((2, 2, 16), -1)
    ids[0, 0, 1] = ids[0, 1, 2] = 0
    ids[0, 0, 5] = ids[0, 0, 6] = ids[0, 1, 6] = 1
    ids[1, 1, 9] = ids[1, 1, 10] = 0
    loss = MODELS.build(
        dict(
            type='QueryContrastiveLoss',
            num_grid=4,
            window=5,
            loss_weight_ctt=0.5,
            loss_weight_aux=0.25))
    out = loss(embeds, ids)
    refs = [
        ref_instance(embeds[0].detach(), ids[0], 0, 4, 5),
        ref_instance(embeds[0].detach(), ids[0], 1, 4, 5),
        ref_instance(embeds[1].detach(), ids[1], 0, 4, 5),
    ]
    exp_ctt = sum(r[0] for r in refs) / 3
    exp_aux = sum(r[1] for r in refs) / 3
    assert out['loss_reid_ctt'].item() == pytest.approx(
        0.5 * exp_ctt, rel=1e-5)
    assert out['loss_reid_aux'].item() == pytest.approx(
        0.25 * exp_aux, rel=1e-5)

    (out['loss_reid_ctt'] + out['loss_reid_aux']).backward()
    assert torch.isfinite(embeds.grad).all()
    assert embeds.grad.abs().sum() > 0


def test_window_restricts_candidates():
    gen = torch.Generator().manual_seed(1)
    embeds = torch.randn(1, 2, 64, 4, generator=gen) * 0.5
    ids = torch.full((1, 2, 64), -1)
    ids[0, 0, 27] = ids[0, 1, 28] = ids[0, 1, 36] = 3
    # A strong negative outside the frame-0 window (grid distance 3 > 2).
    embeds[0, 0, 0] = embeds[0, 0, 27] * 5
    loss = QueryContrastiveLoss(window=1, num_grid=8)  # w = max(1, 2)
    out = loss(embeds, ids)
    exp_ctt, exp_aux = ref_instance(embeds[0], ids[0], 3, 8, 2)
    assert out['loss_reid_ctt'].item() == pytest.approx(
        0.5 * exp_ctt, rel=1e-5)
    assert out['loss_reid_aux'].item() == pytest.approx(
        0.5 * exp_aux, rel=1e-5)
    # With a wider window the strong negative counts and the loss grows.
    wide = QueryContrastiveLoss(window=3, num_grid=8)(embeds, ids)
    assert wide['loss_reid_ctt'].item() > out['loss_reid_ctt'].item()


def test_fallback_to_whole_clip():
    gen = torch.Generator().manual_seed(2)
    embeds = torch.randn(1, 1, 64, 4, generator=gen)
    ids = torch.full((1, 1, 64), -1)
    for q in range(64):
        if q % 8 <= 2 and q // 8 <= 2:
            ids[0, 0, q] = 0  # fills the whole window of its anchor (q=0)
    ids[0, 0, 63] = 1
    loss = QueryContrastiveLoss(window=2, num_grid=8, neg_per_frame=100)
    out = loss(embeds, ids)
    r0 = ref_instance(embeds[0], ids[0], 0, 8, 2)
    r1 = ref_instance(embeds[0], ids[0], 1, 8, 2)
    assert out['loss_reid_ctt'].item() == pytest.approx(
        0.5 * (r0[0] + r1[0]) / 2, rel=1e-5)
    assert out['loss_reid_aux'].item() == pytest.approx(
        0.5 * (r0[1] + r1[1]) / 2, rel=1e-5)


def test_sampling_counts_and_seeding():
    gen = torch.Generator().manual_seed(3)
    embeds = torch.randn(1, 1, 16, 4, generator=gen)
    ids = torch.full((1, 1, 16), -1)
    ids[0, 0, [2, 7, 11]] = 0
    # neg_per_frame=1, T=1: one negative and max(1 // 5, 2) = 2 positives.
    loss = QueryContrastiveLoss(num_grid=4, neg_per_frame=1)
    torch.manual_seed(0)
    out = loss(embeds, ids)
    got = (out['loss_reid_ctt'].item() / 0.5,
           out['loss_reid_aux'].item() / 0.5)
    negatives = [k for k in range(16) if k not in (2, 7, 11)]
    candidates = [
        ref_instance(embeds[0], ids[0], 0, 4, 5, list(pos), [neg])
        for pos in itertools.combinations([2, 7, 11], 2) for neg in negatives
    ]
    assert any(c[0] == pytest.approx(got[0], rel=1e-5)
               and c[1] == pytest.approx(got[1], rel=1e-5) for c in candidates)

    torch.manual_seed(0)
    assert loss(embeds,
                ids)['loss_reid_ctt'].item() == out['loss_reid_ctt'].item()
    draws = set()
    for seed in range(20):
        res = loss(embeds, ids, generator=torch.Generator().manual_seed(seed))
        again = loss(
            embeds, ids, generator=torch.Generator().manual_seed(seed))
        assert res['loss_reid_aux'].item() == again['loss_reid_aux'].item()
        draws.add(round(res['loss_reid_aux'].item(), 6))
    assert len(draws) > 1  # the draws are random


def test_no_instance_and_errors():
    embeds = torch.randn(1, 2, 16, 4, requires_grad=True)
    ids = torch.full((1, 2, 16), -1)
    loss = QueryContrastiveLoss(num_grid=4)
    out = loss(embeds, ids)
    assert out['loss_reid_ctt'].item() == 0
    assert out['loss_reid_aux'].item() == 0
    (out['loss_reid_ctt'] + out['loss_reid_aux']).backward()
    with pytest.raises(ValueError, match='grid'):
        QueryContrastiveLoss()(embeds, ids)  # 16 queries vs 14x14
    with pytest.raises(ValueError, match='inst_ids'):
        loss(embeds, ids[:, :1])


@pytest.mark.parametrize('device', [
    'cpu',
    pytest.param(
        'cuda',
        marks=pytest.mark.skipif(
            not torch.cuda.is_available(), reason='requires CUDA'))
])
def test_device_consistency(device):
    gen = torch.Generator().manual_seed(4)
    embeds = torch.randn(2, 2, 16, 8, generator=gen)
    ids = torch.randint(-1, 3, (2, 2, 16), generator=gen)
    loss = QueryContrastiveLoss(num_grid=4, neg_per_frame=3)
    ref = loss(embeds, ids, generator=torch.Generator().manual_seed(0))
    out = loss(
        embeds.to(device),
        ids.to(device),
        generator=torch.Generator().manual_seed(0))
    for key in ('loss_reid_ctt', 'loss_reid_aux'):
        assert out[key].device.type == device
        assert out[key].item() == pytest.approx(ref[key].item(), rel=1e-5)

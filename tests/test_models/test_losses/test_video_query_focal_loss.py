# Copyright (c) OpenMMLab. All rights reserved.
import math

import pytest
import torch
from mmdet.registry import MODELS

from mdqe_mm.models.losses import VideoQueryFocalLoss


def ref_focal(logits, labels, alpha, gamma, no_obj_weight, loss_weight):
    """float64: Σ_q (Σ_k ℓ_qk)·w_q / max(Σ_q w_q, 1)."""
    num_classes = logits.shape[-1]
    logits = logits.double().reshape(-1, num_classes)
    labels = labels.reshape(-1).tolist()
    num, den = 0.0, 0.0
    for row, label in zip(logits.tolist(), labels):
        matched = 0 <= label < num_classes
        total = 0.0
        for k, x in enumerate(row):
            y = 1.0 if matched and k == label else 0.0
            p = 1 / (1 + math.exp(-x))
            ce = max(x, 0) - x * y + math.log1p(math.exp(-abs(x)))
            one_minus_pt = 1 - (p * y + (1 - p) * (1 - y))
            a_t = alpha * y + (1 - alpha) * (1 - y)
            total += a_t * ce * one_minus_pt**gamma
        w = 1.0 if matched else no_obj_weight
        num += total * w
        den += w
    return loss_weight * num / max(den, 1)


@pytest.mark.parametrize('no_obj_weight', [1.0, 0.1])
def test_matches_reference(no_obj_weight):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 4, generator=gen) * 3
    # -1 and K (=4) both mean unmatched; repeats model one-to-many matches.
    labels = torch.tensor([[0, 2, 2, -1, 4, -1], [-1, -1, 3, 3, 1, 4]])
    loss = MODELS.build(
        dict(type='VideoQueryFocalLoss', no_object_weight=no_obj_weight))
    got = loss(logits, labels)
    exp = ref_focal(logits, labels, 0.25, 2.0, no_obj_weight, 2.0)
    assert got.item() == pytest.approx(exp, rel=1e-5)


def test_mean_over_all_queries_with_unit_weights():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(10, 3, generator=gen)
    labels = torch.full((10, ), -1)
    labels[3] = 1
    loss = VideoQueryFocalLoss(loss_weight=1.0)
    got = loss(logits, labels)
    # The normaliser is the 10 queries, not the single match.
    per_query = [
        ref_focal(logits[q:q + 1], labels[q:q + 1], 0.25, 2, 1, 1)
        for q in range(10)
    ]
    assert got.item() == pytest.approx(sum(per_query) / 10, rel=1e-5)


def test_gradient_and_errors():
    logits = torch.zeros(3, 2, requires_grad=True)
    loss = VideoQueryFocalLoss()
    out = loss(logits, torch.tensor([0, -1, 2]))
    out.backward()
    assert logits.grad[0, 0] < 0 and logits.grad[1, 0] > 0
    with pytest.raises(ValueError, match='labels must be in'):
        loss(logits, torch.tensor([0, -2, 1]))
    with pytest.raises(ValueError, match='does not match'):
        loss(logits, torch.tensor([0, 1]))
    with pytest.raises(ValueError):
        VideoQueryFocalLoss(alpha=2.0)


@pytest.mark.parametrize('device', [
    'cpu',
    pytest.param(
        'cuda',
        marks=pytest.mark.skipif(
            not torch.cuda.is_available(), reason='requires CUDA'))
])
def test_device_consistency(device):
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 5, 3, generator=gen)
    labels = torch.tensor([[0, -1, 2, 3, 1], [-1, -1, 0, 0, 3]])
    loss = VideoQueryFocalLoss()
    ref = loss(logits, labels)
    out = loss(logits.to(device), labels.to(device))
    assert out.device.type == device
    assert out.item() == pytest.approx(ref.item(), rel=1e-5)

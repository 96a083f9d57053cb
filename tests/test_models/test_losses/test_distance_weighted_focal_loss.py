# Copyright (c) OpenMMLab. All rights reserved.
import math

import pytest
import torch
from mmdet.registry import MODELS

from mdqe_mm.models.losses import DistanceWeightedFocalLoss


def ref_loss(logits, labels, class_dist, num_points, loss_weight=2.0):
    """float64 loops: uncertainty top-k, focal terms, per-map positives."""
    num_maps, height, width, num_classes = logits.shape
    logits = logits.double()
    class_dist = class_dist.double()
    per_map = []
    for m in range(num_maps):
        pixels = []
        for i in range(height):
            for j in range(width):
                u = 0.0
                for k in range(num_classes):
                    p = 1 / (1 + math.exp(-logits[m, i, j, k].item()))
                    y = 1.0 if labels[m, i, j] == k else 0.0
                    u += num_classes * (1 - p) * y + p * (1 - y)
                pixels.append((u, i, j))
        pixels.sort(key=lambda item: -item[0])
        chosen = pixels[:min(num_points, height * width)]
        total, num_pos = 0.0, 0
        for _, i, j in chosen:
            if labels[m, i, j] >= 0:
                num_pos += 1
            for k in range(num_classes):
                x = logits[m, i, j, k].item()
                y = 1.0 if labels[m, i, j] == k else 0.0
                d = class_dist[m, i, j, k].item()
                p = 1 / (1 + math.exp(-x))
                ce = max(x, 0) - x * y + math.log1p(math.exp(-abs(x)))
                p_t = (1 - p) * y + p * (1 - y)
                g_t = d * y + (1 - d) * (1 - y)
                total += ce * p_t**2 * g_t**2
        per_map.append(total / max(num_pos, 1))
    return loss_weight * sum(per_map) / num_maps


def make_inputs(seed=0, num_maps=3, height=4, width=5, num_classes=3):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(
        num_maps, height, width, num_classes, generator=gen) * 2
    labels = torch.randint(
        -1, num_classes, (num_maps, height, width), generator=gen)
    labels[0] = -1  # a map without positives (normaliser clamps to 1)
    dist = torch.rand(num_maps, height, width, generator=gen)
    dist[labels < 0] = 0
    return logits, labels, dist


def scalar_to_class_dist(labels, dist, num_classes):
    class_dist = torch.zeros(*labels.shape, num_classes, dtype=dist.dtype)
    for idx in (labels >= 0).nonzero().tolist():
        class_dist[tuple(idx) + (int(labels[tuple(idx)]), )] = dist[tuple(idx)]
    return class_dist


@pytest.mark.parametrize('num_points', [12544, 7, 1])
def test_matches_reference(num_points):
    logits, labels, dist = make_inputs()
    loss = DistanceWeightedFocalLoss(num_points=num_points)
    got = loss(logits, labels, dist)
    exp = ref_loss(logits, labels, scalar_to_class_dist(labels, dist, 3),
                   num_points)
    assert got.item() == pytest.approx(exp, rel=1e-5, abs=1e-7)


def test_per_class_dist_and_registry():
    logits, labels, dist = make_inputs(seed=1)
    class_dist = scalar_to_class_dist(labels, dist, 3)
    # A stale value on another channel (an overwritten pixel) lowers the
    # weight of that negative: γ_t = 1 − dist.
    pos = (labels >= 0).nonzero()[0].tolist()
    other = (int(labels[tuple(pos)]) + 1) % 3
    class_dist[tuple(pos) + (other, )] = 0.7
    loss = MODELS.build(
        dict(type='DistanceWeightedFocalLoss', loss_weight=1.5))
    got = loss(logits, labels, class_dist)
    exp = ref_loss(logits, labels, class_dist, 12544, loss_weight=1.5)
    assert got.item() == pytest.approx(exp, rel=1e-5)
    assert got.item() != pytest.approx(
        loss(logits, labels, dist).item(), rel=1e-6)


def test_weights_of_positives_and_gradient():
    logits = torch.zeros(1, 1, 2, 1, requires_grad=True)
    labels = torch.tensor([[[0, 0]]])
    # dist 0 switches a positive off; dist 1 keeps the full focal term.
    dist = torch.tensor([[[0.0, 1.0]]])
    loss = DistanceWeightedFocalLoss(loss_weight=1.0)
    out = loss(logits, labels, dist)
    exp = math.log(2) * 0.5**2 / 2  # one live positive, 2 positives
    assert out.item() == pytest.approx(exp, rel=1e-6)
    out.backward()
    assert logits.grad[0, 0, 0, 0] == 0
    assert logits.grad[0, 0, 1, 0] < 0


def test_errors():
    loss = DistanceWeightedFocalLoss()
    logits = torch.zeros(2, 3, 3, 4)
    with pytest.raises(ValueError, match='labels must have shape'):
        loss(logits, torch.zeros(2, 3, 4, dtype=torch.long),
             torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match=r'labels must be in'):
        loss(logits, torch.full((2, 3, 3), 4), torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match='dist must have shape'):
        loss(logits, torch.zeros(2, 3, 3, dtype=torch.long),
             torch.zeros(2, 3, 3, 2))
    with pytest.raises(ValueError):
        DistanceWeightedFocalLoss(num_points=0)


@pytest.mark.parametrize('device', [
    'cpu',
    pytest.param(
        'cuda',
        marks=pytest.mark.skipif(
            not torch.cuda.is_available(), reason='requires CUDA'))
])
def test_device_consistency(device):
    logits, labels, dist = make_inputs(seed=4)
    loss = DistanceWeightedFocalLoss(num_points=9)
    ref = loss(logits, labels, dist)
    out = loss(logits.to(device), labels.to(device), dist.to(device))
    assert out.device.type == device
    assert out.item() == pytest.approx(ref.item(), rel=1e-5)

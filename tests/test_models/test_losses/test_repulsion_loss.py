# Copyright (c) OpenMMLab. All rights reserved.
import math

import pytest
import torch
from mmdet.registry import MODELS

from mdqe_mm.models.losses import (InterInstanceMaskRepulsionLoss,
                                   masks_to_normalised_boxes,
                                   nearby_instance_matrix,
                                   nearby_instance_union, repulsion_dice_loss,
                                   sample_repulsion_points, weighted_bce_loss)

BIG = 200.0  # sigmoid(±200) is exactly 1 / 0 in float32


def ref_nearby(boxes, clip_inds, thr, min_size, absent_nearby):
    """Plain float64 loops over pairs and frames."""
    boxes = boxes.double().tolist()
    num = len(boxes)
    out = [[False] * num for _ in range(num)]
    for i in range(num):
        for j in range(num):
            if clip_inds is not None and clip_inds[i] != clip_inds[j]:
                continue
            best = 0.0
            for bi, bj in zip(boxes[i], boxes[j]):
                present_i = bi[2] > bi[0] and bi[3] > bi[1]
                present_j = bj[2] > bj[0] and bj[3] > bj[1]
                if not absent_nearby and not (present_i and present_j):
                    continue
                rects = []
                for b in (bi, bj):
                    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
                    w = max(b[2] - b[0], min_size)
                    h = max(b[3] - b[1], min_size)
                    rects.append(
                        (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
                (a0, a1, a2, a3), (b0, b1, b2, b3) = rects
                iw = max(min(a2, b2) - max(a0, b0), 0)
                ih = max(min(a3, b3) - max(a1, b1), 0)
                inter = iw * ih
                union = (a2 - a0) * (a3 - a1) + (b2 - b0) * (b3 - b1) - inter
                best = max(best, inter / max(union, 1e-3))
            out[i][j] = best > thr
            if not absent_nearby and i == j:
                out[i][j] = True
    return torch.tensor(out)


def ref_union(targets, nearby):
    num = targets.shape[0]
    union = torch.zeros_like(targets, dtype=torch.float64)
    for i in range(num):
        for j in range(num):
            if nearby[i, j]:
                union[i] = torch.maximum(union[i], (targets[j] > 0.5).double())
    return union


def bce(x, y):
    return max(x, 0) - x * y + math.log1p(math.exp(-abs(x)))


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def ref_weighted_bce(logits, targets, union, avg):
    total = 0.0
    for x_i, y_i, u_i in zip(logits.double(), targets.double(), union):
        num, den = 0.0, 0.0
        for x, y, u in zip(x_i.flatten().tolist(),
                           y_i.flatten().tolist(),
                           u_i.flatten().tolist()):
            w = u + 1
            num += w * bce(x, y)
            den += w
        total += num / max(den, 1)
    return total / max(avg, 1)


def ref_dice(logits, targets, union, avg):
    total = 0.0
    for x_i, y_i, u_i in zip(logits.double(), targets.double(), union):
        s_pm = s_p = s_m = s_bar = s_qbar = 0.0
        for x, m, u in zip(x_i.flatten().tolist(),
                           y_i.flatten().tolist(),
                           u_i.flatten().tolist()):
            p = sigmoid(x)
            mbar = 1.0 if (u > 0.5 and m < 0.5) else 0.0
            s_pm += p * m
            s_p += p
            s_m += m
            s_bar += mbar
            s_qbar += (1 - p) * mbar
        total += 1 - (2 * s_pm + s_qbar + 1) / (s_p + s_m + s_bar + 1)
    return total / max(avg, 1)


def make_boxes():
    # 4 pairs, T=2. 0 and 1 overlap in frame 0; 2 far away; 1 and 3 are
    # both absent in frame 1 (zeros), far apart in frame 0.
    return torch.tensor([
        [[0.10, 0.10, 0.40, 0.40], [0.10, 0.10, 0.40, 0.40]],
        [[0.20, 0.20, 0.50, 0.50], [0.00, 0.00, 0.00, 0.00]],
        [[0.70, 0.70, 0.90, 0.90], [0.70, 0.70, 0.90, 0.90]],
        [[0.80, 0.05, 0.95, 0.20], [0.00, 0.00, 0.00, 0.00]],
    ])


@pytest.mark.parametrize('absent_nearby', [True, False])
def test_nearby_matrix_matches_reference(absent_nearby):
    boxes = make_boxes()
    nearby = nearby_instance_matrix(
        boxes, None, 0.1, 0.05, absent_boxes_are_nearby=absent_nearby)
    expected = ref_nearby(boxes, None, 0.1, 0.05, absent_nearby)
    assert torch.equal(nearby, expected)
    assert nearby[0, 1] and nearby[1, 0]
    assert not nearby[0, 2]
    # The absent-box quirk: 1 and 3 only "meet" as zero boxes in frame 1.
    assert bool(nearby[1, 3]) is absent_nearby
    assert nearby.diagonal().all()


def test_nearby_matrix_random_and_clips():
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(7, 3, 2, generator=gen) * 0.7
    wh = torch.rand(7, 3, 2, generator=gen) * 0.3
    boxes = torch.cat([xy, xy + wh], -1)
    boxes[torch.rand(7, 3, generator=gen) < 0.3] = 0
    clip_inds = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    for absent_nearby in (True, False):
        for thr in (0.0, 0.1, 0.3):
            got = nearby_instance_matrix(boxes, clip_inds, thr, 0.05,
                                         absent_nearby)
            exp = ref_nearby(boxes, clip_inds.tolist(), thr, 0.05,
                             absent_nearby)
            assert torch.equal(got, exp)
    assert not got[:3, 3:].any()


def test_min_box_size_makes_tiny_boxes_overlap():
    boxes = torch.tensor([[[0.50, 0.50, 0.51, 0.51]],
                          [[0.52, 0.52, 0.53, 0.53]]])
    assert not nearby_instance_matrix(boxes, min_box_size=0.0)[0, 1]
    assert nearby_instance_matrix(boxes, min_box_size=0.05)[0, 1]


def random_case(seed=0, num=4, frames=2, size=5):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(num, frames, size, size, generator=gen) * 3
    targets = torch.rand(num, frames, size, size, generator=gen)
    targets[targets < 0.4] = 0  # soft targets with some zeros
    nearby = torch.rand(num, num, generator=gen) < 0.5
    nearby |= torch.eye(num, dtype=torch.bool)
    return logits, targets, nearby


def test_union_weighted_bce_and_dice_match_reference():
    logits, targets, nearby = random_case()
    union = nearby_instance_union(targets, nearby)
    exp_union = ref_union(targets, nearby)
    assert torch.equal(union.double(), exp_union)
    for avg in (0.5, 3.0):
        got_bce = weighted_bce_loss(logits, targets, union, avg)
        got_dice = repulsion_dice_loss(logits, targets, union, avg)
        exp_bce = ref_weighted_bce(logits, targets, exp_union, avg)
        exp_dice = ref_dice(logits, targets, exp_union, avg)
        assert got_bce.item() == pytest.approx(exp_bce, rel=1e-5)
        assert got_dice.item() == pytest.approx(exp_dice, rel=1e-5)


def two_instances():
    """Pair 0 owns the left half, pair 1 (its neighbour) the right half."""
    targets = torch.zeros(2, 1, 4, 4)
    targets[0, :, :, :2] = 1
    targets[1, :, :, 2:] = 1
    nearby = torch.ones(2, 2, dtype=torch.bool)
    logits = (targets * 2 - 1) * BIG  # perfect, hard predictions
    return logits, targets, nearby


def test_repulsion_dice_is_zero_at_optimum_and_rises():
    logits, targets, nearby = two_instances()
    union = nearby_instance_union(targets, nearby)
    perfect = repulsion_dice_loss(logits, targets, union, 2)
    assert perfect.item() == 0.0

    # Mass moved onto a neighbour's pixel costs more than onto plain
    # background (that pixel is both a false positive and a missed m̄).
    onto_neighbour = logits.clone()
    onto_neighbour[0, 0, 0, 3] = BIG
    no_neighbour = nearby_instance_union(targets,
                                         torch.eye(2, dtype=torch.bool))
    loss_neighbour = repulsion_dice_loss(onto_neighbour, targets, union, 2)
    loss_background = repulsion_dice_loss(onto_neighbour, targets,
                                          no_neighbour, 2)
    assert loss_neighbour.item() > loss_background.item() > 0
    exp = ref_dice(onto_neighbour, targets, ref_union(targets, nearby), 2)
    assert loss_neighbour.item() == pytest.approx(exp, rel=1e-6)


def test_weighted_bce_doubles_nearby_pixels():
    logits = torch.zeros(1, 1, 1, 2)  # BCE = log 2 everywhere
    logits[0, 0, 0, 1] = 2.0
    targets = torch.zeros(1, 1, 1, 2)
    union = torch.tensor([[[[1.0, 0.0]]]])
    got = weighted_bce_loss(logits, targets, union, 1)
    exp = (2 * math.log(2) + bce(2.0, 0.0)) / 3
    assert got.item() == pytest.approx(exp, rel=1e-6)


def test_module_forward_boxes_and_nearby_paths():
    loss = MODELS.build(
        dict(
            type='InterInstanceMaskRepulsionLoss',
            loss_weight_bce=4.0,
            loss_weight_dice=3.0))
    boxes = make_boxes()
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 2, 6, 6, generator=gen).requires_grad_()
    targets = (torch.rand(4, 2, 6, 6, generator=gen) > 0.6).float()
    clip_inds = torch.tensor([0, 0, 0, 1])
    out = loss(logits, targets, boxes, clip_inds, avg_factor=3)
    nearby = ref_nearby(boxes, [0, 0, 0, 1], 0.1, 0.05, True)
    union = ref_union(targets, nearby)
    assert out['loss_mask'].item() == pytest.approx(
        4 * ref_weighted_bce(logits.detach(), targets, union, 3), rel=1e-5)
    assert out['loss_dice'].item() == pytest.approx(
        3 * ref_dice(logits.detach(), targets, union, 3), rel=1e-5)

    out2 = loss(logits, targets, avg_factor=3, nearby=nearby)
    assert torch.allclose(out['loss_mask'], out2['loss_mask'])
    assert torch.allclose(out['loss_dice'], out2['loss_dice'])

    (out['loss_mask'] + out['loss_dice']).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_module_edge_cases_and_errors():
    loss = InterInstanceMaskRepulsionLoss()
    logits = torch.zeros(0, 2, 4, 4, requires_grad=True)
    out = loss(
        logits,
        torch.zeros(0, 2, 4, 4),
        torch.zeros(0, 2, 4),
        None,
        avg_factor=1)
    assert out['loss_mask'].item() == 0 and out['loss_dice'].item() == 0
    out['loss_mask'].backward()

    logits = torch.zeros(2, 2, 4, 4)
    with pytest.raises(ValueError, match='mask_targets'):
        loss(logits, torch.zeros(2, 2, 4, 5), torch.zeros(2, 2, 4))
    with pytest.raises(ValueError, match='target_boxes or nearby'):
        loss(logits, torch.zeros(2, 2, 4, 4))
    with pytest.raises(ValueError, match='target_boxes'):
        loss(logits, torch.zeros(2, 2, 4, 4), torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match='nearby'):
        loss(logits, torch.zeros(2, 2, 4, 4), nearby=torch.ones(3, 3))
    with pytest.raises(ValueError):
        InterInstanceMaskRepulsionLoss(nearby_iou_thr=1.5)
    assert 'absent_boxes_are_nearby=True' in repr(loss)


DEVICES = [
    'cpu',
    pytest.param(
        'cuda',
        marks=pytest.mark.skipif(
            not torch.cuda.is_available(), reason='requires CUDA'))
]


@pytest.mark.parametrize('device', DEVICES)
def test_device_consistency(device):
    loss = InterInstanceMaskRepulsionLoss()
    boxes = make_boxes()
    logits, targets, _ = random_case(seed=5, num=4, frames=2, size=6)
    clip_inds = torch.tensor([0, 0, 1, 1])
    ref = loss(logits, targets, boxes, clip_inds, avg_factor=4)
    out = loss(
        logits.to(device),
        targets.to(device),
        boxes.to(device),
        clip_inds.to(device),
        avg_factor=4)
    for key in ('loss_mask', 'loss_dice'):
        assert out[key].device.type == device
        assert out[key].item() == pytest.approx(ref[key].item(), rel=1e-5)


def pixel_centre_points(num_masks, height, width, dtype=torch.float64):
    """(x, y) of every pixel centre, row-major, for each of num_masks."""
    ys, xs = torch.meshgrid(
        (torch.arange(height, dtype=dtype) + 0.5) / height,
        (torch.arange(width, dtype=dtype) + 0.5) / width,
        indexing='ij')
    points = torch.stack([xs.flatten(), ys.flatten()], dim=-1)
    return points[None].expand(num_masks, -1, -1).contiguous()


def test_point_form_equals_dense_form_at_every_pixel():
    """The point form over all pixel centres is the dense form, and both
    equal the plain float64 formulas."""
    generator = torch.Generator().manual_seed(7)
    num_pairs, num_frames, height, width = 5, 3, 6, 7
    logits = torch.randn(
        num_pairs, num_frames, height, width, dtype=torch.float64,
        generator=generator) * 3
    targets = (torch.rand(
        num_pairs, num_frames, height, width, dtype=torch.float64,
        generator=generator) > 0.6).double()
    targets[0, 1] = 0.3  # a soft, below-threshold frame
    boxes = masks_to_normalised_boxes(targets)
    clip_inds = torch.tensor([0, 0, 0, 1, 1])
    loss_fn = InterInstanceMaskRepulsionLoss(
        loss_weight_bce=2.0, loss_weight_dice=3.0)
    nearby = loss_fn.nearby_matrix(boxes, clip_inds)
    assert not nearby[0, 3] and nearby.diagonal().all()

    dense = loss_fn(logits, targets, target_boxes=boxes, clip_inds=clip_inds,
                    avg_factor=4.0)
    coords = pixel_centre_points(num_pairs * num_frames, height, width)
    points = sample_repulsion_points(logits, targets, nearby, coords)
    assert points['logits'].shape == (num_pairs, num_frames * height * width)
    point = loss_fn(points['logits'], points['targets'], avg_factor=4.0,
                    nearby_union=points['union'])
    union = ref_union(targets, nearby)
    exp_bce = 2.0 * ref_weighted_bce(logits, targets, union, 4.0)
    exp_dice = 3.0 * ref_dice(logits, targets, union, 4.0)
    # the losses compute in float32 (as in the reference), hence rel 1e-6
    for out in (dense, point):
        assert out['loss_mask'].item() == pytest.approx(exp_bce, rel=1e-6)
        assert out['loss_dice'].item() == pytest.approx(exp_dice, rel=1e-6)
    for key in ('loss_mask', 'loss_dice'):
        torch.testing.assert_close(point[key], dense[key], rtol=1e-6, atol=0)


def test_point_form_gradient_flows_to_sampled_logits_only():
    generator = torch.Generator().manual_seed(8)
    logits = torch.randn(2, 1, 8, 8, generator=generator, requires_grad=True)
    targets = torch.zeros(2, 1, 16, 16)  # targets may be finer
    targets[0, :, 2:10, 2:10] = 1
    targets[1, :, 6:14, 6:14] = 1
    nearby = torch.ones(2, 2, dtype=torch.bool)
    coords = torch.rand(2, 20, 2, generator=generator)
    points = sample_repulsion_points(logits, targets, nearby, coords)
    assert not points['targets'].requires_grad
    assert not points['union'].requires_grad
    # every union value covers the target value at the same point
    assert (points['union'] + 1e-6 >= points['targets']).all()
    out = InterInstanceMaskRepulsionLoss()(
        points['logits'], points['targets'], nearby_union=points['union'])
    (out['loss_mask'] + out['loss_dice']).backward()
    assert logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='point_coords'):
        sample_repulsion_points(logits, targets, nearby, coords[:1])


def test_masks_to_normalised_boxes_plain():
    masks = torch.zeros(2, 2, 4, 5)
    masks[0, 0, 1:3, 2:5] = 1  # rows 1-2, cols 2-4
    masks[1, 1, 0, 0] = 0.9
    boxes = masks_to_normalised_boxes(masks)
    expected = torch.tensor([[[2 / 5, 1 / 4, 5 / 5, 3 / 4], [0, 0, 0, 0]],
                             [[0, 0, 0, 0], [0, 0, 1 / 5, 1 / 4]]])
    torch.testing.assert_close(boxes, expected)


def test_stock_mmdet_call_is_refused_with_a_pointer():
    """mmdet's heads call loss_mask(flat_points, flat_targets, ...)."""
    loss_fn = MODELS.build(dict(type='InterInstanceMaskRepulsionLoss'))
    with pytest.raises(TypeError, match='RepulsionMask2FormerHead'):
        loss_fn(torch.zeros(12), torch.zeros(12), avg_factor=3)
    with pytest.raises(TypeError, match='reduction_override'):
        loss_fn(
            torch.zeros(3, 4), torch.zeros(3, 4), reduction_override='sum')
    with pytest.raises(ValueError, match='nearby_union'):
        loss_fn(torch.zeros(3, 4), torch.zeros(3, 4), nearby=torch.eye(3))


@pytest.mark.parametrize('form', ['dense', 'points'])
def test_repulsion_off_is_plain_bce_plus_dice(form):
    """repulsion=False (the 'no-repulsion' ablation): per-pixel-mean BCE
    plus plain dice, written out in float64, whatever the nearby sets."""
    torch.manual_seed(0)
    num_pairs, num_frames, height, width = 3, 2, 5, 6
    logits = torch.randn(num_pairs, num_frames, height, width) * 3
    targets = (torch.rand(num_pairs, num_frames, height, width) > 0.6).float()
    boxes = torch.tensor([[0.1, 0.1, 0.6,
                           0.6]]).expand(num_pairs, num_frames,
                                         4).contiguous()
    loss = InterInstanceMaskRepulsionLoss(
        loss_weight_bce=2.0, loss_weight_dice=3.0, repulsion=False)
    if form == 'dense':
        out = loss(logits, targets, target_boxes=boxes, avg_factor=2)
    else:  # a (nonzero) union given by a point-form caller is ignored too
        out = loss(
            logits.flatten(1),
            targets.flatten(1),
            nearby_union=torch.ones(num_pairs, num_frames * height * width),
            avg_factor=2)
    bce_sum = dice_sum = 0.0
    for x, m in zip(logits.double().flatten(1).tolist(),
                    targets.double().flatten(1).tolist()):
        p = [1 / (1 + math.exp(-v)) for v in x]
        bce = [
            -(t * math.log(q) + (1 - t) * math.log(1 - q))
            for q, t in zip(p, m)
        ]
        bce_sum += sum(bce) / len(bce)
        inter = sum(q * t for q, t in zip(p, m))
        dice_sum += 1 - (2 * inter + 1) / (sum(p) + sum(m) + 1)
    assert out['loss_mask'].item() == pytest.approx(
        2.0 * bce_sum / 2, rel=1e-5)
    assert out['loss_dice'].item() == pytest.approx(
        3.0 * dice_sum / 2, rel=1e-5)
    # and with repulsion on, the same inputs give a different (larger) loss
    on = InterInstanceMaskRepulsionLoss(
        loss_weight_bce=2.0, loss_weight_dice=3.0)(
            logits, targets, target_boxes=boxes, avg_factor=2)
    assert on['loss_dice'].item() > out['loss_dice'].item()

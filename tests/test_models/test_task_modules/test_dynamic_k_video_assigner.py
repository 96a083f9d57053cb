# Copyright (c) OpenMMLab. All rights reserved.
import math

import pytest
import torch
from mmdet.registry import TASK_UTILS
from mmengine.structures import InstanceData

from mdqe_mm.models.task_modules import (DynamicKVideoAssigner,
                                         dynamic_k_matching, in_box_prior,
                                         video_giou_matrix)


# ----------------------------------------------------------------- references
def ref_dynamic_k(cost, ious, num_candidates=10, min_k=2):
    """List-based re-statement of the dynamic-k rule."""
    cost = [list(map(float, row)) for row in cost.tolist()]
    ious = [[max(float(v), 0.0) for v in row] for row in ious.tolist()]
    num_q, num_g = len(cost), len(cost[0])
    match = [[False] * num_g for _ in range(num_q)]
    for g in range(num_g):
        col = sorted((ious[q][g] for q in range(num_q)), reverse=True)
        k = max(int(sum(col[:num_candidates])), min_k)
        order = sorted(range(num_q), key=lambda q: cost[q][g])
        for q in order[:min(k, num_q)]:
            match[q][g] = True

    def resolve():
        for q in range(num_q):
            if sum(match[q]) > 1:
                best = min(range(num_g), key=lambda g: cost[q][g])
                match[q] = [g == best for g in range(num_g)]

    resolve()
    while (any(not any(match[q][g] for q in range(num_q))
               for g in range(num_g)) and any(not any(row) for row in match)):
        for q in range(num_q):
            if any(match[q]):
                cost[q] = [c + 1e5 for c in cost[q]]
        lonely = [
            g for g in range(num_g)
            if not any(match[q][g] for q in range(num_q))
        ]
        for g in lonely:
            match[min(range(num_q), key=lambda q: cost[q][g])][g] = True
        resolve()
    return {q: row.index(True) for q, row in enumerate(match) if any(row)}


def box_giou(a, b):
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0)
    inter = iw * ih
    if inter <= 0:
        return 0.0
    union = max(
        (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter,
        1e-3)
    cw = max(a[2], b[2]) - min(a[0], b[0])
    ch = max(a[3], b[3]) - min(a[1], b[1])
    enclose = cw * ch
    return inter / union - (enclose - union) / max(enclose, 1e-3)


def ref_vgiou(pred, gt, valid):
    out = torch.zeros(len(pred), len(gt), dtype=torch.float64)
    for q, pb in enumerate(pred.double().tolist()):
        for g, gb in enumerate(gt.double().tolist()):
            vals = [
                box_giou(pb[t], gb[t]) for t in range(len(pb)) if valid[g][t]
            ]
            out[q, g] = sum(vals) / max(len(vals), 1)
    return out


def ref_in_box(pred, gt, radius=2.5 / 32):
    out = torch.zeros(pred.shape[:2], dtype=torch.bool)
    for q, pb in enumerate(pred.double().tolist()):
        for t in range(len(pb)):
            cx = (pb[t][0] + pb[t][2]) / 2
            cy = (pb[t][1] + pb[t][3]) / 2
            for gb in gt.double().tolist():
                x0, y0, x1, y1 = gb[t]
                gx, gy = (x0 + x1) / 2, (y0 + y1) / 2
                inside = x0 < cx < x1 and y0 < cy < y1
                near = (
                    gx - radius < cx < gx + radius
                    and gy - radius < cy < gy + radius)
                if inside or near:
                    out[q, t] = True
    return out


def sig(x):
    return 1 / (1 + math.exp(-x))


def ref_cost(pred, gt):
    scores = pred.scores.double()
    pred_boxes, gt_boxes = pred.boxes.double(), gt.boxes.double()
    num_q, num_g = len(scores), len(gt.labels)
    valid = [[
        bool(b[2] > b[0] and b[3] > b[1]) and bool(v) for b, v in zip(gb, gv)
    ] for gb, gv in zip(gt_boxes.tolist(), gt.valid.tolist())]
    vgiou = ref_vgiou(pred_boxes, gt_boxes, valid)
    in_box = ref_in_box(pred_boxes, gt_boxes)
    cost = torch.zeros(num_q, num_g, dtype=torch.float64)
    for q in range(num_q):
        xs = pred.masks[q].double().flatten().tolist()
        for g in range(num_g):
            ys = gt.masks[g].double().flatten().tolist()
            bce = sum(
                max(x, 0) - x * y + math.log1p(math.exp(-abs(x)))
                for x, y in zip(xs, ys)) / len(xs)
            ps = [sig(x) for x in xs]
            dice = 1 - (2 * sum(p * y for p, y in zip(ps, ys)) + 1) / (
                sum(ps) + sum(ys) + 1)
            l1 = (pred_boxes[q] - gt_boxes[g]).abs().sum().item()
            c = (-sig(scores[q, gt.labels[g]].item()) + 2 *
                 (l1 + 1 - vgiou[q, g].item()) + 4 * (bce + dice))
            if not math.isfinite(c):
                c = 1000.0
            cost[q, g] = c + 100.0 * (~in_box[q]).sum().item()
    return cost, vgiou


def random_boxes(gen, num, frames):
    centre = torch.rand(num, frames, 2, generator=gen) * 0.6 + 0.2
    size = torch.rand(num, frames, 2, generator=gen) * 0.3 + 0.05
    return torch.cat([centre - size / 2, centre + size / 2], -1)


def make_clip(seed=0, num_q=12, num_g=3, frames=2, num_classes=3):
    gen = torch.Generator().manual_seed(seed)
    gt_boxes = random_boxes(gen, num_g, frames)
    valid = torch.ones(num_g, frames, dtype=torch.bool)
    valid[1, 0] = False
    gt_boxes[~valid] = 0
    gt_masks = torch.rand(num_g, frames, 5, 5, generator=gen)
    gt_masks[~valid] = 0
    gt = InstanceData(
        labels=torch.randint(0, num_classes, (num_g, ), generator=gen),
        boxes=gt_boxes,
        masks=gt_masks,
        valid=valid)
    # Queries near the GTs so that vGIoU (and k) are non-trivial.
    pred_boxes = gt_boxes.repeat(num_q // num_g, 1, 1)
    pred_boxes[~valid.repeat(num_q // num_g, 1)] = torch.tensor(
        [0.3, 0.3, 0.5, 0.5])
    pred_boxes = (
        pred_boxes + torch.randn(num_q, frames, 4, generator=gen) * 0.03)
    pred_boxes[..., 2:] = torch.maximum(pred_boxes[..., 2:],
                                        pred_boxes[..., :2] + 0.01)
    pred = InstanceData(
        scores=torch.randn(num_q, num_classes, generator=gen),
        boxes=pred_boxes,
        masks=torch.randn(num_q, frames, 5, 5, generator=gen) * 2)
    return pred, gt


# ---------------------------------------------------------------------- tests
def test_dynamic_k_hand_made():
    cost = torch.tensor([[1., 9.], [2., 3.], [8., 1.], [9., 2.], [5., 5.],
                         [7., 7.]])
    ious = torch.zeros(6, 2)
    ious[:, 0] = torch.tensor([0.9, 0.8, 0.5, 0.2, 0.1, 0.1])  # Σ=2.6 → k=2
    ious[:, 1] = torch.tensor([0.1, 0.7, 0.9, 0.9, 0.6, -0.5])  # 3.2 → k=3
    query_inds, gt_inds = dynamic_k_matching(cost, ious)
    # GT1 also wants q1 but q1 is cheaper for GT0.
    assert query_inds.tolist() == [0, 1, 2, 3]
    assert gt_inds.tolist() == [0, 0, 1, 1]


def test_dynamic_k_every_gt_gets_a_query():
    cost = torch.tensor([[1., 2., 3.], [1., 2., 3.], [9., 5., 7.],
                         [9., 6., 8.]])
    query_inds, gt_inds = dynamic_k_matching(cost, torch.zeros(4, 3))
    # All GTs take q0, q1 (k=2), which go to GT0. Round 1: GT1 and GT2
    # both pick q2, GT1 keeps it; round 2: GT2 takes q3.
    assert dict(zip(query_inds.tolist(), gt_inds.tolist())) == {
        0: 0,
        1: 0,
        2: 1,
        3: 2
    }


def test_dynamic_k_shared_query_goes_to_row_argmin():
    # Reference behaviour: a query claimed by several GTs goes to the
    # cheapest GT of its whole row, even one that did not claim it.
    cost = torch.tensor([[0.1, 9., 9.], [0.2, 9., 9.], [0.3, 1., 2.],
                         [8., 2., 1.], [9., 9., 9.]])
    query_inds, gt_inds = dynamic_k_matching(cost, torch.zeros(5, 3))
    # q2 (claimed by GT1, GT2) -> GT0; GT1 is left alone and takes q4.
    assert dict(zip(query_inds.tolist(), gt_inds.tolist())) == {
        0: 0,
        1: 0,
        2: 0,
        3: 2,
        4: 1
    }
    cost = torch.tensor([[1., 2., 3.], [1., 2., 3.]])
    # More GTs than queries: stops once every query is used.
    query_inds, gt_inds = dynamic_k_matching(cost, torch.zeros(2, 3))
    assert query_inds.tolist() == [0, 1] and len(set(gt_inds.tolist())) == 1
    empty = dynamic_k_matching(torch.zeros(5, 0), torch.zeros(5, 0))
    assert empty[0].numel() == 0 and empty[1].numel() == 0


@pytest.mark.parametrize('seed', range(6))
def test_dynamic_k_random_matches_reference(seed):
    gen = torch.Generator().manual_seed(seed)
    num_q, num_g = [(20, 4), (12, 6), (5, 4)][seed % 3]
    cost = torch.rand(num_q, num_g, generator=gen) * 10
    ious = torch.rand(num_q, num_g, generator=gen) * 1.2 - 0.2
    query_inds, gt_inds = dynamic_k_matching(cost, ious)
    got = dict(zip(query_inds.tolist(), gt_inds.tolist()))
    assert got == ref_dynamic_k(cost, ious)
    assert len(got) == len(query_inds)  # each query once


def test_in_box_prior():
    gt = torch.tensor([[[0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.61, 0.61]],
                       [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])

    def box(cx, cy):
        return [cx - 0.01, cy - 0.01, cx + 0.01, cy + 0.01]

    pred = torch.tensor([
        [box(0.3, 0.3), box(0.65, 0.65)],  # inside / centre region
        [box(0.8, 0.8), box(0.9, 0.1)],  # nowhere
        [box(0.05, 0.05), box(0.5, 0.5)],  # near the absent GT's origin
    ])
    got = in_box_prior(pred, gt)
    assert got.tolist() == [[True, True], [False, False], [True, False]]
    gen = torch.Generator().manual_seed(0)
    pred, gt = random_boxes(gen, 30, 3), random_boxes(gen, 4, 3)
    gt[1, 2] = 0
    assert torch.equal(in_box_prior(pred, gt), ref_in_box(pred, gt))


def test_video_giou_matrix():
    gen = torch.Generator().manual_seed(1)
    pred, gt = random_boxes(gen, 9, 3), random_boxes(gen, 4, 3)
    valid = torch.rand(4, 3, generator=gen) > 0.3
    valid[0] = False  # no valid frame -> 0
    got = video_giou_matrix(pred, gt, valid)
    exp = ref_vgiou(pred, gt, valid.tolist())
    assert torch.allclose(got.double(), exp, atol=1e-6)
    assert (got[:, 0] == 0).all()


@pytest.mark.parametrize('seed', [0, 1])
def test_assign_matches_reference(seed):
    pred, gt = make_clip(seed)
    assigner = TASK_UTILS.build(dict(type='DynamicKVideoAssigner'))
    cost, vgiou = assigner.compute_cost(pred, gt)
    exp_cost, exp_vgiou = ref_cost(pred, gt)
    assert torch.allclose(vgiou.double(), exp_vgiou, atol=1e-5)
    assert torch.allclose(cost.double(), exp_cost, rtol=1e-5, atol=1e-4)

    result = assigner.assign(pred, gt)
    expected = ref_dynamic_k(exp_cost, exp_vgiou)
    got = {q: g - 1 for q, g in enumerate(result.gt_inds.tolist()) if g > 0}
    assert got == expected
    assert result.num_gts == 3
    assert set(got.values()) == {0, 1, 2}  # every GT has a query
    for q, g in got.items():
        assert result.labels[q] == gt.labels[g]
        assert result.max_overlaps[q] == pytest.approx(
            exp_vgiou[q, g].item(), abs=1e-5)
    unassigned = result.gt_inds == 0
    assert (result.labels[unassigned] == -1).all()


def test_nan_boxes_fall_back_to_hungarian():
    pred, gt = make_clip(2)
    pred.boxes[3, 1, 0] = float('nan')
    result = DynamicKVideoAssigner().assign(pred, gt)
    assigned = result.gt_inds[result.gt_inds > 0]
    assert sorted(assigned.tolist()) == [1, 2, 3]  # one-to-one

    # The fallback minimises class + mask cost (checked by brute force).
    assigner = DynamicKVideoAssigner()
    cost, vgiou = assigner.compute_cost(pred, gt)
    assert vgiou is None
    best = min(cost[a, 0] + cost[b, 1] + cost[c, 2] for a in range(12)
               for b in range(12) for c in range(12) if len({a, b, c}) == 3)
    chosen = sum(cost[q, g - 1] for q, g in enumerate(result.gt_inds.tolist())
                 if g > 0)
    assert chosen.item() == pytest.approx(best.item(), rel=1e-6)


def test_assign_without_gts_and_bad_inputs():
    pred, gt = make_clip(0)
    empty = gt[torch.zeros(3, dtype=torch.bool)]
    result = DynamicKVideoAssigner().assign(pred, empty)
    assert result.num_gts == 0 and (result.gt_inds == 0).all()
    assert (result.labels == -1).all()

    bad = InstanceData(labels=gt.labels, boxes=gt.boxes[:, :1], masks=gt.masks)
    with pytest.raises(ValueError, match='gt boxes'):
        DynamicKVideoAssigner().assign(pred, bad)
    with pytest.raises(KeyError, match='masks'):
        DynamicKVideoAssigner().assign(
            InstanceData(scores=pred.scores, boxes=pred.boxes), gt)
    with pytest.raises(ValueError):
        DynamicKVideoAssigner(min_k=0)


@pytest.mark.parametrize('device', [
    'cpu',
    pytest.param(
        'cuda',
        marks=pytest.mark.skipif(
            not torch.cuda.is_available(), reason='requires CUDA'))
])
def test_device_consistency(device):
    pred, gt = make_clip(3)
    assigner = DynamicKVideoAssigner()
    ref = assigner.assign(pred, gt)
    out = assigner.assign(pred.to(device), gt.to(device))
    assert out.gt_inds.device.type == device
    assert torch.equal(out.gt_inds.cpu(), ref.gt_inds)
    assert torch.equal(out.labels.cpu(), ref.labels)

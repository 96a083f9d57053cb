# Copyright (c) OpenMMLab. All rights reserved.
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

from mdqe_mm.models.losses import OverlapGIoULoss, overlap_giou


def plain_giou(a, b, eps=1e-3):
    """GIoU of two xyxy boxes in float64, 0 when they do not intersect."""
    ax0, ay0, ax1, ay1 = a
    bx0, by0, bx1, by1 = b
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    if inter <= 0:
        return 0.0
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    ew = max(0.0, max(ax1, bx1) - min(ax0, bx0))
    eh = max(0.0, max(ay1, by1) - min(ay0, by0))
    enclose = ew * eh
    return inter / max(union, eps) - (enclose - union) / max(enclose, eps)


def random_boxes(num, generator):
    xy = torch.rand(num, 2, generator=generator, dtype=torch.float64) * 0.8
    wh = torch.rand(num, 2, generator=generator, dtype=torch.float64) * 0.3
    return torch.cat([xy, xy + wh], -1)


def test_overlap_giou_matches_plain_formula():
    generator = torch.Generator().manual_seed(0)
    pred, target = random_boxes(300, generator), random_boxes(300, generator)
    # identical, touching and nested pairs
    pred[0], target[0] = torch.tensor([.1, .1, .3, .3]), \
        torch.tensor([.1, .1, .3, .3])
    pred[1], target[1] = torch.tensor([.1, .1, .3, .3]), \
        torch.tensor([.3, .1, .5, .3])
    pred[2], target[2] = torch.tensor([.1, .1, .5, .5]), \
        torch.tensor([.2, .2, .3, .3])
    ours = overlap_giou(pred, target)
    expected = torch.tensor(
        [plain_giou(a.tolist(), b.tolist()) for a, b in zip(pred, target)],
        dtype=torch.float64)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)
    assert ours[0] == 1.0 and ours[1] == 0.0  # touching edges: no overlap
    disjoint = expected == 0
    assert 20 < int(disjoint.sum()) < 290  # both cases are exercised


def test_disjoint_pairs_cost_one_without_gradient():
    pred = torch.tensor([[0.0, 0.0, 0.2, 0.2], [0.1, 0.1, 0.4, 0.4]],
                        requires_grad=True)
    target = torch.tensor([[0.5, 0.5, 0.7, 0.7], [0.2, 0.2, 0.5, 0.5]])
    loss_fn = OverlapGIoULoss(loss_weight=2.0, reduction='none')
    loss = loss_fn(pred, target)
    assert loss[0].item() == pytest.approx(2.0)  # weight x (1 - 0)
    loss.sum().backward()
    assert torch.count_nonzero(pred.grad[0]) == 0
    assert torch.count_nonzero(pred.grad[1]) > 0
    # mmdet's GIoU loss, by contrast, exceeds 1 and has a gradient there
    register_all_modules()
    mmdet_giou = MODELS.build(dict(type='GIoULoss', reduction='none'))
    pred.grad = None
    mmdet_giou(pred, target)[0].backward()
    assert torch.count_nonzero(pred.grad[0]) > 0


def test_reduction_weight_and_avg_factor():
    generator = torch.Generator().manual_seed(1)
    pred, target = random_boxes(10, generator), random_boxes(10, generator)
    weight = torch.rand(10, generator=generator, dtype=torch.float64)
    per_box = 1 - torch.tensor(
        [plain_giou(a.tolist(), b.tolist()) for a, b in zip(pred, target)],
        dtype=torch.float64)
    loss_fn = MODELS.build(dict(type='OverlapGIoULoss', loss_weight=2.0))
    torch.testing.assert_close(
        loss_fn(pred, target, weight, avg_factor=7.0),
        2.0 * (per_box * weight).sum() / 7.0)
    torch.testing.assert_close(loss_fn(pred, target), 2.0 * per_box.mean())
    torch.testing.assert_close(
        loss_fn(pred, target, reduction_override='sum'), 2.0 * per_box.sum())


def test_bad_arguments():
    with pytest.raises(ValueError, match='reduction'):
        OverlapGIoULoss(reduction='avg')
    with pytest.raises(ValueError, match='eps'):
        OverlapGIoULoss(eps=0)
    with pytest.raises(ValueError, match=r'\(N, 4\)'):
        OverlapGIoULoss()(torch.zeros(3, 4), torch.zeros(3, 2))


def test_mmdet_box_weight_shapes_as_giou_loss():
    """DETR heads pass (N, 4) weights; they average like GIoULoss's."""
    register_all_modules()
    generator = torch.Generator().manual_seed(3)
    pred, target = random_boxes(8, generator), random_boxes(8, generator)
    box_weight = torch.zeros(8, 4, dtype=torch.float64)
    box_weight[:5] = 1.0
    per_box = 1 - torch.tensor(
        [plain_giou(a.tolist(), b.tolist()) for a, b in zip(pred, target)],
        dtype=torch.float64)
    loss_fn = MODELS.build(dict(type='OverlapGIoULoss', loss_weight=2.0))
    torch.testing.assert_close(
        loss_fn(pred, target, box_weight, avg_factor=5),
        2.0 * per_box[:5].sum() / 5)
    # all-zero weights (no positive box): exactly 0 and still in the graph
    pred.requires_grad_(True)
    zero = loss_fn(pred, target, torch.zeros(8, 4, dtype=torch.float64),
                   avg_factor=1)
    assert zero.item() == 0.0 and zero.requires_grad
    zero.backward()
    assert torch.count_nonzero(pred.grad) == 0
    # the same call on mmdet's GIoULoss takes the same weight shape
    MODELS.build(dict(type='GIoULoss'))(pred, target, box_weight,
                                        avg_factor=5)
    with pytest.raises(ValueError, match=r'weight must have shape \(8,\)'):
        loss_fn(pred, target, torch.ones(8, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match='reduction_override'):
        loss_fn(pred, target, reduction_override='avg')


def test_in_deformable_detr_head():
    """The DETR heads' own loss path passes (N, 4) weights and pixel boxes;
    with the matching fixed, loss_iou is the plain formula on the matched
    pairs (DINO's head shares this path; configs/mixing trains DINO)."""
    from mmengine.config import ConfigDict
    from mmengine.structures import InstanceData
    register_all_modules()
    head = MODELS.build(
        ConfigDict(
            type='DeformableDETRHead',
            num_classes=3,
            embed_dims=16,
            loss_cls=dict(
                type='FocalLoss',
                use_sigmoid=True,
                gamma=2.0,
                alpha=0.25,
                loss_weight=2.0),
            loss_iou=dict(type='OverlapGIoULoss', loss_weight=2.0),
            train_cfg=dict(
                assigner=dict(
                    type='HungarianAssigner',
                    match_costs=[
                        dict(type='FocalLossCost', weight=2.0),
                        dict(
                            type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                        dict(type='IoUCost', iou_mode='giou', weight=2.0)
                    ]))))
    generator = torch.Generator().manual_seed(4)
    num_queries = 5
    cls_scores = torch.randn(1, num_queries, 3, generator=generator)
    bbox_preds = torch.rand(1, num_queries, 4, generator=generator) * 0.4 + 0.1
    gt = InstanceData(
        bboxes=torch.tensor([[10., 20., 50., 60.], [100., 10., 150., 40.]]),
        labels=torch.tensor([0, 2]))
    meta = dict(img_shape=(100, 200))
    _, _, loss_iou = head.loss_by_feat_single(cls_scores, bbox_preds, [gt],
                                              [meta])
    result = head.get_targets([cls_scores[0]], [bbox_preds[0]], [gt], [meta])
    targets, weights = result[2][0], result[3][0][:, 0]
    scale = torch.tensor([200., 100., 200., 100.])
    pred_xyxy = []
    for cx, cy, w, h in (bbox_preds[0] * scale).tolist():
        pred_xyxy.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    target_xyxy = []
    for cx, cy, w, h in (targets * scale).tolist():
        target_xyxy.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    expected = sum(
        (1 - plain_giou(p, t)) * float(w)
        for p, t, w in zip(pred_xyxy, target_xyxy, weights)) / 2
    assert weights.sum() == 2
    assert loss_iou.item() == pytest.approx(2.0 * expected, rel=1e-4)

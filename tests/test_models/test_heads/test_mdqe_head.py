# Copyright (c) OpenMMLab. All rights reserved.
import math
from unittest import TestCase

import numpy as np
import torch
from mmdet.models.task_modules import AssignResult
from mmdet.registry import TASK_UTILS
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import mdqe_mm  # noqa: F401
from mdqe_mm.models.heads import MDQEHead


@TASK_UTILS.register_module(force=True)
class _FixedVideoAssignerForTest:
    """Assigns query i to GT ``plan[clip][i]`` (0 = none), in call order."""

    plans = []
    calls = 0

    def assign(self, pred_instances, gt_instances):
        plan = self.plans[_FixedVideoAssignerForTest.calls % len(self.plans)]
        _FixedVideoAssignerForTest.calls += 1
        num_queries = pred_instances.scores.shape[0]
        gt_inds = torch.zeros(num_queries, dtype=torch.long)
        for query, gt in plan.items():
            gt_inds[query] = gt
        labels = torch.full((num_queries, ), -1, dtype=torch.long)
        pos = gt_inds > 0
        labels[pos] = gt_instances.labels[gt_inds[pos] - 1]
        return AssignResult(
            len(gt_instances), gt_inds, torch.zeros(num_queries), labels)


def tiny_head(**kwargs):
    cfg = dict(
        num_classes=3,
        embed_dims=32,
        num_frames=2,
        decoder=dict(
            type='MDQETwoStreamDecoder',
            num_layers=2,
            num_heads=4,
            num_points=2,
            ffn_ratio=2),
        mask_proto=dict(
            type='MDQEMaskPrototypeNet', num_prototypes=8, out_norm_groups=8))
    cfg.update(kwargs)
    return MDQEHead(**cfg)


def focal_ref(logits, targets, alpha=0.25, gamma=2.0):
    prob = 1 / (1 + np.exp(-logits))
    ce = -(targets * np.log(prob) + (1 - targets) * np.log(1 - prob))
    p_t = prob * targets + (1 - prob) * (1 - targets)
    a_t = alpha * targets + (1 - alpha) * (1 - targets)
    return a_t * (1 - p_t)**gamma * ce


def giou_ref(a, b):
    """The reference's matched GIoU: 0 for boxes that do not intersect."""
    ix0, iy0 = max(a[0], b[0]), max(a[1], b[1])
    ix1, iy1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(ix1 - ix0, 0) * max(iy1 - iy0, 0)
    if inter <= 0:
        return 0.0
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    union = area_a + area_b - inter
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (
        max(a[3], b[3]) - min(a[1], b[1]))
    return inter / max(union, 1e-3) - (hull - union) / max(hull, 1e-3)


class TestMDQEHead(TestCase):

    @classmethod
    def setUpClass(cls):
        init_default_scope('mmdet')

    def _inputs(self, num_clips=2, num_frames=2, num_queries=16):
        shapes = torch.tensor([[4, 6], [2, 3], [1, 2], [1, 1]])
        starts = torch.tensor([0, 24, 30, 32])
        rows = num_clips * num_frames
        return dict(
            query=torch.randn(rows, num_queries, 32),
            query_xy=torch.rand(rows, num_queries, 2),
            memory=torch.randn(rows, 33, 32),
            memory_padding_mask=torch.zeros(rows, 33, dtype=torch.bool),
            spatial_shapes=shapes,
            level_start_index=starts,
            num_frames=num_frames)

    def test_init_weights_and_forward_shapes(self):
        torch.manual_seed(0)
        head = tiny_head()
        head.init_weights()
        torch.testing.assert_close(head.cls_embed.layers[-1].bias,
                                   torch.full((3, ), -math.log(99.)))
        torch.testing.assert_close(head.bbox_embed.layers[-1].bias,
                                   torch.zeros(4))
        # the deformable attention keeps its own zero init
        attn = head.decoder.layers[0].frame_cross_attn
        self.assertEqual(float(attn.attention_weights.weight.abs().sum()), 0)
        outs = head(**self._inputs())
        self.assertEqual(tuple(outs['cls_logits'].shape), (3, 2, 16, 3))
        self.assertEqual(tuple(outs['boxes'].shape), (3, 2, 16, 2, 4))
        self.assertEqual(tuple(outs['mask_coeffs'].shape), (3, 2, 16, 8))
        self.assertEqual(tuple(outs['clip_queries'].shape), (3, 2, 16, 32))
        self.assertLessEqual(float(outs['mask_coeffs'].abs().max()), 1.)
        boxes = outs['boxes']
        self.assertTrue(bool((boxes[..., 2:] >= boxes[..., :2]).all()))
        # clip prototypes (N*T, P, h, w) -> (N, P, T, h, w)
        protos = torch.rand(4, 8, 5, 6)
        clip_protos = head.clip_prototypes(protos, 2)
        torch.testing.assert_close(clip_protos[1, :, 0], protos[2])
        preds = head.predict_clips(outs, clip_protos)
        self.assertEqual(len(preds), 2)
        self.assertEqual(tuple(preds[0]['scores'].shape), (16, 3))
        self.assertEqual(tuple(preds[0]['mask_logits'].shape), (16, 2, 5, 6))
        self.assertEqual(tuple(preds[0]['clip_embeds'].shape), (16, 32))
        self.assertEqual(tuple(preds[1]['frame_boxes'].shape), (16, 2, 4))
        ref_mask = np.einsum('qp,pthw->qthw',
                             outs['mask_coeffs'][-1, 1].detach().double(),
                             clip_protos[1].double())
        np.testing.assert_allclose(
            preds[1]['mask_logits'].detach().numpy(), ref_mask, atol=1e-5)

    def test_loss_values_vs_reference(self):
        torch.manual_seed(0)
        head = tiny_head(
            train_cfg=dict(assigner=dict(type='_FixedVideoAssignerForTest')))
        num_frames, num_queries = 2, 4
        # clip 0: queries 0, 2 -> GT 1; query 3 -> GT 2; clip 1: query 1 ->
        # GT 1. 4 matched pairs.
        _FixedVideoAssignerForTest.plans = [{0: 1, 2: 1, 3: 2}, {1: 1}]
        _FixedVideoAssignerForTest.calls = 0
        cls_logits = torch.randn(2, num_queries, 3, requires_grad=True)
        raw = torch.rand(2, num_queries, num_frames, 4) * 0.4
        boxes = torch.cat([raw[..., :2], raw[..., :2] + 0.1 + raw[..., 2:]],
                          -1).requires_grad_()
        coeffs = torch.rand(2, num_queries, 8, requires_grad=True)
        protos = torch.rand(2, 8, num_frames, 4, 4, requires_grad=True)
        targets = [
            InstanceData(
                labels=torch.tensor([2, 0]),
                boxes=torch.tensor([[[.1, .1, .5, .5], [.2, .1, .6, .5]],
                                    [[0., 0., 0., 0.], [.5, .5, .9, .8]]]),
                valid=torch.tensor([[True, True], [False, True]]),
                match_masks=torch.rand(2, num_frames, 4, 4)),
            InstanceData(
                labels=torch.tensor([1]),
                boxes=torch.tensor([[[.3, .3, .7, .9], [.3, .35, .7, .9]]]),
                valid=torch.tensor([[True, True]]),
                match_masks=torch.rand(1, num_frames, 4, 4))
        ]
        losses = head.loss_by_step(cls_logits, boxes, coeffs, protos, targets)
        pairs = [(0, 0, 0), (0, 2, 0), (0, 3, 1), (1, 1, 0)]
        num_matched = len(pairs)

        onehot = np.zeros((2, num_queries, 3))
        for clip, query, gt in pairs:
            onehot[clip, query, int(targets[clip].labels[gt])] = 1
        ref_cls = 2.0 * focal_ref(cls_logits.detach().double().numpy(),
                                  onehot).sum(-1).mean()
        self.assertAlmostEqual(float(losses['loss_cls']), ref_cls, places=5)

        l1, giou = 0., 0.
        for clip, query, gt in pairs:
            for t in range(num_frames):
                if not bool(targets[clip].valid[gt, t]):
                    continue  # absent frame: no box loss
                pred = boxes[clip, query, t].detach().double().numpy()
                tgt = targets[clip].boxes[gt, t].double().numpy()
                l1 += np.abs(pred - tgt).sum()
                giou += 1 - giou_ref(pred, tgt)
        factor = num_frames * num_matched
        self.assertAlmostEqual(
            float(losses['loss_bbox']), 2.0 * l1 / factor, places=5)
        self.assertAlmostEqual(
            float(losses['loss_iou']), 2.0 * giou / factor, places=4)
        self.assertEqual(
            set(losses),
            {'loss_cls', 'loss_bbox', 'loss_iou', 'loss_mask', 'loss_dice'})
        self.assertTrue(all(torch.isfinite(v) for v in losses.values()))
        sum(losses.values()).backward()
        for tensor in (cls_logits, boxes, coeffs, protos):
            self.assertIsNotNone(tensor.grad)
        # unmatched queries get no box gradient
        self.assertEqual(float(boxes.grad[0, 1].abs().sum()), 0.)

    def test_deep_supervision_keys_and_empty_targets(self):
        torch.manual_seed(0)
        head = tiny_head()
        inputs = self._inputs(num_clips=1, num_queries=16)
        outs = head(**inputs)
        protos = torch.rand(1, 8, 2, 8, 12, requires_grad=True)
        empty = InstanceData(
            labels=torch.zeros(0, dtype=torch.long),
            boxes=torch.zeros(0, 2, 4),
            valid=torch.zeros(0, 2, dtype=torch.bool),
            match_masks=torch.zeros(0, 2, 8, 12))
        losses = head.loss(outs, protos, [empty])
        names = ['loss_cls', 'loss_bbox', 'loss_iou', 'loss_mask', 'loss_dice']
        expected = set(names) | {f'd{i}.{n}' for i in range(2) for n in names}
        self.assertEqual(set(losses), expected)
        for key, value in losses.items():
            if 'cls' in key:
                self.assertGreater(float(value), 0)
            else:
                self.assertEqual(float(value), 0., key)
        sum(losses.values()).backward()  # graph stays connected
        with self.assertRaisesRegex(ValueError, 'stride 4'):
            bad = empty.clone()
            bad.match_masks = torch.zeros(1, 2, 4, 4)
            bad.labels = torch.zeros(1, dtype=torch.long)
            bad.boxes = torch.zeros(1, 2, 4)
            bad.valid = torch.zeros(1, 2, dtype=torch.bool)
            head.loss(outs, protos, [bad])

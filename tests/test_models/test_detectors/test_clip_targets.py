# Copyright (c) OpenMMLab. All rights reserved.
from unittest import TestCase

import numpy as np
import torch
from mmdet.structures import DetDataSample, TrackDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData

import mdqe_mm  # noqa: F401
from mdqe_mm.models.detectors import build_clip_targets


def frame_sample(img_hw, ids, labels, boxes, masks, box_type=None):
    sample = DetDataSample(metainfo=dict(img_shape=img_hw, video_id=11))
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    if box_type is not None:
        boxes = box_type(boxes)
    sample.gt_instances = InstanceData(
        labels=torch.tensor(labels, dtype=torch.long),
        bboxes=boxes,
        masks=BitmapMasks(masks, *img_hw),
        instances_ids=torch.tensor(ids, dtype=torch.long))
    return sample


class TestBuildClipTargets(TestCase):

    def setUp(self):
        # 3 frames of 40x56 pixels padded to 64x64; instance 9 is absent
        # from frame 1, instance 4 only appears in frame 2
        rng = np.random.RandomState(0)
        self.img_hw = (40, 56)
        self.pad = (64, 64)
        self.masks = {}
        frames = []
        spec = [
            ([9, 2], [1, 0], [[4, 6, 20, 30], [30, 2, 56, 40]]),
            ([2], [0], [[28, 4, 50, 38]]),
            ([4, 9, 2], [2, 1, 0], [[0, 0, 8, 8], [6, 8, 22, 31],
                                    [26, 5, 48, 39]]),
        ]
        for t, (ids, labels, boxes) in enumerate(spec):
            masks = (rng.rand(len(ids), *self.img_hw) > 0.5).astype(np.uint8)
            for inst_id, mask in zip(ids, masks):
                self.masks[(inst_id, t)] = mask
            box_type = HorizontalBoxes if t == 1 else None
            frames.append(
                frame_sample(self.img_hw, ids, labels, boxes, masks, box_type))
        self.spec = spec
        self.video = TrackDataSample(video_data_samples=frames)

    def test_targets_vs_reference(self):
        (targets, ) = build_clip_targets([self.video], self.pad)
        self.assertEqual(targets.instances_ids.tolist(), [2, 4, 9])
        self.assertEqual(targets.labels.tolist(), [0, 2, 1])
        pad_h, pad_w = self.pad
        row = {2: 0, 4: 1, 9: 2}
        ref_boxes = np.zeros((3, 3, 4))
        ref_present = np.zeros((3, 3), bool)
        ref_masks = np.zeros((3, 3, pad_h, pad_w))
        for t, (ids, _, boxes) in enumerate(self.spec):
            for inst_id, box in zip(ids, boxes):
                r = row[inst_id]
                ref_present[r, t] = True
                ref_boxes[r, t] = [
                    min(max(box[0] / pad_w, 0), 1),
                    min(max(box[1] / pad_h, 0), 1),
                    min(max(box[2] / pad_w, 0), 1),
                    min(max(box[3] / pad_h, 0), 1)
                ]
                ref_masks[r, t, :40, :56] = self.masks[(inst_id, t)]
        np.testing.assert_array_equal(targets.present.numpy(), ref_present)
        np.testing.assert_array_equal(targets.valid.numpy(), ref_present)
        np.testing.assert_allclose(
            targets.boxes.numpy(), ref_boxes, rtol=0, atol=1e-7)
        # absent frames are all zeros
        self.assertEqual(float(targets.boxes[2, 1].abs().sum()), 0.)
        self.assertEqual(float(targets.masks[2, 1].sum()), 0.)
        np.testing.assert_array_equal(targets.masks.numpy(), ref_masks)
        # bilinear /4 with align_corners=False samples at 4i + 1.5: the
        # mean of pixels 4i+1 and 4i+2 in each direction; left soft
        ref_match = ref_masks.reshape(3, 3, 16, 4, 16, 4)[:, :, :, 1:3, :,
                                                          1:3].mean((3, 5))
        self.assertEqual(tuple(targets.match_masks.shape), (3, 3, 16, 16))
        np.testing.assert_allclose(
            targets.match_masks.numpy(), ref_match, rtol=0, atol=1e-6)
        self.assertTrue(
            bool(
                ((targets.match_masks > 0) & (targets.match_masks < 1)).any()))

    def test_degenerate_box_and_errors(self):
        frames = [
            frame_sample((32, 32), [1], [0], [[5, 5, 5, 9]],
                         np.ones((1, 32, 32), np.uint8)),
            frame_sample((32, 32), [1], [0], [[2, 2, 30, 30]],
                         np.ones((1, 32, 32), np.uint8))
        ]
        (targets, ) = build_clip_targets(
            [TrackDataSample(video_data_samples=frames)], (32, 32))
        # present in both frames, but a zero-width box has no box target
        self.assertEqual(targets.present.tolist(), [[True, True]])
        self.assertEqual(targets.valid.tolist(), [[False, True]])
        self.assertEqual(targets.boxes[0, 0].tolist(), [0., 0., 0., 0.])

        for bad_label in (-1, 3):
            frames[1].gt_instances.labels = torch.tensor([bad_label])
            with self.assertRaisesRegex(ValueError, r'outside \[0, 3\)'):
                build_clip_targets(
                    [TrackDataSample(video_data_samples=frames)], (32, 32),
                    num_classes=3)
        frames[1].gt_instances.labels = torch.tensor([2])
        build_clip_targets([TrackDataSample(video_data_samples=frames[1:])],
                           (32, 32),
                           num_classes=3)
        with self.assertRaisesRegex(ValueError, 'instance 1 has label'):
            build_clip_targets([TrackDataSample(video_data_samples=frames)],
                               (32, 32))
        del frames[1].gt_instances.instances_ids
        with self.assertRaisesRegex(KeyError, 'instances_ids'):
            build_clip_targets([TrackDataSample(video_data_samples=frames)],
                               (32, 32))

    def test_empty_clip(self):
        frames = [
            frame_sample((32, 32), [], [], [], np.zeros((0, 32, 32), np.uint8))
            for _ in range(2)
        ]
        (targets, ) = build_clip_targets(
            [TrackDataSample(video_data_samples=frames)], (32, 32))
        self.assertEqual(len(targets), 0)
        self.assertEqual(tuple(targets.boxes.shape), (0, 2, 4))
        self.assertEqual(tuple(targets.match_masks.shape), (0, 2, 8, 8))

# Copyright (c) OpenMMLab. All rights reserved.
import copy
import math

import numpy as np
import pytest
import torch
from mmcv.transforms import TransformBroadcaster
from mmdet.datasets import CocoDataset
from mmdet.models.data_preprocessors import TrackDataPreprocessor
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from mdqe_mm.datasets import OVIS_CLASSES, VISDataset
from mdqe_mm.datasets.transforms import (ClipDriftCrop, ClipFrameSample,
                                         ClipMonotoneRotate, FilterEmptyClip,
                                         ImageToPseudoVideo)

init_default_scope('mmdet')

LOAD = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadTrackAnnotations', with_mask=True)
]


def clip_pipeline(transforms, num_frames=4, frame_range=10):
    return [
        dict(
            type='ClipFrameSample',
            num_frames=num_frames,
            frame_range=frame_range),
        dict(
            type='TransformBroadcaster',
            share_random_params=True,
            transforms=transforms)
    ]


def synthetic_dataset(root, pipeline, **kwargs):
    return VISDataset(
        data_root=str(root),
        ann_file='annotations/train.json',
        data_prefix=dict(img_path='train/JPEGImages'),
        preset='synthetic_vis',
        pipeline=pipeline,
        **kwargs)


def check_boxes_match_masks(results, tol):
    """Each box is the tight box of its (non-empty) mask, within tol px."""
    for t in range(len(results['img'])):
        masks = results['gt_masks'][t]
        boxes = results['gt_bboxes'][t]
        boxes = boxes.numpy() if isinstance(boxes, HorizontalBoxes) else boxes
        num = len(masks)
        assert (masks.height, masks.width) == results['img'][t].shape[:2]
        for key in ('gt_bboxes_labels', 'gt_instances_ids', 'gt_ignore_flags'):
            assert len(results[key][t]) == num
        assert boxes.shape == (num, 4)
        for k in range(num):
            ys, xs = np.nonzero(masks.masks[k])
            assert xs.size > 0, 'empty mask kept'
            tight = np.array(
                [xs.min(), ys.min(),
                 xs.max() + 1, ys.max() + 1], float)
            np.testing.assert_allclose(boxes[k], tight, atol=tol)


# ---------------------------------------------------------------------------
# the same random parameters for every frame of a clip
# ---------------------------------------------------------------------------
def test_clip_shares_random_parameters(synthetic_root):
    transforms = LOAD + [
        dict(
            type='RandomApply',
            prob=0.5,
            transforms=[
                dict(
                    type='ClipDriftCrop',
                    crop_size=(0.6, 0.6),
                    crop_type='relative_range')
            ]),
        dict(
            type='RandomChoiceResize',
            scales=[(400, s) for s in (64, 80, 96, 112)],
            keep_ratio=True,
            resize_type='mmdet.Resize'),
        dict(type='RandomFlip', prob=0.5),
    ]
    ds = synthetic_dataset(synthetic_root, clip_pipeline(transforms))
    np.random.seed(0)
    shapes, flips = set(), set()
    for i in range(24):
        out = ds[i % len(ds)]
        assert len(set(out['img_shape'])) == 1
        assert len(set(out['flip'])) == 1
        assert len({tuple(s) for s in out['scale_factor']}) == 1
        shapes.add(out['img_shape'][0])
        flips.add(out['flip'][0])
        # frames of a clip are not all identical (different video frames)
        assert any(not np.array_equal(out['img'][0], img)
                   for img in out['img'][1:]) or len(set(out['frame_id'])) == 1
    # the parameters do vary between clips
    assert len(shapes) >= 3 and flips == {True, False}


# ---------------------------------------------------------------------------
# drifting crop
# ---------------------------------------------------------------------------
def coordinate_clip(num_frames, height=60, width=80):
    ys, xs = np.mgrid[0:height, 0:width]
    img = np.stack([xs, ys, np.zeros_like(xs)], -1).astype(np.uint8)
    mask = np.zeros((2, height, width), np.uint8)
    mask[0, 10:50, 5:75] = 1
    mask[1, 0:8, 0:8] = 1
    frame = dict(
        img=img,
        img_shape=(height, width),
        gt_masks=BitmapMasks(mask, height, width),
        gt_bboxes=HorizontalBoxes(
            np.array([[5, 10, 75, 50], [0, 0, 8, 8]], np.float32)),
        gt_bboxes_labels=np.array([0, 1]),
        gt_instances_ids=np.array([7, 8], np.int32),
        gt_ignore_flags=np.array([False, False]))
    results = {
        key: [copy.deepcopy(value) for _ in range(num_frames)]
        for key, value in frame.items()
    }
    results['clip_frame_index'] = list(range(num_frames))
    results['video_length'] = [num_frames] * num_frames
    return results, mask


def test_drift_crop_moves_linearly_and_monotonically():
    num_frames = 6
    wrapper = TransformBroadcaster(
        transforms=[ClipDriftCrop(crop_size=(40, 30), crop_type='absolute')],
        share_random_params=True)
    np.random.seed(0)
    moving = 0
    for _ in range(20):
        results, mask = coordinate_clip(num_frames)
        out = wrapper(results)
        offsets = []
        for t in range(num_frames):
            img = out['img'][t]
            assert img.shape[:2] == (30, 40)
            assert out['img_shape'][t] == (30, 40)
            x0, y0 = int(img[0, 0, 0]), int(img[0, 0, 1])
            offsets.append((x0, y0))
            # content is the source window (independent check of the crop)
            np.testing.assert_array_equal(
                img[..., 0],
                np.arange(x0, x0 + 40)[None].repeat(30, 0))
            # masks are the source masks in that window; boxes are tight
            kept_ids = out['gt_instances_ids'][t].tolist()
            for k, inst in enumerate(kept_ids):
                src = mask[[7, 8].index(inst), y0:y0 + 30, x0:x0 + 40]
                np.testing.assert_array_equal(out['gt_masks'][t].masks[k], src)
            for inst, src in zip([7, 8], mask):
                visible = src[y0:y0 + 30, x0:x0 + 40].any()
                assert (inst in kept_ids) == visible
        check_boxes_match_masks(out, tol=0)
        offsets = np.array(offsets, float)
        for axis in range(2):
            diffs = np.diff(offsets[:, axis])
            assert (diffs >= 0).all() or (diffs <= 0).all()
            # linear between the first and last corner (rounding: 1 px)
            line = offsets[0, axis] + (offsets[-1, axis] - offsets[0, axis]
                                       ) * np.arange(num_frames) / (
                                           num_frames - 1)
            assert np.abs(offsets[:, axis] - line).max() <= 1.0
        assert offsets[:, 0].min() >= 0 and offsets[:, 0].max() <= 40
        assert offsets[:, 1].min() >= 0 and offsets[:, 1].max() <= 30
        moving += not np.array_equal(offsets[0], offsets[-1])
    assert moving >= 15


def test_drift_crop_needs_shared_randomness_and_clip_index():
    results, _ = coordinate_clip(3)
    frame = {k: v[0] for k, v in results.items()}
    with pytest.raises(RuntimeError, match='share_random_params=True'):
        ClipDriftCrop(crop_size=(40, 30), crop_type='absolute')(frame)
    frame.pop('clip_frame_index')
    with pytest.raises(KeyError, match='clip_frame_index'):
        ClipDriftCrop(crop_size=(40, 30), crop_type='absolute')(frame)
    with pytest.raises(ValueError):
        ClipDriftCrop(crop_size=(1.5, 0.5), crop_type='relative')
    with pytest.raises(ValueError):
        ClipDriftCrop(crop_size=(10, 5), crop_type='absolute_range')
    with pytest.raises(ValueError):
        ClipDriftCrop(crop_size=(10, 5), crop_type='bogus')
    assert 'crop_type' in repr(ClipDriftCrop(crop_size=(3, 4)))


# ---------------------------------------------------------------------------
# pseudo-video rotation
# ---------------------------------------------------------------------------
def orientation_deg(mask):
    """Principal-axis angle of a mask in image coordinates (y down)."""
    ys, xs = np.nonzero(mask)
    xs, ys = xs.astype(np.float64), ys.astype(np.float64)
    dx, dy = xs - xs.mean(), ys - ys.mean()
    mu20, mu02, mu11 = (dx * dx).mean(), (dy * dy).mean(), (dx * dy).mean()
    return math.degrees(0.5 * math.atan2(2 * mu11, mu20 - mu02))


def test_pseudo_video_rotation_is_monotone():
    num_frames, size = 5, 96
    wrapper = TransformBroadcaster(
        transforms=[ClipMonotoneRotate(max_angle=15.0)],
        share_random_params=True)
    np.random.seed(0)
    directions = set()
    for _ in range(12):
        mask = np.zeros((1, size, size), np.uint8)
        mask[0, 46:50, 18:78] = 1
        frame = dict(
            img=np.full((size, size, 3), 200, np.uint8),
            gt_masks=BitmapMasks(mask, size, size),
            gt_bboxes=HorizontalBoxes(
                np.array([[18, 46, 78, 50]], np.float32)),
            gt_bboxes_labels=np.array([0]),
            gt_instances_ids=np.array([0], np.int32),
            gt_ignore_flags=np.array([False]))
        results = {
            k: [copy.deepcopy(v) for _ in range(num_frames)]
            for k, v in frame.items()
        }
        results['clip_frame_index'] = list(range(num_frames))
        results['video_length'] = [num_frames] * num_frames
        out = wrapper(results)
        angles = np.array(out['rotate_angle'])
        measured = np.array(
            [orientation_deg(m.masks[0]) for m in out['gt_masks']])
        assert np.abs(angles).max() <= 15.0
        # positive angles turn the bar clockwise on screen: +angle in y-down
        np.testing.assert_allclose(measured, angles, atol=1.5)
        diffs = np.diff(measured)
        assert (diffs >= -0.5).all() or (diffs <= 0.5).all()
        directions.add(bool(angles[-1] >= angles[0]))
        check_boxes_match_masks(out, tol=0)
        # the image is rotated with the mask: the bar region stays inside
        # the rotated image's valid area, so its pixels keep the fill value
        for img, m in zip(out['img'], out['gt_masks']):
            assert (img[m.masks[0] > 0] == 200).all()
    assert directions == {True, False}


# ---------------------------------------------------------------------------
# COCO image -> pseudo-video
# ---------------------------------------------------------------------------
def coco_like_image(height=64, width=80):
    classes = CocoDataset.METAINFO['classes']
    rng = np.random.default_rng(0)
    masks = np.zeros((3, height, width), np.uint8)
    masks[0, 5:40, 5:30] = 1  # person
    masks[1, 20:60, 40:75] = 1  # toaster: no OVIS class
    masks[2, 30:50, 10:50] = 1  # car -> Vehical
    boxes = np.array([[5, 5, 30, 40], [40, 20, 75, 60], [10, 30, 50, 50]],
                     np.float32)
    return dict(
        img=rng.integers(0, 255, (height, width, 3)).astype(np.uint8),
        img_path='coco/000001.jpg',
        img_id=42,
        img_shape=(height, width),
        ori_shape=(height, width),
        instances=[dict(bbox=list(b)) for b in boxes],
        gt_bboxes=HorizontalBoxes(boxes),
        gt_bboxes_labels=np.array([
            classes.index('person'),
            classes.index('toaster'),
            classes.index('car')
        ]),
        gt_masks=BitmapMasks(masks, height, width),
        gt_ignore_flags=np.array([False, False, False]))


def test_image_to_pseudo_video_maps_labels_and_replicates():
    out = ImageToPseudoVideo(num_frames=3, label_map='ovis')(coco_like_image())
    assert 'instances' not in out
    for key, value in out.items():
        assert isinstance(value, list) and len(value) == 3, key
    assert out['frame_id'] == [0, 1, 2]
    assert out['clip_frame_index'] == [0, 1, 2]
    assert out['video_id'] == [42] * 3
    for t in range(3):
        assert out['gt_bboxes_labels'][t].tolist() == [
            OVIS_CLASSES.index('Person'),
            OVIS_CLASSES.index('Vehical')
        ]
        assert out['gt_instances_ids'][t].tolist() == [0, 1]
        assert len(out['gt_masks'][t]) == 2
    # copies, not views of one array
    out['img'][0][:] = 0
    assert out['img'][1].any()
    # nothing mapped -> skipped
    image = coco_like_image()
    image['gt_bboxes_labels'][:] = CocoDataset.METAINFO['classes'].index(
        'toaster')
    assert ImageToPseudoVideo(label_map='youtube_vis_2021')(image) is None
    with pytest.raises(ValueError, match='target_classes'):
        ImageToPseudoVideo(label_map=dict(person='human'))
    with pytest.raises(ValueError, match='not in target_classes'):
        ImageToPseudoVideo(
            label_map=dict(person='human'), target_classes=('man', ))


def test_pseudo_video_pipeline_keeps_masks_and_boxes_consistent():
    pipeline = [
        dict(type='ImageToPseudoVideo', num_frames=4, label_map='ovis'),
        dict(
            type='TransformBroadcaster',
            share_random_params=True,
            transforms=[
                dict(type='ClipMonotoneRotate', max_angle=15.0),
                dict(
                    type='ClipDriftCrop',
                    crop_size=(40, 56),
                    crop_type='absolute_range'),
                dict(type='RandomFlip', prob=0.5),
            ]),
        dict(type='FilterEmptyClip'),
        dict(type='PackTrackInputs')
    ]
    transforms = [TRANSFORMS.build(t) for t in pipeline]
    np.random.seed(1)
    for _ in range(8):
        results = coco_like_image()
        for t in transforms[:3]:
            results = t(results)
            if results is None:
                break
        if results is None:
            continue
        check_boxes_match_masks(results, tol=0)
        packed = transforms[3](results)
        assert packed['inputs'].shape[:2] == (4, 3)
        labels = {}
        for det in packed['data_samples']:
            for i, label in zip(det.gt_instances.instances_ids.tolist(),
                                det.gt_instances.labels.tolist()):
                assert labels.setdefault(i, label) == label


# ---------------------------------------------------------------------------
# mask/box consistency after every step of the VIS training pipeline
# ---------------------------------------------------------------------------
def test_masks_and_boxes_stay_consistent_after_each_transform(synthetic_root):
    steps = LOAD + [
        dict(
            type='ClipDriftCrop',
            crop_size=(0.6, 0.6),
            crop_type='relative_range'),
        dict(
            type='RandomChoiceResize',
            scales=[(400, s) for s in (90, 130)],
            keep_ratio=True,
            resize_type='mmdet.Resize'),
        dict(type='RandomFlip', prob=0.5),
        dict(type='ClipMonotoneRotate', max_angle=10.0),
    ]
    for num_steps in range(2, len(steps) + 1):
        ds = synthetic_dataset(synthetic_root,
                               clip_pipeline(steps[:num_steps]))
        np.random.seed(num_steps)
        for i in range(4):
            out = ds[i]
            # after a resize the scaled JSON box and the resized mask's
            # tight box can differ by up to the scale factor; the crop and
            # rotation recompute boxes from masks
            scale = max(out['scale_factor'][0]) if 'scale_factor' in out \
                else 1.0
            recomputed = steps[num_steps - 1]['type'] in ('ClipDriftCrop',
                                                          'ClipMonotoneRotate')
            tol = 0 if recomputed or num_steps == 2 else math.ceil(scale) + 1
            check_boxes_match_masks(out, tol=tol)


# ---------------------------------------------------------------------------
# packing and the track data preprocessor
# ---------------------------------------------------------------------------
def test_packed_clips_feed_track_data_preprocessor(synthetic_root):
    transforms = LOAD + [
        dict(
            type='RandomChoiceResize',
            scales=[(400, s) for s in (64, 96)],
            keep_ratio=True,
            resize_type='mmdet.Resize'),
        dict(type='RandomFlip', prob=0.5),
    ]
    pipeline = clip_pipeline(transforms) + [
        dict(type='FilterEmptyClip'),
        dict(type='PackTrackInputs')
    ]
    ds = synthetic_dataset(synthetic_root, pipeline)
    np.random.seed(5)
    batch = pseudo_collate([ds[0], ds[1], ds[2]])
    for inputs in batch['inputs']:
        assert inputs.dtype == torch.uint8 and inputs.shape[:2] == (4, 3)
    preprocessor = TrackDataPreprocessor(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        pad_mask=True)
    out = preprocessor(batch, training=True)
    inputs = out['inputs']
    assert inputs.dim() == 5 and inputs.shape[:3] == (3, 4, 3)
    assert inputs.shape[3] % 32 == 0 and inputs.shape[4] % 32 == 0
    assert inputs.dtype == torch.float32
    for sample in out['data_samples']:
        assert len(sample) == 4
        ids_labels = {}
        for det in sample:
            meta = det.metainfo
            for key in ('video_id', 'frame_id', 'video_length', 'img_path',
                        'ori_shape', 'img_shape', 'scale_factor', 'flip',
                        'batch_input_shape', 'pad_shape'):
                assert key in meta, key
            assert meta['batch_input_shape'] == tuple(inputs.shape[-2:])
            gt = det.gt_instances
            n = len(gt)
            assert gt.bboxes.shape == (n, 4) and gt.labels.shape == (n, )
            assert gt.masks.masks.shape == (n, *inputs.shape[-2:])
            assert gt.instances_ids.shape == (n, )
            assert len(det.ignored_instances) == 0
            for i, label in zip(gt.instances_ids.tolist(), gt.labels.tolist()):
                assert ids_labels.setdefault(i, label) == label
        assert ids_labels, 'clip without instances'


def test_crowd_instances_are_packed_as_ignored(tiny_vis_root):
    pipeline = [
        dict(type='ClipFrameSample', whole_video=True),
        dict(type='TransformBroadcaster', transforms=LOAD),
        dict(type='PackTrackInputs')
    ]
    ds = VISDataset(
        data_root=str(tiny_vis_root),
        ann_file='vis_tiny_ytvis2019.json',
        data_prefix=dict(img_path='frames'),
        preset='youtube_vis_2019',
        pipeline=pipeline)
    samples = ds[0]['data_samples']
    assert [s.ignored_instances.instances_ids.tolist()
            for s in samples] == [[12], [12], [12]]
    assert [s.gt_instances.instances_ids.tolist()
            for s in samples] == [[11], [], [11]]


def test_filter_empty_clip():
    results = dict(
        gt_instances_ids=[np.array([3]), np.array([], np.int32)],
        gt_ignore_flags=[np.array([True]),
                         np.array([], bool)])
    assert FilterEmptyClip()(results) is None
    results['gt_ignore_flags'][0][:] = False
    assert FilterEmptyClip()(results) is results
    assert FilterEmptyClip(min_num_instances=2)(results) is None
    with pytest.raises(ValueError):
        FilterEmptyClip(min_num_instances=0)


def test_clip_frame_sample_registered():
    assert isinstance(
        TRANSFORMS.build(dict(type='ClipFrameSample')), ClipFrameSample)

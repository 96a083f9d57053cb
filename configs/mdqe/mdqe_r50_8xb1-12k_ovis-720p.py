# Copyright (c) OpenMMLab. All rights reserved.
# MDQE R50 on OVIS at 720p (MDQE_SPEC §6 "R50_ovis_720"): the 360p config
# with 8 GPUs x 1 clip, lr 5e-5, training short side 480..800 (max 1333),
# test short side 640, windows of 20 frames merged on the CPU, class
# threshold 0.2. Paper: 33.0 AP (OVIS val); README: 32.3 AP (640p).
_base_ = './mdqe_r50_8xb2-12k_ovis.py'

train_short_sides = tuple(range(480, 801, 32))
train_max_size = 1333
test_short_side = 640
test_max_size = 1333

model = dict(test_cfg=dict(window_length=20, cls_thr=0.2, merge_on_cpu=True))
optim_wrapper = dict(optimizer=dict(lr=5e-5))
auto_scale_lr = dict(base_batch_size=8)

# configs replace lists as a whole: the pipelines (and the list of mixed
# data sets holding them) are restated around the new resize
clip_resize = dict(
    type='RandomChoiceResize',
    scales=[(train_max_size, s) for s in train_short_sides],
    keep_ratio=True,
    backend='pillow',
    resize_type='mmdet.Resize')
train_pipeline = [
    dict(type='ClipFrameSample', num_frames=4, frame_range=10),
    dict(
        type='TransformBroadcaster',
        share_random_params=True,
        transforms=[
            dict(type='LoadImageFromFile', backend_args=None),
            dict(type='LoadTrackAnnotations', with_mask=True),
            {{_base_.clip_drift_crop}}, clip_resize,
            dict(type='RandomFlip', prob=0.5)
        ]),
    dict(type='FilterEmptyClip'), {{_base_.pack_clip}}
]
coco_pseudo_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='ImageToPseudoVideo', num_frames=4, label_map='ovis'),
    dict(
        type='TransformBroadcaster',
        share_random_params=True,
        transforms=[
            dict(type='ClipMonotoneRotate', max_angle=15.0),
            {{_base_.pseudo_drift_crop}}, clip_resize,
            dict(type='RandomFlip', prob=0.5)
        ]),
    dict(type='FilterEmptyClip'), {{_base_.pack_clip}}
]
test_pipeline = [
    dict(
        type='TransformBroadcaster',
        transforms=[
            dict(type='LoadImageFromFile', backend_args=None),
            dict(
                type='Resize',
                scale=(test_max_size, test_short_side),
                keep_ratio=True,
                backend='pillow'),
        ]),
    dict(type='PackTrackInputs')
]
train_dataloader = dict(
    batch_size=1,
    dataset=dict(datasets=[
        dict(
            type='VISDataset',
            preset='ovis',
            data_root='data/ovis/',
            ann_file='annotations/train_sub.json',
            data_prefix=dict(img_path='train/'),
            pipeline=train_pipeline,
            backend_args=None),
        dict(
            type='CocoDataset',
            data_root='data/coco/',
            ann_file='annotations/instances_train2017.json',
            data_prefix=dict(img='train2017/'),
            filter_cfg=dict(filter_empty_gt=True, min_size=32),
            pipeline=coco_pseudo_pipeline,
            backend_args=None),
    ]))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

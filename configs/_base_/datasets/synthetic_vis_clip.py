# Copyright (c) OpenMMLab. All rights reserved.
# Synthetic occluded-object videos (OVIS format), generated under data_root
# on first use by SyntheticVISDataset (mdqe_mm/datasets/synthetic.py, or
# tools/dataset_converters/make_synthetic_vis.py). The default set is 36
# train + 10 valid videos of 10 frames at 96x160 with 4 shape categories, so
# the pipeline works at small scales to stay cheap on a CPU. Same clip recipe
# as the real data sets: T-frame clips within +-frame_range, one short side
# and one flip per clip, and with p=0.5 a drifting crop.
dataset_type = 'SyntheticVISDataset'
data_root = 'data/synthetic_vis/'
num_frames = 4
frame_range = 10
generator_cfg = dict(
    num_train_videos=36,
    num_valid_videos=10,
    num_frames=10,
    height=96,
    width=160,
    seed=0)
train_short_sides = (96, 112, 128)
train_max_size = 320
crop_size = (0.7, 0.7)
test_short_side = 96
test_max_size = 320
backend_args = None

train_pipeline = [
    dict(
        type='ClipFrameSample', num_frames=num_frames,
        frame_range=frame_range),
    dict(
        type='TransformBroadcaster',
        share_random_params=True,
        transforms=[
            dict(type='LoadImageFromFile', backend_args=backend_args),
            dict(type='LoadTrackAnnotations', with_mask=True),
            dict(
                type='RandomApply',
                prob=0.5,
                transforms=[
                    dict(
                        type='ClipDriftCrop',
                        crop_size=crop_size,
                        crop_type='relative_range')
                ]),
            dict(
                type='RandomChoiceResize',
                scales=[(train_max_size, s) for s in train_short_sides],
                keep_ratio=True,
                resize_type='mmdet.Resize'),
            dict(type='RandomFlip', prob=0.5),
        ]),
    dict(type='FilterEmptyClip'),
    dict(
        type='PackTrackInputs',
        default_meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                           'scale_factor', 'flip', 'flip_direction',
                           'frame_id', 'video_id', 'video_length',
                           'ori_video_length'))
]
test_pipeline = [
    dict(
        type='TransformBroadcaster',
        transforms=[
            dict(type='LoadImageFromFile', backend_args=backend_args),
            dict(
                type='Resize',
                scale=(test_max_size, test_short_side),
                keep_ratio=True),
        ]),
    dict(type='PackTrackInputs')
]

train_dataloader = dict(
    batch_size=2,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=dict(type='TrackAspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        generator_cfg=generator_cfg,
        ann_file='annotations/train.json',
        data_prefix=dict(img_path='train/JPEGImages/'),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        generator_cfg=generator_cfg,
        ann_file='annotations/valid.json',
        data_prefix=dict(img_path='valid/JPEGImages/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

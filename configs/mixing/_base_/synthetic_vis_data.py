# Copyright (c) OpenMMLab. All rights reserved.
# The synthetic occlusion videos (generated under data/synthetic_vis/ on
# first use, 96x160 frames) for mmdet's video models, as variables with
# names of their own: a config that inherits a stock mmdet config as well
# takes them with
#   train_dataloader = {{_base_.synthetic_vis_train_dataloader}}
# (mmengine forbids the same key in two bases). 2-frame training clips, as
# Mask2FormerVideo (num_frames=2) and MaskTrackRCNN (key + reference frame)
# train. Resize keeps the 96x160 frames as they are; it records the scale
# factor that the detectors' predict needs.
synthetic_vis_data_root = 'data/synthetic_vis/'
synthetic_vis_num_classes = 4  # disc, square, triangle, cross
synthetic_vis_generator_cfg = dict(
    num_train_videos=36,
    num_valid_videos=10,
    num_frames=10,
    height=96,
    width=160,
    seed=0)
synthetic_vis_train_pipeline = [
    dict(type='ClipFrameSample', num_frames=2, frame_range=3),
    dict(
        type='TransformBroadcaster',
        share_random_params=True,
        transforms=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadTrackAnnotations', with_mask=True),
            dict(type='Resize', scale=(160, 96), keep_ratio=True),
            dict(type='RandomFlip', prob=0.5),
        ]),
    dict(type='FilterEmptyClip'),
    dict(type='PackTrackInputs')
]
synthetic_vis_test_pipeline = [
    dict(
        type='TransformBroadcaster',
        transforms=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(160, 96), keep_ratio=True),
            dict(type='LoadTrackAnnotations', with_mask=True),
        ]),
    dict(type='PackTrackInputs')
]
synthetic_vis_train_dataloader = dict(
    _delete_=True,
    batch_size=2,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=dict(type='TrackAspectRatioBatchSampler'),
    dataset=dict(
        type='SyntheticVISDataset',
        data_root=synthetic_vis_data_root,
        generator_cfg=synthetic_vis_generator_cfg,
        ann_file='annotations/train.json',
        data_prefix=dict(img_path='train/JPEGImages/'),
        pipeline=synthetic_vis_train_pipeline))
synthetic_vis_val_dataloader = dict(
    _delete_=True,
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type='SyntheticVISDataset',
        data_root=synthetic_vis_data_root,
        generator_cfg=synthetic_vis_generator_cfg,
        ann_file='annotations/valid.json',
        data_prefix=dict(img_path='valid/JPEGImages/'),
        test_mode=True,
        pipeline=synthetic_vis_test_pipeline))
synthetic_vis_val_evaluator = dict(
    _delete_=True,
    type='VISMetric',
    ann_file=synthetic_vis_data_root + 'annotations/valid.json')
# separate objects: a {{_base_.x}} value shared by two keys loses its
# _delete_ in the first merge and would be merged into the stock settings
synthetic_vis_test_dataloader = dict(synthetic_vis_val_dataloader)
synthetic_vis_test_evaluator = dict(synthetic_vis_val_evaluator)
# a short CPU schedule; validation at the end
synthetic_vis_max_iters = 2000
synthetic_vis_train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=synthetic_vis_max_iters,
    val_interval=synthetic_vis_max_iters)

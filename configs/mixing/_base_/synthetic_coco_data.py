# Copyright (c) OpenMMLab. All rights reserved.
# The frames of the synthetic occlusion videos as a COCO instance data set
# (SyntheticCocoDataset writes annotations/{split}_frames_coco.json from the
# videos on first use), for mmdet's image models, as variables with names of
# their own: a config that inherits a stock mmdet config as well takes them
# with `train_dataloader = {{_base_.synthetic_coco_train_dataloader}}`
# (mmengine forbids the same key in two bases).
synthetic_coco_data_root = 'data/synthetic_vis/'
synthetic_coco_num_classes = 4  # disc, square, triangle, cross
synthetic_coco_generator_cfg = dict(
    num_train_videos=36,
    num_valid_videos=10,
    num_frames=10,
    height=96,
    width=160,
    seed=0)
# Resize keeps the 96x160 frames as they are; it records the scale factor
# that the detectors' predict needs to rescale to the original image.
synthetic_coco_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(160, 96), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
synthetic_coco_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(160, 96), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
synthetic_coco_train_dataloader = dict(
    _delete_=True,
    batch_size=2,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type='SyntheticCocoDataset',
        data_root=synthetic_coco_data_root,
        generator_cfg=synthetic_coco_generator_cfg,
        ann_file='annotations/train_frames_coco.json',
        data_prefix=dict(img='train/JPEGImages/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=synthetic_coco_train_pipeline))
synthetic_coco_val_dataloader = dict(
    _delete_=True,
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='SyntheticCocoDataset',
        data_root=synthetic_coco_data_root,
        generator_cfg=synthetic_coco_generator_cfg,
        ann_file='annotations/valid_frames_coco.json',
        data_prefix=dict(img='valid/JPEGImages/'),
        test_mode=True,
        pipeline=synthetic_coco_test_pipeline))
# a separate object: a {{_base_.x}} value shared by two keys loses its
# _delete_ in the first merge and would be merged into the stock settings
synthetic_coco_test_dataloader = dict(synthetic_coco_val_dataloader)
synthetic_coco_max_iters = 2000
synthetic_coco_train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=synthetic_coco_max_iters,
    val_interval=synthetic_coco_max_iters)

# Copyright (c) OpenMMLab. All rights reserved.
# MDQE R50 on OVIS at 720p (MDQE_SPEC §6 "R50_ovis_720"): 8 GPUs x 1 clip,
# lr 5e-5, training short side 480..800 (max 1333), test short side 640,
# windows of 20 frames merged on the CPU, class threshold 0.2.
# Paper: 33.0 AP (OVIS val); README: 32.3 AP (640p).
_base_ = './mdqe_r50_8xb2-12k_ovis.py'

train_short_sides = (480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800)
train_max_size = 1333
test_short_side = 640
test_max_size = 1333
num_frames = 4
backend_args = None
pack_meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape',
                  'scale_factor', 'flip', 'flip_direction', 'frame_id',
                  'video_id', 'video_length', 'ori_video_length')

model = dict(test_cfg=dict(window_length=20, cls_thr=0.2, merge_on_cpu=True))

optim_wrapper = dict(optimizer=dict(lr=5e-5))

ovis_train_pipeline = [
    dict(type='ClipFrameSample', num_frames=num_frames, frame_range=10),
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
                        type='RandomChoiceResize',
                        scales=[(1333, s) for s in (400, 500, 600)],
                        keep_ratio=True,
                        resize_type='mmdet.Resize'),
                    dict(
                        type='ClipDriftCrop',
                        crop_size=(0.8, 0.8),
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
    dict(type='PackTrackInputs', default_meta_keys=pack_meta_keys)
]
coco_pseudo_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='ImageToPseudoVideo', num_frames=num_frames, label_map='ovis'),
    dict(
        type='TransformBroadcaster',
        share_random_params=True,
        transforms=[
            dict(type='ClipMonotoneRotate', max_angle=15.0),
            dict(
                type='RandomApply',
                prob=0.5,
                transforms=[
                    dict(
                        type='RandomChoiceResize',
                        scales=[(1333, s) for s in (400, 500, 600)],
                        keep_ratio=True,
                        resize_type='mmdet.Resize'),
                    dict(
                        type='ClipDriftCrop',
                        crop_size=(384, 600),
                        crop_type='absolute_range')
                ]),
            dict(
                type='RandomChoiceResize',
                scales=[(train_max_size, s) for s in train_short_sides],
                keep_ratio=True,
                resize_type='mmdet.Resize'),
            dict(type='RandomFlip', prob=0.5),
        ]),
    dict(type='FilterEmptyClip'),
    dict(type='PackTrackInputs', default_meta_keys=pack_meta_keys)
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
    batch_size=1,
    dataset=dict(datasets=[
        dict(
            type='VISDataset',
            preset='ovis',
            data_root='data/ovis/',
            ann_file='annotations/train_sub.json',
            data_prefix=dict(img_path='train/'),
            pipeline=ovis_train_pipeline,
            backend_args=backend_args),
        dict(
            type='CocoDataset',
            data_root='data/coco/',
            ann_file='annotations/instances_train2017.json',
            data_prefix=dict(img='train2017/'),
            filter_cfg=dict(filter_empty_gt=True, min_size=32),
            pipeline=coco_pseudo_pipeline,
            backend_args=backend_args),
    ]))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
auto_scale_lr = dict(base_batch_size=8)

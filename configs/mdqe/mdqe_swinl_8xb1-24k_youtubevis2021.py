# Copyright (c) OpenMMLab. All rights reserved.
# MDQE SwinV2-L on YouTube-VIS 2021 (MDQE_SPEC §6 "swinl_ytvis21"): the
# Swin-L OVIS config with 40 classes, 3-frame clips (+-10), training short
# side 320..544 (max 1024), a relative crop of 0.7, test short side 360 with
# 4-frame test clips and windows of 20 frames (merged on the GPU),
# association window 7, at most 70 instances (10 per frame), and YTVIS-2021
# clips mixed with COCO pseudo-videos mapped to its classes.
# README: 55.5 AP (YTVIS-21 val).
_base_ = './mdqe_swinl_8xb1-24k_ovis.py'

num_classes = 40
num_frames = 3
frame_range = 10
train_short_sides = tuple(range(320, 545, 32))
train_max_size = 1024
crop_size = (0.7, 0.7)
test_short_side = 360
model = dict(
    num_frames=num_frames,
    query_selection=dict(num_classes=num_classes, train_window=7),
    track_head=dict(num_classes=num_classes),
    test_cfg=dict(
        clip_length=4,
        window_length=20,
        merge_on_cpu=False,
        max_num_instances=70,
        max_per_frame=10))

dataset_version = '2021'
dataset_preset = 'youtube_vis_' + dataset_version
data_root = f'data/youtube_vis_{dataset_version}/'
test_ann_file = 'valid/instances.json'

clip_drift_crop = dict(
    type='RandomApply',
    prob=0.5,
    transforms=[{{_base_.crop_pre_resize}},
                dict(
                    type='ClipDriftCrop',
                    crop_size=crop_size,
                    crop_type='relative_range')])
clip_resize = dict(
    type='RandomChoiceResize',
    scales=[(train_max_size, s) for s in train_short_sides],
    keep_ratio=True,
    backend='pillow',
    resize_type='mmdet.Resize')
train_pipeline = [
    dict(
        type='ClipFrameSample', num_frames=num_frames,
        frame_range=frame_range),
    dict(
        type='TransformBroadcaster',
        share_random_params=True,
        transforms=[
            dict(type='LoadImageFromFile', backend_args=None),
            dict(type='LoadTrackAnnotations', with_mask=True), clip_drift_crop,
            clip_resize,
            dict(type='RandomFlip', prob=0.5)
        ]),
    dict(type='FilterEmptyClip'), {{_base_.pack_clip}}
]
pseudo_clip_augment = dict(
    type='TransformBroadcaster',
    share_random_params=True,
    transforms=[
        dict(type='ClipMonotoneRotate', max_angle=15.0),
        {{_base_.pseudo_drift_crop}}, clip_resize,
        dict(type='RandomFlip', prob=0.5)
    ])
coco_pseudo_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='ImageToPseudoVideo',
        num_frames=num_frames,
        label_map=dataset_preset), pseudo_clip_augment,
    dict(type='FilterEmptyClip'), {{_base_.pack_clip}}
]
coco_pseudo_dataset = dict(pipeline=coco_pseudo_pipeline)
test_pipeline = [
    dict(
        type='TransformBroadcaster',
        transforms=[
            dict(type='LoadImageFromFile', backend_args=None),
            dict(
                type='Resize',
                scale=(1333, test_short_side),
                keep_ratio=True,
                backend='pillow'),
        ]),
    dict(type='PackTrackInputs')
]
train_dataloader = dict(
    dataset=dict(datasets=[
        dict(
            type='VISDataset',
            preset=dataset_preset,
            data_root=data_root,
            ann_file='annotations/train_sub.json',
            data_prefix=dict(img_path='train/JPEGImages/'),
            pipeline=train_pipeline,
            backend_args=None),
        dict(
            type='CocoDataset',
            data_root='data/coco/',
            ann_file='annotations/instances_train2017.json',
            data_prefix=dict(img='train2017/'),
            filter_cfg=dict(filter_empty_gt=True, min_size=32),
            pipeline=coco_pseudo_pipeline,
            backend_args=None)
    ]))
val_dataloader = dict(
    dataset=dict(
        preset=dataset_preset,
        data_root=data_root,
        data_prefix=dict(img_path='train/JPEGImages/'),
        pipeline=test_pipeline))
test_dataloader = dict(
    dataset=dict(
        preset=dataset_preset,
        data_root=data_root,
        ann_file=test_ann_file,
        data_prefix=dict(img_path='valid/JPEGImages/'),
        pipeline=test_pipeline))
val_evaluator = dict(ann_file=data_root + 'annotations/valid_sub.json')
test_evaluator = dict(
    ann_file=data_root + test_ann_file,
    outfile_prefix=f'./work_dirs/{dataset_preset}_results/results')

# Copyright (c) OpenMMLab. All rights reserved.
# MDQE R50 on YouTube-VIS 2019 at 360p (MDQE_SPEC §6 "R50_ytvis19"): as the
# OVIS recipe but 40 classes, association window 7, YTVIS clips mixed with
# COCO pseudo-videos mapped to the YTVIS-2019 classes (1.0 : 0.75).
# README: 47.8 AP (YTVIS-19 val).
_base_ = [
    '../_base_/models/mdqe_r50.py',
    '../_base_/datasets/youtube_vis_2019_clip.py',
    '../_base_/schedules/mdqe_iter_12k.py', '../_base_/default_runtime.py'
]
custom_imports = dict(imports=['mdqe_mm'], allow_failed_imports=False)
default_scope = 'mmdet'

num_classes = 40
coco_label_map = 'youtube_vis_2019'
pseudo_ratio = 0.75
vis_ratio = 1.0

model = dict(
    query_selection=dict(num_classes=num_classes, train_window=7),
    track_head=dict(num_classes=num_classes),
    test_cfg=dict(
        clip_length=4,
        window_length=30,
        cls_thr=0.1,
        max_num_instances=70,
        max_per_frame=10))

# COCO images as T-frame pseudo clips (monotone rotation, drifting crop,
# one short side and one flip per clip), classes mapped to YTVIS by name
coco_pseudo_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='ImageToPseudoVideo',
        num_frames={{_base_.num_frames}},
        label_map=coco_label_map),
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
                scales=[(800, s) for s in (320, 352, 384, 416, 448, 480, 512)],
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
train_dataloader = dict(
    _delete_=True,
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='RatioMixSampler', ratios=[vis_ratio, pseudo_ratio]),
    dataset=dict(
        type='ConcatDataset',
        ignore_keys=['classes', 'palette'],
        datasets=[
            {{_base_.train_dataloader.dataset}},
            dict(
                type='CocoDataset',
                data_root='data/coco/',
                ann_file='annotations/instances_train2017.json',
                data_prefix=dict(img='train2017/'),
                filter_cfg=dict(filter_empty_gt=True, min_size=32),
                pipeline=coco_pseudo_pipeline,
                backend_args={{_base_.backend_args}}),
        ]))

# See mdqe_r50_8xb2-12k_ovis.py: the COCO "f4_ft" MDQE checkpoint goes here.
load_from = None

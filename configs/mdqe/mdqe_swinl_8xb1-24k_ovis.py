# Copyright (c) OpenMMLab. All rights reserved.
# MDQE SwinV2-L on OVIS (MDQE_SPEC §6 "swinl_ovis"): 8 GPUs x 1 clip of 2
# frames (+-7), OVIS clips mixed with COCO pseudo-videos (1.0 : 0.75), AdamW
# lr 5e-5 (backbone x0.1), wd 0.05, 24k iterations with a x0.1 step at 20k,
# training short side 480..736 (max 1024), test short side 480, windows of
# 20 frames merged on the CPU. Starts from the Swin-L COCO model (T=1,
# inflated to 2 frames on load). README: 41.0 AP (480p), 42.6 AP (640p,
# same config tested at short side 640).
_base_ = [
    '../_base_/models/mdqe_swinl.py',
    '../_base_/datasets/coco_pseudo_ovis_clip.py',
    '../_base_/schedules/mdqe_iter_12k.py', '../_base_/default_runtime.py'
]
custom_imports = dict(
    imports=['mdqe_mm', 'mmpretrain.models'], allow_failed_imports=False)

num_classes = 25
num_frames = 2
frame_range = 7
train_short_sides = tuple(range(480, 737, 32))
train_max_size = 1024
test_short_side = 480
max_iters = 24000

model = dict(
    num_frames=num_frames,
    query_selection=dict(num_classes=num_classes, train_window=5),
    track_head=dict(num_classes=num_classes),
    test_cfg=dict(
        clip_length=2,
        window_length=20,
        merge_on_cpu=True,
        cls_thr=0.1,
        max_num_instances=120,
        max_per_frame=15))

train_cfg = dict(max_iters=max_iters, val_interval=5000)
optim_wrapper = dict(optimizer=dict(lr=5e-5, weight_decay=0.05))
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iters,
        by_epoch=False,
        milestones=[20000],
        gamma=0.1)
]
auto_scale_lr = dict(base_batch_size=8)
default_hooks = dict(checkpoint=dict(interval=5000))

# configs replace lists as a whole: the pipelines (and the list of mixed
# data sets holding them) are restated around the new sizes
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
            dict(type='LoadTrackAnnotations', with_mask=True),
            {{_base_.clip_drift_crop}}, clip_resize,
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
    dict(type='ImageToPseudoVideo', num_frames=num_frames, label_map='ovis'),
    pseudo_clip_augment,
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
            backend_args=None)
    ]))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

load_from = 'work_dirs/mdqe_swinl_8xb1-534k_coco/iter_534000.pth'
custom_hooks = [dict(type='TemporalInflationHook')]

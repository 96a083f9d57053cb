# Copyright (c) OpenMMLab. All rights reserved.
# Quick start: a tiny MDQE (ResNet-18/16 channels, C=32, 8x8 query grid,
# T=2) trained on the embedded synthetic occlusion videos, on a CPU, then
# evaluated with VISMetric (AP/AR + OVIS occlusion APso/APmo/APho).
#
#   python tools/train.py configs/quickstart/mdqe_tiny_1xb2-4k_synthetic.py
#   python tools/test.py configs/quickstart/mdqe_tiny_1xb2-4k_synthetic.py \
#       work_dirs/mdqe_tiny_1xb2-4k_synthetic/iter_4000.pth
#
# The dataset is generated under data/synthetic_vis_occlusion/ on first use.
_base_ = [
    '../_base_/models/mdqe_tiny.py',
    '../_base_/datasets/synthetic_vis_clip.py', '../_base_/default_runtime.py'
]

# The 'occlusion_benchmark' synthetic set (docs/benchmark.md): 240 train +
# 150 valid videos of 12 frames, 452 valid tracks of which 126 are heavily
# occluded, generated under data_root on first use (~12 s).
data_root = 'data/synthetic_vis_occlusion/'
# _delete_: the preset alone, not merged into the base's small-set values
generator_cfg = dict(_delete_=True, preset='occlusion_benchmark')
num_frames = 2
num_classes = 4  # SYNTHETIC_VIS_CLASSES: disc, square, triangle, cross
max_iters = 4000
# Frames are generated at 96x160 and enlarged 1.5x: masks are predicted at
# stride 4, and at 96x160 (24x40 masks) mask precision limits AP (3000
# iterations: AP 0.337 / AP50 0.553 at 1x vs 0.362 / 0.704 at 1.5x).
short_side = 144

model = dict(
    data_preprocessor=dict(type='VideoStreamDataPreprocessor'),
    query_selection=dict(num_classes=num_classes),
    track_head=dict(num_classes=num_classes),
    test_cfg=dict(
        clip_length=num_frames,
        window_length=10,
        cls_thr=0.1,
        max_per_frame=10))

# Simpler than the base recipe for CPU speed: one fixed scale (no multi-scale
# resize, no drifting crop), one flip per clip, and 2-frame clips drawn
# within +-3 frames of a random reference frame.
train_pipeline = [
    dict(type='ClipFrameSample', num_frames=num_frames, frame_range=3),
    dict(
        type='TransformBroadcaster',
        share_random_params=True,
        transforms=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadTrackAnnotations', with_mask=True),
            dict(type='Resize', scale=(1000, short_side), keep_ratio=True),
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
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(1000, short_side), keep_ratio=True),
        ]),
    dict(type='PackTrackInputs')
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        generator_cfg=generator_cfg,
        pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        generator_cfg=generator_cfg,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='VISMetric', ann_file=data_root + 'annotations/valid.json')
test_evaluator = val_evaluator

train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iters,
        by_epoch=False,
        milestones=[int(max_iters * 0.8)],
        gamma=0.1)
]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters))
log_processor = dict(window_size=20)
env_cfg = dict(mp_cfg=dict(opencv_num_threads=1))
randomness = dict(seed=0)

# Copyright (c) OpenMMLab. All rights reserved.
# Stage 2 of the R50 recipe: the COCO model fine-tuned on 4-frame COCO
# pseudo-videos (the reference's pretrained/coco/mdqe_r50_coco_bs16_3x_f4_ft
# .pth, which has no config there: run.sh sets the frame counts on top of
# R50_ovis_360.yaml). Here: the R50_ovis_360 schedule and pseudo-video recipe
# (12k iterations, step at 10k, wd 1e-4, rotation +-15 deg, short side
# 320..512, max 800) with all 80 COCO classes. It starts from stage 1 (T=1):
# TemporalInflationHook inflates the temporal attention from 1 to 4 frames
# on load. Its last checkpoint is the load_from of the R50 VIS configs.
_base_ = './mdqe_r50_8xb2-267k_coco.py'

num_frames = 4
max_iters = 12000
train_short_sides = (320, 352, 384, 416, 448, 480, 512)
train_max_size = 800
model = dict(num_frames=num_frames, test_cfg=dict(clip_length=num_frames))

clip_resize = dict(
    type='RandomChoiceResize',
    scales=[(train_max_size, s) for s in train_short_sides],
    keep_ratio=True,
    backend='pillow',
    resize_type='mmdet.Resize')
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='ImageToPseudoVideo', num_frames=num_frames, label_map=None),
    dict(
        type='TransformBroadcaster',
        share_random_params=True,
        transforms=[
            dict(type='ClipMonotoneRotate', max_angle=15.0),
            {{_base_.coco_drift_crop}}, clip_resize,
            dict(type='RandomFlip', prob=0.5)
        ]),
    dict(type='FilterEmptyClip'), {{_base_.pack_clip}}
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

train_cfg = dict(max_iters=max_iters)
optim_wrapper = dict(optimizer=dict(weight_decay=1e-4))
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iters,
        by_epoch=False,
        milestones=[10000],
        gamma=0.1)
]
default_hooks = dict(checkpoint=dict(interval=2000))

custom_hooks = [dict(type='TemporalInflationHook')]
load_from = 'work_dirs/mdqe_r50_8xb2-267k_coco/iter_267000.pth'

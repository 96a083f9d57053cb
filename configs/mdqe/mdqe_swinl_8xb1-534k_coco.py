# Copyright (c) OpenMMLab. All rights reserved.
# Stage 1 of the Swin-L recipe (MDQE_SPEC §6 "swinl_coco"): MDQE SwinV2-L
# trained on COCO as 1-frame clips from ImageNet-22k weights. The R50 COCO
# config with the SwinV2-L model, 8 GPUs x 1 image, lr 5e-5, 534k iterations
# with a x0.1 step at 472k, short side 352..800 (max 1333). Its last
# checkpoint is the load_from of the Swin-L VIS configs (T=1, inflated).
_base_ = [
    '../_base_/models/mdqe_swinl.py',
    '../_base_/datasets/coco_instance_clip.py',
    '../_base_/schedules/mdqe_iter_12k.py', '../_base_/default_runtime.py'
]
custom_imports = dict(
    imports=['mdqe_mm', 'mmpretrain.models'], allow_failed_imports=False)

num_frames = 1
num_classes = 80
max_iters = 534000
train_short_sides = tuple(range(352, 801, 32))
model = dict(
    num_frames=num_frames,
    query_selection=dict(num_classes=num_classes),
    track_head=dict(num_classes=num_classes),
    test_cfg=dict(clip_length=num_frames, cls_thr=0.05, max_per_frame=100))

clip_resize = dict(
    type='RandomChoiceResize',
    scales=[(1333, s) for s in train_short_sides],
    keep_ratio=True,
    backend='pillow',
    resize_type='mmdet.Resize')
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    {{_base_.image_to_clip}},
    dict(
        type='TransformBroadcaster',
        share_random_params=True,
        transforms=[{{_base_.coco_drift_crop}}, clip_resize,
                    dict(type='RandomFlip', prob=0.5)]),
    dict(type='FilterEmptyClip'), {{_base_.pack_clip}}
]
train_dataloader = dict(batch_size=1, dataset=dict(pipeline=train_pipeline))

train_cfg = dict(max_iters=max_iters)
optim_wrapper = dict(optimizer=dict(lr=5e-5, weight_decay=0.05))
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iters,
        by_epoch=False,
        milestones=[472000],
        gamma=0.1)
]
auto_scale_lr = dict(base_batch_size=8)
# a long run: keep the last three checkpoints
default_hooks = dict(checkpoint=dict(interval=5000, max_keep_ckpts=3))

# training only (see ../_base_/datasets/coco_instance_clip.py)
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None

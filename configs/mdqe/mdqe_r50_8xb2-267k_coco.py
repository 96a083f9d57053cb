# Copyright (c) OpenMMLab. All rights reserved.
# Stage 1 of the R50 recipe (MDQE_SPEC §6 "R50_coco"): MDQE trained on COCO
# as 1-frame clips, from ImageNet weights. 80 classes, 8 GPUs x 2 images,
# AdamW lr 1e-4 (backbone x0.1), wd 0.05, 267k iterations ("3x") with a x0.1
# step at 236k, short side 320..672 (max 1333). Its last checkpoint is the
# load_from of mdqe_r50_8xb2-12k_coco-pseudo4.py (see README.md).
_base_ = [
    '../_base_/models/mdqe_r50.py', '../_base_/datasets/coco_instance_clip.py',
    '../_base_/schedules/mdqe_iter_12k.py', '../_base_/default_runtime.py'
]

num_frames = 1
num_classes = 80
max_iters = 267000
model = dict(
    num_frames=num_frames,
    query_selection=dict(num_classes=num_classes),
    track_head=dict(num_classes=num_classes),
    test_cfg=dict(clip_length=num_frames, cls_thr=0.05, max_per_frame=100))

train_cfg = dict(max_iters=max_iters)
optim_wrapper = dict(optimizer=dict(weight_decay=0.05))
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iters,
        by_epoch=False,
        milestones=[236000],
        gamma=0.1)
]
# a long run: keep the last three checkpoints (about 0.6 GB each)
default_hooks = dict(checkpoint=dict(interval=5000, max_keep_ckpts=3))

# training only (see ../_base_/datasets/coco_instance_clip.py)
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None

# Copyright (c) OpenMMLab. All rights reserved.
# Baseline of the DINO comparison: mmdet's stock DINO (4-scale, R50) on the
# frames of the synthetic occlusion videos, from scratch (nothing to
# download), at the frames' 96x160 size. Only data, class count, query
# count and schedule differ from the stock config; for COCO, use the stock
# config. DINO's top-k selection needs at least num_queries encoder tokens:
# 96x160 frames give 321 (4 levels), so 100 queries instead of 900 (10 x 10
# grid for the grid-query variant), and at most 100 detections per image.
#
#   python tools/train.py configs/mixing/dino_r50_synthetic-coco.py
_base_ = [
    'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py',
    './_base_/synthetic_coco_data.py'
]
custom_imports = dict(imports=['mdqe_mm'], allow_failed_imports=False)

model = dict(
    num_queries=100,
    backbone=dict(init_cfg=None),
    test_cfg=dict(max_per_img=100),
    bbox_head=dict(num_classes=4))  # synthetic_coco_num_classes

train_dataloader = {{_base_.synthetic_coco_train_dataloader}}
val_dataloader = {{_base_.synthetic_coco_val_dataloader}}
test_dataloader = {{_base_.synthetic_coco_test_dataloader}}
val_evaluator = dict(
    ann_file='data/synthetic_vis/annotations/valid_frames_coco.json')
test_evaluator = val_evaluator

max_iters = 2000  # synthetic_coco_max_iters
train_cfg = {{_base_.synthetic_coco_train_cfg}}
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iters,
        by_epoch=False,
        milestones=[int(max_iters * 0.9)],
        gamma=0.1)
]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters))
log_processor = dict(by_epoch=False)

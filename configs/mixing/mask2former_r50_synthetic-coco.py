# Copyright (c) OpenMMLab. All rights reserved.
# Baseline of the image-repulsion comparison: mmdet's stock Mask2Former
# (R50, instance segmentation) on the frames of the synthetic occlusion
# videos, from scratch (nothing to download), at the frames' 96x160 size.
# Only data, class count, padding size and schedule differ from the stock
# config; for COCO itself, use the stock config directly.
#
#   python tools/train.py configs/mixing/mask2former_r50_synthetic-coco.py
_base_ = [
    'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py',
    './_base_/synthetic_coco_data.py'
]
custom_imports = dict(imports=['mdqe_mm'], allow_failed_imports=False)

num_classes = 4  # synthetic_coco_num_classes
image_size = (96, 160)
model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(
            type='BatchFixedSizePad',
            size=image_size,
            img_pad_value=0,
            pad_mask=True,
            mask_pad_value=0,
            pad_seg=False)
    ]),
    backbone=dict(init_cfg=None),
    panoptic_head=dict(
        num_things_classes=num_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_things_classes=num_classes))

train_dataloader = {{_base_.synthetic_coco_train_dataloader}}
val_dataloader = {{_base_.synthetic_coco_val_dataloader}}
test_dataloader = {{_base_.synthetic_coco_test_dataloader}}
val_evaluator = dict(
    _delete_=True,
    type='CocoMetric',
    ann_file='data/synthetic_vis/annotations/valid_frames_coco.json',
    metric=['bbox', 'segm'])
test_evaluator = dict(val_evaluator)  # a copy that keeps _delete_

max_iters = 2000  # synthetic_coco_max_iters
train_cfg = {{_base_.synthetic_coco_train_cfg}}
param_scheduler = dict(end=max_iters, milestones=[int(max_iters * 0.9)])
default_hooks = dict(checkpoint=dict(interval=max_iters))

# Copyright (c) OpenMMLab. All rights reserved.
# Stock Mask2Former + MDQE's inter-instance repulsion loss: each matched
# query's mask is also pushed off the pixels of the other instances whose
# boxes overlap its own (IoU > 0.1) in the image. Compare with the base:
#
#   python tools/train.py configs/mixing/mask2former_r50_synthetic-coco.py
#   python tools/train.py \
#       configs/mixing/mask2former_r50_repulsion_synthetic-coco.py
#
# On COCO: _base_ = 'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py'
# plus custom_imports = dict(imports=['mdqe_mm']); the lines below stay.
_base_ = './mask2former_r50_synthetic-coco.py'

model = dict(
    panoptic_head=dict(
        type='RepulsionMask2FormerHead',
        loss_mask=dict(
            _delete_=True,
            type='InterInstanceMaskRepulsionLoss',
            loss_weight_bce=5.0,
            loss_weight_dice=5.0),
        loss_dice=None))

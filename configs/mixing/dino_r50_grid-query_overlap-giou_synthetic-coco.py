# Copyright (c) OpenMMLab. All rights reserved.
# Stock DINO + MDQE's grid-guided query initialisation + the reference GIoU
# loss (OverlapGIoULoss: 0 GIoU for disjoint boxes). The queries are one
# objectness peak per cell of a g x g grid on the stride-8 encoder level
# (here 10 x 10 = the base's 100 queries; DINO's 900 on COCO make a 30 x 30
# grid), with grid-sampled contents (GridQueryDINO); the semantic-map loss
# of the selection (weight 2) is added. Its targets use the GT masks, loaded
# here; without masks, the GT boxes are drawn as masks.
#
# On COCO: _base_ = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py' plus
# custom_imports = dict(imports=['mdqe_mm']); the lines below stay.
_base_ = './dino_r50_synthetic-coco.py'

model = dict(
    type='GridQueryDINO',
    query_selection=dict(type='GridQuerySelection'),
    bbox_head=dict(loss_iou=dict(type='OverlapGIoULoss', loss_weight=2.0)))

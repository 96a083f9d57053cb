# Copyright (c) OpenMMLab. All rights reserved.
# Stock Mask2FormerVideo + MDQE's inter-instance repulsion loss: each matched
# query's clip mask is also pushed off the pixels of the other instances of
# the clip whose boxes overlap its own (IoU > 0.1) in any frame. Only the
# head's type and its two mask losses change.
#
# On YouTube-VIS 2021 at full size:
#   _base_ = 'mmdet::mask2former_vis/mask2former_r50_8xb2-8e_youtubevis2021.py'
# plus custom_imports = dict(imports=['mdqe_mm']); the lines below stay.
_base_ = './_base_/mask2former-video_r18-tiny_synthetic.py'

model = dict(
    track_head=dict(
        type='RepulsionMask2FormerTrackHead',
        loss_mask=dict(
            _delete_=True,
            type='InterInstanceMaskRepulsionLoss',
            loss_weight_bce=5.0,
            loss_weight_dice=5.0),
        loss_dice=None))

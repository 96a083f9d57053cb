# Copyright (c) OpenMMLab. All rights reserved.
from .grid_query_mask2former_track_head import GridQueryMask2FormerTrackHead
from .mask_proto import MDQEMaskPrototypeNet
from .mdqe_head import MDQEHead
from .repulsion_mask2former_head import RepulsionMask2FormerHead
from .repulsion_mask2former_track_head import RepulsionMask2FormerTrackHead
from .repulsion_mask_loss import RepulsionMaskLossMixin

__all__ = [
    'MDQEMaskPrototypeNet', 'MDQEHead', 'RepulsionMask2FormerHead',
    'RepulsionMask2FormerTrackHead', 'RepulsionMaskLossMixin',
    'GridQueryMask2FormerTrackHead'
]

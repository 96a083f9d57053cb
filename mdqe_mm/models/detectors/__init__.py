# Copyright (c) OpenMMLab. All rights reserved.
from .clip_targets import build_clip_targets
from .grid_query_dino import GridQueryDINO
from .mdqe import MDQE
from .near_online_mask2former_video import NearOnlineMask2FormerVideo

__all__ = [
    'MDQE', 'NearOnlineMask2FormerVideo', 'GridQueryDINO',
    'build_clip_targets'
]

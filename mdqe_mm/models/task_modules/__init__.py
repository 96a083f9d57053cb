# Copyright (c) OpenMMLab. All rights reserved.
from .assigners import (ClipPeakAssigner, DynamicKVideoAssigner,
                        dynamic_k_matching, in_box_prior, video_giou_matrix)

__all__ = [
    'ClipPeakAssigner', 'DynamicKVideoAssigner', 'dynamic_k_matching',
    'in_box_prior', 'video_giou_matrix'
]

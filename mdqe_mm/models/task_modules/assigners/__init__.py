# Copyright (c) OpenMMLab. All rights reserved.
from .clip_peak_assigner import ClipPeakAssigner
from .dynamic_k_video_assigner import (DynamicKVideoAssigner,
                                       dynamic_k_matching, in_box_prior,
                                       video_giou_matrix)

__all__ = [
    'ClipPeakAssigner', 'DynamicKVideoAssigner', 'dynamic_k_matching',
    'in_box_prior', 'video_giou_matrix'
]

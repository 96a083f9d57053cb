# Copyright (c) OpenMMLab. All rights reserved.
from .clip_drift_crop import ClipDriftCrop
from .clip_monotone_rotate import ClipMonotoneRotate
from .clip_sampling import ClipFrameSample
from .filter_empty_clip import FilterEmptyClip
from .image_to_pseudo_video import ImageToPseudoVideo

__all__ = [
    'ClipFrameSample', 'ClipDriftCrop', 'ClipMonotoneRotate',
    'ImageToPseudoVideo', 'FilterEmptyClip'
]

# Copyright (c) OpenMMLab. All rights reserved.
from .samplers import *  # noqa: F401,F403
from .synthetic import (OCCLUSION_THRESHOLDS, SYNTHETIC_PRESETS,
                        SyntheticObject, ensure_synthetic_vis,
                        generate_synthetic_vis, occlusion_label,
                        occlusion_statistics)
from .synthetic_coco_dataset import SyntheticCocoDataset, vis_frames_to_coco
from .synthetic_vis_dataset import SyntheticVISDataset
from .transforms import *  # noqa: F401,F403
from .vis_classes import (COCO_TO_OVIS, COCO_TO_YOUTUBE_VIS_2019,
                          COCO_TO_YOUTUBE_VIS_2021, OVIS_CLASSES,
                          SYNTHETIC_VIS_CLASSES, VIS_CLASS_PRESETS,
                          YOUTUBE_VIS_2019_CLASSES, YOUTUBE_VIS_2021_CLASSES)
from .vis_dataset import VISDataset

__all__ = [
    'VISDataset', 'SyntheticVISDataset', 'SyntheticCocoDataset',
    'vis_frames_to_coco', 'RatioMixSampler', 'ClipFrameSample',
    'ClipDriftCrop', 'ClipMonotoneRotate', 'ImageToPseudoVideo',
    'FilterEmptyClip', 'SyntheticObject', 'generate_synthetic_vis',
    'ensure_synthetic_vis', 'occlusion_label', 'OCCLUSION_THRESHOLDS',
    'SYNTHETIC_PRESETS', 'occlusion_statistics', 'OVIS_CLASSES',
    'YOUTUBE_VIS_2019_CLASSES', 'YOUTUBE_VIS_2021_CLASSES',
    'SYNTHETIC_VIS_CLASSES', 'VIS_CLASS_PRESETS', 'COCO_TO_OVIS',
    'COCO_TO_YOUTUBE_VIS_2019', 'COCO_TO_YOUTUBE_VIS_2021'
]

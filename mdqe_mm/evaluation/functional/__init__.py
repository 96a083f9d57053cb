# Copyright (c) OpenMMLab. All rights reserved.
from .vis_eval import VISEval, VISEvalResult, evaluate_vis
from .vis_rle import (VISFormatError, compressed_counts_stats,
                      describe_bad_counts, normalize_rle)
from .vis_tracks import (OCCLUSION_SCORES, VISGroundTruth, VISTracks, VISVideo,
                         load_vis_ground_truth, load_vis_results)

__all__ = [
    'VISEval', 'VISEvalResult', 'evaluate_vis', 'VISFormatError',
    'compressed_counts_stats', 'describe_bad_counts', 'normalize_rle',
    'OCCLUSION_SCORES', 'VISGroundTruth', 'VISTracks', 'VISVideo',
    'load_vis_ground_truth', 'load_vis_results'
]

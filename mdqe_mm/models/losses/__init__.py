# Copyright (c) OpenMMLab. All rights reserved.
from .distance_weighted_focal_loss import (DistanceWeightedFocalLoss,
                                           select_uncertain_pixels)
from .overlap_giou_loss import OverlapGIoULoss, overlap_giou
from .query_contrastive_loss import (QueryContrastiveLoss,
                                     contrastive_candidate_area)
from .repulsion_loss import (InterInstanceMaskRepulsionLoss,
                             masks_to_normalised_boxes, nearby_instance_matrix,
                             nearby_instance_union, repulsion_dice_loss,
                             sample_repulsion_points, weighted_bce_loss)
from .video_query_focal_loss import VideoQueryFocalLoss

__all__ = [
    'DistanceWeightedFocalLoss', 'select_uncertain_pixels', 'OverlapGIoULoss',
    'overlap_giou', 'QueryContrastiveLoss', 'contrastive_candidate_area',
    'InterInstanceMaskRepulsionLoss', 'nearby_instance_matrix',
    'nearby_instance_union', 'repulsion_dice_loss', 'weighted_bce_loss',
    'masks_to_normalised_boxes', 'sample_repulsion_points',
    'VideoQueryFocalLoss'
]

# Copyright (c) OpenMMLab. All rights reserved.
from .clip_batching import decode_clips_in_batches, frame_index_tensor
from .clip_postprocess import (dedup_by_query_similarity, mask_quality_scores,
                               postprocess_clip, remove_empty_masks,
                               select_by_score, select_top_scores,
                               soft_mask_nms)
from .clip_tracker import ClipTracker, bi_softmax_similarity
from .near_online_inferencer import NearOnlineInferencer, clip_schedule
from .video_aggregator import VideoResultAggregator, rle_boxes

__all__ = [
    'ClipTracker', 'NearOnlineInferencer', 'VideoResultAggregator',
    'bi_softmax_similarity', 'clip_schedule', 'dedup_by_query_similarity',
    'mask_quality_scores', 'postprocess_clip', 'remove_empty_masks',
    'rle_boxes', 'select_by_score', 'select_top_scores', 'soft_mask_nms',
    'decode_clips_in_batches', 'frame_index_tensor'
]

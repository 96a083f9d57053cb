# Copyright (c) OpenMMLab. All rights reserved.
from .decoder import (MDQETwoStreamDecoder, MDQETwoStreamDecoderLayer,
                      circumscribed_clip_box, get_tca_frame_inds,
                      select_frames)
from .encoder import MDQEDeformableEncoder, MDQEDeformableEncoderLayer
from .msda import (MDQEMSDeformAttn, build_direction_grid,
                   compute_sampling_locations, deformable_attn_core,
                   level_shapes, multi_scale_deformable_attn_fast,
                   sample_value_maps)
from .utils import GELUMLP, fp32_region

__all__ = [
    'MDQEMSDeformAttn', 'build_direction_grid', 'compute_sampling_locations',
    'deformable_attn_core', 'level_shapes',
    'multi_scale_deformable_attn_fast', 'sample_value_maps',
    'MDQEDeformableEncoder',
    'MDQEDeformableEncoderLayer', 'MDQETwoStreamDecoder',
    'MDQETwoStreamDecoderLayer', 'circumscribed_clip_box',
    'get_tca_frame_inds', 'select_frames', 'GELUMLP', 'fp32_region'
]

# Copyright (c) OpenMMLab. All rights reserved.
from .decoder import (MDQETwoStreamDecoder, MDQETwoStreamDecoderLayer,
                      circumscribed_clip_box, get_tca_frame_inds)
from .encoder import MDQEDeformableEncoder, MDQEDeformableEncoderLayer
from .msda import (MDQEMSDeformAttn, build_direction_grid,
                   compute_sampling_locations, deformable_attn_core)
from .utils import GELUMLP, fp32_region

__all__ = [
    'MDQEMSDeformAttn', 'build_direction_grid', 'compute_sampling_locations',
    'deformable_attn_core', 'MDQEDeformableEncoder',
    'MDQEDeformableEncoderLayer', 'MDQETwoStreamDecoder',
    'MDQETwoStreamDecoderLayer', 'circumscribed_clip_box',
    'get_tca_frame_inds', 'GELUMLP', 'fp32_region'
]

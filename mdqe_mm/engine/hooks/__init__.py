# Copyright (c) OpenMMLab. All rights reserved.
from .temporal_inflation_hook import (TemporalInflationHook,
                                      find_temporal_attn_prefixes,
                                      inflate_temporal_attn,
                                      inflate_temporal_state_dict,
                                      source_frame_indices)

__all__ = [
    'TemporalInflationHook', 'find_temporal_attn_prefixes',
    'inflate_temporal_attn', 'inflate_temporal_state_dict',
    'source_frame_indices'
]

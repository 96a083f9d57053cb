# Copyright (c) OpenMMLab. All rights reserved.
from .learned_query_selection import LearnedQuerySelection
from .query_selection import (GridQuerySelection, level_start_index,
                              split_levels)

__all__ = [
    'GridQuerySelection', 'LearnedQuerySelection', 'level_start_index',
    'split_levels'
]

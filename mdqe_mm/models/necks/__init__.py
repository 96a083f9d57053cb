# Copyright (c) OpenMMLab. All rights reserved.
from .query_selection import (GridQuerySelection, level_start_index,
                              split_levels)

__all__ = ['GridQuerySelection', 'level_start_index', 'split_levels']

# Copyright (c) OpenMMLab. All rights reserved.
from .query_selection import GridQuerySelection, split_levels

__all__ = ['GridQuerySelection', 'split_levels']

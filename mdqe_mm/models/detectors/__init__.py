# Copyright (c) OpenMMLab. All rights reserved.
from .clip_targets import build_clip_targets
from .mdqe import MDQE

__all__ = ['MDQE', 'build_clip_targets']

# Copyright (c) OpenMMLab. All rights reserved.
from .ratio_mix_sampler import RatioMixSampler

__all__ = ['RatioMixSampler']

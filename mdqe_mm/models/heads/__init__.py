# Copyright (c) OpenMMLab. All rights reserved.
from .mask_proto import MDQEMaskPrototypeNet
from .mdqe_head import MDQEHead

__all__ = ['MDQEMaskPrototypeNet', 'MDQEHead']

# Copyright (c) OpenMMLab. All rights reserved.
from .vis_metric import VISMetric

__all__ = ['VISMetric']

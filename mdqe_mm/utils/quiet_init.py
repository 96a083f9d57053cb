# Copyright (c) OpenMMLab. All rights reserved.
import logging

from mmengine.logging import MMLogger
from torch import nn

__all__ = ['init_weights_quietly']


def init_weights_quietly(model: nn.Module) -> nn.Module:
    """``model.init_weights()`` without mmengine's line per parameter.

    mmengine logs the initialisation of every parameter at INFO level; the
    benchmarks and tests that build models need none of it. The logger's
    level is restored afterwards.

    Args:
        model (nn.Module): A model with ``init_weights``.

    Returns:
        nn.Module: ``model``.
    """
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    return model

# Copyright (c) OpenMMLab. All rights reserved.
"""mdqe_mm: MDQE video instance segmentation as an MMDetection 3.x plugin.

Importing the package applies the run-time compatibility shims of
``mdqe_mm.compat`` and registers every component into mmdet's registries, so
``custom_imports = dict(imports=['mdqe_mm'])`` in an mmdet config is enough.
"""
# compat first: its shims must be in place before mmengine loads checkpoints
from . import compat  # noqa: F401
from . import (datasets, engine, evaluation, models, utils,  # noqa: F401
               visualization)
from .version import __version__, version_info

__all__ = ['__version__', 'version_info']

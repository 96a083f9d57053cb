# Copyright (c) OpenMMLab. All rights reserved.
import enum
import importlib
import importlib.util
import os.path as osp
import sys
import types
from types import ModuleType

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='session')
def load_tool():
    """``load_tool('tools/x/y.py')``: import a repo script as a module, so a
    test can call its functions and ``main(argv)`` in-process."""
    loaded = {}

    def load(relative_path: str) -> ModuleType:
        if relative_path not in loaded:
            path = osp.join(REPO_ROOT, relative_path)
            name = osp.splitext(osp.basename(path))[0] + '_tool'
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            loaded[relative_path] = module
        return loaded[relative_path]

    return load


def _import_mmpretrain_models():
    """Import ``mmpretrain.models``; return a skip reason or None.

    mmpretrain imports torchvision in modules MDQE does not use (its metrics,
    data transforms and box utilities), and a torchvision build must match
    the installed torch. Where torchvision is absent (this project's CPU
    environment: no torchvision wheel for torch 2.13+cpu), empty stand-in
    modules take its place during the import only; the backbone built here
    is mmpretrain's own SwinTransformerV2.
    """
    if importlib.util.find_spec('mmpretrain') is None:
        return ('mmpretrain is not installed (optional dependency: '
                'pip install -r requirements/optional.txt)')
    if 'mmpretrain.models' in sys.modules:
        return None
    stand_ins = {}
    if importlib.util.find_spec('torchvision') is None:
        names = ('torchvision', 'torchvision.ops', 'torchvision.ops.boxes',
                 'torchvision.transforms',
                 'torchvision.transforms.functional',
                 'torchvision.transforms.transforms')
        stand_ins = {name: types.ModuleType(name) for name in names}

        class InterpolationMode(enum.Enum):
            NEAREST = 'nearest'
            BILINEAR = 'bilinear'
            BICUBIC = 'bicubic'

        for name, module in stand_ins.items():
            module.__path__ = []
            parent, _, child = name.rpartition('.')
            if parent:
                setattr(stand_ins[parent], child, module)
        for name in ('torchvision.transforms',
                     'torchvision.transforms.transforms'):
            stand_ins[name].InterpolationMode = InterpolationMode
        sys.modules.update(stand_ins)
    try:
        importlib.import_module('mmpretrain.models')
    except ImportError as err:
        return f'mmpretrain is installed but cannot be imported: {err}'
    finally:
        for name in stand_ins:
            sys.modules.pop(name, None)
    return None


@pytest.fixture(scope='session')
def mmpretrain_models():
    """Import ``mmpretrain.models`` (SwinV2-L configs) or skip the test with
    the reason (mmpretrain is an optional dependency)."""
    reason = _import_mmpretrain_models()
    if reason is not None:
        pytest.skip(reason)

# Copyright (c) OpenMMLab. All rights reserved.
import importlib.util
import os.path as osp
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

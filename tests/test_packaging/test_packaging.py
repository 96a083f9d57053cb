# Copyright (c) OpenMMLab. All rights reserved.
"""Packaging: pure-Python setup.py, mim layout, requirements pins."""
import ast
import os
import os.path as osp
import shutil
import subprocess
import sys
import zipfile

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_setup_py_does_not_import_torch():
    with open(osp.join(REPO_ROOT, 'setup.py')) as f:
        tree = ast.parse(f.read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split('.')[0])
    assert not imported & {'torch', 'mmcv', 'mmdet', 'mmengine'}


def test_requirement_pins():
    def read(name):
        with open(osp.join(REPO_ROOT, 'requirements', name)) as f:
            return [ln.split('#')[0].strip() for ln in f
                    if ln.split('#')[0].strip()]

    runtime = read('runtime.txt')
    assert 'mmengine==0.10.7' in runtime and 'mmdet==3.3.0' in runtime
    assert 'mmcv==2.1.0' in read('mminstall.txt')
    assert 'setuptools>=77,<82' in read('build.txt')
    for name in ('tests.txt', 'optional.txt'):
        assert read(name)


def test_editable_install_exposes_mim_folders():
    """install.sh installs editable: .mim links point at the repo."""
    import mdqe_mm
    pkg_dir = osp.dirname(osp.realpath(mdqe_mm.__file__))
    if osp.realpath(pkg_dir) != osp.realpath(osp.join(REPO_ROOT, 'mdqe_mm')):
        pytest.skip('mdqe_mm is not installed from this checkout')
    mim = osp.join(pkg_dir, '.mim')
    if not osp.isdir(mim):
        pytest.skip('not installed with `pip install -e .`')
    for name in ('configs', 'tools'):
        assert osp.realpath(osp.join(mim, name)) == osp.realpath(
            osp.join(REPO_ROOT, name))
    assert osp.isfile(osp.join(mim, 'tools', 'train.py'))


def _copy_sources(dst: str) -> None:
    ignore = shutil.ignore_patterns('.git', '.mim', '__pycache__', 'data',
                                    'work_dirs', '*.egg-info', 'build',
                                    'dist', '.venv')
    shutil.copytree(REPO_ROOT, dst, ignore=ignore)


def test_wheel_ships_configs_and_tools_under_mim(tmp_path):
    src = str(tmp_path / 'src')
    _copy_sources(src)
    out = subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps',
         '--no-build-isolation', '-w',
         str(tmp_path / 'dist'), src],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    wheels = os.listdir(tmp_path / 'dist')
    assert len(wheels) == 1 and wheels[0].startswith('mdqe_mm-')
    with zipfile.ZipFile(tmp_path / 'dist' / wheels[0]) as zf:
        names = zf.namelist()
    assert 'mdqe_mm/.mim/tools/train.py' in names
    assert 'mdqe_mm/.mim/tools/dist_train.sh' in names
    assert 'mdqe_mm/.mim/configs/_base_/default_runtime.py' in names
    assert 'mdqe_mm/.mim/model-index.yml' in names
    assert not any(n.startswith('tests/') for n in names)

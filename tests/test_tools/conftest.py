# Copyright (c) OpenMMLab. All rights reserved.
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# A small synthetic set, generated once per test module.
TINY_SYNTHETIC = dict(
    num_train_videos=4, num_valid_videos=2, num_frames=4, height=64, width=96)


def _run_tool(args, cwd=REPO_ROOT, env=None, timeout=600):
    """Run a repo tool as a user would; return the CompletedProcess."""
    full_env = dict(os.environ)
    full_env['PYTHONPATH'] = os.pathsep.join([
        REPO_ROOT,
        osp.join(REPO_ROOT, 'tests', 'data'),
        full_env.get('PYTHONPATH', '')
    ])
    full_env.setdefault('OMP_NUM_THREADS', '1')
    if env:
        full_env.update(env)
    cmd = [sys.executable] + list(args) if args[0].endswith('.py') \
        else list(args)
    return subprocess.run(
        cmd,
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout)


def synthetic_data_opts(root: str, generator_cfg: dict = None) -> list:
    """--cfg-options that point every data loader of a synthetic-data
    config at the set generated under ``root`` with ``generator_cfg``
    (default: the tiny set); SyntheticVISDataset refuses a folder whose set
    was generated with other arguments than the config's."""
    generator_cfg = dict(TINY_SYNTHETIC if generator_cfg is
                         None else generator_cfg)
    generator_cfg.setdefault('preset', 'small')
    opts = []
    for loader in ('train', 'val', 'test'):
        opts.append(f'{loader}_dataloader.dataset.data_root={root}')
        opts.extend(f'{loader}_dataloader.dataset.generator_cfg.{key}={value}'
                    for key, value in generator_cfg.items())
    return opts


@pytest.fixture(scope='module')
def synthetic_root(tmp_path_factory) -> str:
    from mdqe_mm.datasets import ensure_synthetic_vis
    root = str(tmp_path_factory.mktemp('synthetic_vis'))
    return ensure_synthetic_vis(root, **TINY_SYNTHETIC)


@pytest.fixture
def quickstart_opts(synthetic_root):
    """--cfg-options that point the quick start at the tiny synthetic set
    and train a few iterations without validation."""
    root = synthetic_root + '/'
    return synthetic_data_opts(root) + [
        f'val_evaluator.ann_file={root}annotations/valid.json',
        f'test_evaluator.ann_file={root}annotations/valid.json',
        'train_cfg.max_iters=2', 'train_cfg.val_interval=1000',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1'
    ]


@pytest.fixture
def run_tool():
    """``run_tool(args, env=None)``: run a repo tool in a subprocess."""
    return _run_tool

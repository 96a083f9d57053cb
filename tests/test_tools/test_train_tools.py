# Copyright (c) OpenMMLab. All rights reserved.
"""The training/testing tools, run as subprocesses the way users run them."""
import glob
import os
import os.path as osp
import shutil
import socket
import sys

import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
QUICKSTART_CONFIG = osp.join(REPO_ROOT, 'configs', 'quickstart',
                             'mdqe_tiny_1xb2-4k_synthetic.py')
RANK_MARKER_CONFIG = osp.join(REPO_ROOT, 'tests', 'data', 'configs',
                              'quickstart_rank_marker.py')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_train_then_resume(quickstart_opts, tmp_path, run_tool):
    work_dir = str(tmp_path / 'work')
    train = osp.join('tools', 'train.py')
    first = run_tool([train, QUICKSTART_CONFIG, '--work-dir', work_dir,
                      '--cfg-options'] + quickstart_opts)
    assert first.returncode == 0, first.stderr[-3000:]
    ckpt = osp.join(work_dir, 'iter_2.pth')
    assert osp.isfile(ckpt)

    # Resuming reads the runner state pickled by mmengine (HistoryBuffer,
    # numpy arrays): this is what torch>=2.6's weights_only default breaks.
    second = run_tool([
        train, QUICKSTART_CONFIG, '--work-dir', work_dir, '--resume', ckpt,
        '--cfg-options'
    ] + quickstart_opts + ['train_cfg.max_iters=4'])
    log = second.stdout + second.stderr
    assert second.returncode == 0, log[-3000:]
    assert 'resumed epoch: 0, iter: 2' in log
    assert osp.isfile(osp.join(work_dir, 'iter_4.pth'))

    # --resume without a path picks the latest checkpoint of the work dir.
    third = run_tool([
        train, QUICKSTART_CONFIG, '--work-dir', work_dir, '--resume',
        '--cfg-options'
    ] + quickstart_opts + ['train_cfg.max_iters=6'])
    log = third.stdout + third.stderr
    assert third.returncode == 0, log[-3000:]
    assert 'resumed epoch: 0, iter: 4' in log

    # tools/test.py on the checkpoint: streamed inference + VISMetric table.
    tested = run_tool([
        osp.join('tools', 'test.py'), QUICKSTART_CONFIG,
        osp.join(work_dir, 'iter_6.pth'), '--work-dir',
        str(tmp_path / 'test'), '--cfg-options'
    ] + quickstart_opts)
    log = tested.stdout + tested.stderr
    assert tested.returncode == 0, log[-3000:]
    for key in ('vis/AP:', 'vis/AP50:', 'vis/APso:', 'vis/APmo:',
                'vis/APho:', 'per-category AP'):
        assert key in log, key


def test_train_clear_errors(tmp_path, run_tool):
    train = osp.join('tools', 'train.py')
    missing = run_tool([train, str(tmp_path / 'nope.py')])
    assert missing.returncode != 0
    assert 'config file not found' in missing.stderr
    assert 'Traceback' not in missing.stderr

    bad_resume = run_tool(
        [train, QUICKSTART_CONFIG, '--resume',
         str(tmp_path / 'missing.pth')])
    assert bad_resume.returncode != 0
    assert 'checkpoint not found' in bad_resume.stderr


def test_test_tool_requires_existing_checkpoint(tmp_path, run_tool):
    test = osp.join('tools', 'test.py')
    out = run_tool([test, QUICKSTART_CONFIG, str(tmp_path / 'x.pth')])
    assert out.returncode != 0
    assert 'checkpoint not found' in out.stderr
    out = run_tool([test, QUICKSTART_CONFIG])
    assert out.returncode != 0
    assert 'a checkpoint is required' in out.stderr


@pytest.mark.skipif(shutil.which('bash') is None, reason='needs bash')
def test_dist_train_two_processes_on_cpu(quickstart_opts, tmp_path, run_tool):
    """2 processes (gloo on CPU) train 3 iterations and save a checkpoint."""
    work_dir = str(tmp_path / 'dist')
    out = run_tool(
        ['bash', osp.join('tools', 'dist_train.sh'), RANK_MARKER_CONFIG, '2',
         '--work-dir', work_dir, '--cfg-options'] + quickstart_opts + [
             'train_cfg.max_iters=3',
             'default_hooks.checkpoint.interval=3'
         ],
        # the interpreter running the tests (a venv need not be activated)
        env=dict(PORT=str(_free_port()), PYTHON=sys.executable))
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    markers = sorted(glob.glob(osp.join(work_dir, 'rank_markers', '*.txt')))
    assert [osp.basename(m) for m in markers] == ['rank0.txt', 'rank1.txt']
    for marker in markers:
        with open(marker) as f:
            rows = [line.split() for line in f.read().split('\n') if line]
        assert [int(r[0]) for r in rows] == [1, 2, 3]
        assert all(int(r[1]) == 2 for r in rows)  # world size seen by rank
    assert osp.isfile(osp.join(work_dir, 'iter_3.pth'))
    if not torch.cuda.is_available():
        assert 'gloo' in log or 'Distributed training: True' in log


def test_dist_scripts_print_usage(run_tool):
    for script in ('dist_train.sh', 'dist_test.sh', 'slurm_train.sh',
                   'slurm_test.sh'):
        out = run_tool(['bash', osp.join('tools', script)])
        assert out.returncode == 2, script
        assert 'usage' in out.stderr, script


def test_tools_exist_for_mim():
    for name in ('train.py', 'test.py', 'dist_train.sh', 'dist_test.sh',
                 'slurm_train.sh', 'slurm_test.sh'):
        assert osp.isfile(osp.join(REPO_ROOT, 'tools', name)), name
    assert os.access(osp.join(REPO_ROOT, 'tools', 'dist_train.sh'), os.R_OK)

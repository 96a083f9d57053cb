# Copyright (c) OpenMMLab. All rights reserved.
"""tools/analysis_tools/ablate.py: variants x seeds, mean ± std table."""
import importlib.util
import json
import os.path as osp
import statistics

import pytest

from .conftest import REPO_ROOT, synthetic_data_opts

ABLATE = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'ablate.py')
QUICKSTART = osp.join(REPO_ROOT, 'configs', 'quickstart',
                      'mdqe_tiny_1xb2-4k_synthetic.py')


def load_tool():
    spec = importlib.util.spec_from_file_location('ablate_tool', ABLATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_opts(synthetic_root):
    root = synthetic_root + '/'
    return synthetic_data_opts(root) + [
        f'val_evaluator.ann_file={root}annotations/valid.json',
        f'test_evaluator.ann_file={root}annotations/valid.json',
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2'
    ]


def test_dry_run_lists_every_builtin_variant(run_tool):
    proc = run_tool([
        ABLATE, QUICKSTART, '--dry-run', '--variants', 'full', 'no-repulsion',
        'no-grid-init', 'no-association', 't1', '--variant', 'lr2x',
        'optim_wrapper.optimizer.lr=1e-3'
    ])
    assert proc.returncode == 0, proc.stderr
    lines = dict(
        line.split(': ', 1) for line in proc.stdout.splitlines()
        if ': ' in line)
    assert lines['full'] == '{}'
    assert "'model.track_head.loss_mask.repulsion': False" in lines[
        'no-repulsion']
    assert "'type': 'LearnedQuerySelection'" in lines['no-grid-init']
    assert "'model.query_selection.test_window': 0" in lines['no-association']
    assert "'train_dataloader.dataset.pipeline.0.num_frames': 1" in lines['t1']
    assert "'optim_wrapper.optimizer.lr': 0.001" in lines['lr2x']


def test_bad_requests_fail_with_a_message(run_tool, tmp_path):
    proc = run_tool([ABLATE, QUICKSTART, '--variants', 'no-repulsoin'])
    assert proc.returncode != 0
    assert "unknown variant 'no-repulsoin'" in proc.stderr
    proc = run_tool([ABLATE, QUICKSTART, '--variant', 'x', 'lr'])
    assert proc.returncode != 0 and 'KEY=VALUE' in proc.stderr
    proc = run_tool([ABLATE, QUICKSTART, '--seeds', '1', '1'])
    assert proc.returncode != 0 and 'repeats' in proc.stderr
    # an MDQE variant on a config without MDQE's parts
    other = osp.join(REPO_ROOT, 'configs', 'mixing',
                     'mask2former-video_r18-tiny_synthetic.py')
    proc = run_tool([ABLATE, other, '--variants', 'no-grid-init', '--dry-run'])
    assert proc.returncode != 0
    assert 'GridQuerySelection' in proc.stderr


def test_variants_train_evaluate_and_tabulate(run_tool, tiny_opts, tmp_path):
    """Every built-in variant trains and validates (2 iterations, tiny
    set); a second call reuses finished runs, adds seeds and a custom
    variant, and the table's mean ± std are those of the runs."""
    work = str(tmp_path / 'ablation')
    proc = run_tool([
        ABLATE, QUICKSTART, '--variants', 'full', 'no-repulsion',
        'no-grid-init', 'no-association', 't1', '--seeds', '0', '--jobs', '2',
        '--threads', '1', '--work-dir', work, '--cfg-options'
    ] + tiny_opts)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for name in ('full', 'no-repulsion', 'no-grid-init', 'no-association',
                 't1'):
        assert f'| {name} | 1 |' in proc.stdout
    # what each run trained: its dumped config and its logged losses
    config_t1 = open(osp.join(work, 't1', 'seed0', 'config.py')).read()
    assert 'num_frames=1' in config_t1
    log_grid = open(osp.join(work, 'no-grid-init', 'seed0',
                             'train.log')).read()
    assert 'loss_sem' not in log_grid and 'loss_cls' in log_grid

    proc = run_tool([
        ABLATE, QUICKSTART, '--variants', 'full', '--variant', 'lr2x',
        'optim_wrapper.optimizer.lr=1e-3', '--seeds', '0', '1', '--jobs', '2',
        '--threads', '1', '--work-dir', work, '--cfg-options'
    ] + tiny_opts)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert 'reuse full seed 0' in proc.stdout
    summary = json.load(open(osp.join(work, 'ablation.json')))
    rows = {row['variant']: row for row in summary['rows']}
    assert sorted(rows) == ['full', 'lr2x']
    for name, row in rows.items():
        runs = summary['runs'][name]
        assert sorted(runs) == ['0', '1']
        wall = [runs[s]['wall_s'] / 60 for s in ('0', '1')]
        assert row['wall_min'][0] == pytest.approx(statistics.mean(wall))
        assert row['wall_min'][1] == pytest.approx(statistics.stdev(wall))
    assert 'optim_wrapper' in open(
        osp.join(work, 'lr2x', 'seed1', 'config.py')).read()
    table = open(osp.join(work, 'ablation.md')).read()
    assert '| lr2x | 2 |' in table and 'wall (min)' in table

    # a finished run trained with another config is never reused
    proc = run_tool([
        ABLATE, QUICKSTART, '--variants', 'full', '--seeds', '0', '--threads',
        '1', '--work-dir', work, '--cfg-options'
    ] + tiny_opts + ['model.test_cfg.cls_thr=0.2'])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert 'rerun full seed 0: the config it was trained with differs' in \
        proc.stdout
    assert 'cls_thr=0.2' in open(
        osp.join(work, 'full', 'seed0', 'request', 'config.py')).read()


def test_force_reruns_and_input_config_is_never_overwritten(
        run_tool, tiny_opts, tmp_path):
    from mmengine.config import Config
    work = str(tmp_path / 'ablation')
    args = [
        ABLATE, QUICKSTART, '--variants', 'full', '--seeds', '0', '--threads',
        '1', '--work-dir', work, '--cfg-options'
    ] + tiny_opts
    assert run_tool(args).returncode == 0
    result = osp.join(work, 'full', 'seed0', 'result.json')
    first = json.load(open(result))
    proc = run_tool(args[:-1] + ['--force', '--cfg-options'] + tiny_opts)
    assert proc.returncode == 0 and 'reuse full seed 0' not in proc.stdout
    assert json.load(open(result))['wall_s'] != first['wall_s']
    # a config that lives where a run would write its request
    request = osp.join(work, 'full', 'seed0', 'request', 'config.py')
    Config.fromfile(QUICKSTART).dump(request)
    before = open(request).read()
    proc = run_tool([
        ABLATE, request, '--variants', 'full', '--seeds', '0', '--work-dir',
        work
    ])
    assert proc.returncode != 0 and 'would overwrite the input' in proc.stderr
    assert open(request).read() == before


def test_failed_run_is_reported(run_tool, tiny_opts, tmp_path):
    proc = run_tool([
        ABLATE, QUICKSTART, '--variants', 'broken', '--variant', 'broken',
        'model.track_head.decoder.num_layers=-1', '--seeds', '0', '--threads',
        '1', '--work-dir',
        str(tmp_path / 'w'), '--cfg-options'
    ] + tiny_opts)
    assert proc.returncode == 1
    assert 'broken seed 0 failed' in proc.stderr
    assert 'train.log' in proc.stderr


def test_mean_std_is_the_sample_statistics():
    tool = load_tool()
    values = [41.0, 43.5, 42.25]
    mean, std = tool.mean_std(values)
    assert mean == pytest.approx(statistics.mean(values))
    assert std == pytest.approx(statistics.stdev(values))
    assert tool.mean_std([5.0]) == (5.0, 0.0)

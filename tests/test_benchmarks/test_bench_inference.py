# Copyright (c) OpenMMLab. All rights reserved.
"""Smoke tests of benchmarks/bench_inference.py at tiny sizes."""
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
QUICKSTART = osp.join(REPO, 'configs', 'quickstart',
                      'mdqe_tiny_1xb2-4k_synthetic.py')


def test_host_budget_default_mode(load_tool, capsys, tmp_path):
    bench = load_tool('benchmarks/bench_inference.py')
    out_json = tmp_path / 'host.json'
    results = bench.main([
        '--frames', '8', '--height', '64', '96', '--width', '96', '128',
        '--num-objects', '3', '--json',
        str(out_json)
    ])
    out = capsys.readouterr().out
    assert 'HOST-SIDE BUDGET' in out
    assert '| 64x96 |' in out and '| 96x128 |' in out
    assert out_json.exists()
    for row in results['rows']:
        stages = row['ms_per_frame']
        assert set(stages) == {'postprocess', 'track', 'rle'}
        assert all(v > 0 for v in stages.values())
        assert row['host_ms_per_frame'] == pytest.approx(sum(stages.values()))
        assert row['met'] == (row['host_ms_per_frame'] <= row['budget_ms'])
        assert row['tracks'] == 3  # every stand-in object is tracked


def test_model_mode_prints_every_stage(load_tool, capsys):
    bench = load_tool('benchmarks/bench_inference.py')
    results = bench.main([
        '--config', QUICKSTART, '--frames', '5', '--height', '64', '--width',
        '96'
    ])
    out = capsys.readouterr().out
    for label in bench.STAGE_LABELS.values():
        assert f'| {label} |' in out
    row = results['rows'][0]
    assert row['mdqe']['fps'] > 0 and row['mdqe']['peak_mb'] > 0
    stages = row['mdqe']['stages_ms_per_frame']
    assert all(v >= 0 for v in stages.values())
    assert stages['backbone'] > 0 and stages['decode'] > 0


def test_bad_arguments(load_tool):
    bench = load_tool('benchmarks/bench_inference.py')
    with pytest.raises(SystemExit):
        bench.main(['--frames', '0'])
    with pytest.raises(SystemExit):
        bench.main(['--height', '360', '720', '--width', '640'])
    with pytest.raises(SystemExit):
        bench.main(['--config', 'no/such/config.py'])

# Copyright (c) OpenMMLab. All rights reserved.
"""benchmarks/gpu_check.py end to end at tiny sizes on the CPU."""
import json


def test_gpu_check_tiny_end_to_end(load_tool, tmp_path, capsys):
    check = load_tool('benchmarks/gpu_check.py')
    assert check.main(['--tiny', '--out', str(tmp_path)]) == 0
    results = json.loads((tmp_path / 'gpu_check.json').read_text())
    steps = results['steps']
    assert results['tiny'] is True
    assert steps['install']['status'] == 'skipped'
    for name in ('tests', 'train', 'inference', 'streaming'):
        assert steps[name]['status'] == 'ok', steps[name]
    train = steps['train']['result']
    for precision in ('fp32', 'amp'):
        assert train[precision]['non_finite'] == []
        assert train[precision]['num_losses'] > 5
    inference = steps['inference']['result']
    ratio = inference['tiny_mask2former']['rows'][0]['mdqe_over_mask2former']
    assert ratio > 0
    assert len(steps['streaming']['result']) == 2
    assert 'all steps ok' in capsys.readouterr().out


def test_failed_step_is_recorded(load_tool, tmp_path, monkeypatch):
    check = load_tool('benchmarks/gpu_check.py')

    def broken(tiny):
        raise RuntimeError('boom')

    monkeypatch.setattr(check, 'train_step', broken)
    assert check.main([
        '--tiny', '--out',
        str(tmp_path), '--skip', 'tests', 'inference', 'streaming'
    ]) == 1
    steps = json.loads((tmp_path / 'gpu_check.json').read_text())['steps']
    assert steps['train']['status'] == 'failed'
    assert 'boom' in steps['train']['result']['error']
    assert steps['streaming']['status'] == 'skipped'

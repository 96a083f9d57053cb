# Copyright (c) OpenMMLab. All rights reserved.
"""Smoke test of benchmarks/bench_msda.py at tiny sizes."""


def test_default_mode_tiny(load_tool, capsys):
    bench = load_tool('benchmarks/bench_msda.py')
    results = bench.main([
        '--height', '64', '--width', '64', '--queries', '4', '--frames', '2',
        '--channels', '32', '--repeats', '1', '--layers'
    ])
    out = capsys.readouterr().out
    assert 'core: case' in out and 'module: case' in out
    assert 'encoder (6 layers)' in out
    assert len(results['core']) == 6 and len(results['module']) == 6
    for row in list(results['core'].values()) + list(
            results['module'].values()):
        assert row['speedup'] > 0

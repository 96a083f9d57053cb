# Copyright (c) OpenMMLab. All rights reserved.
"""Smoke test of benchmarks/bench_data_pipeline.py at tiny sizes."""


def test_default_mode_tiny(load_tool, capsys):
    bench = load_tool('benchmarks/bench_data_pipeline.py')
    rows = bench.main([
        '--num-clips', '3', '--height', '64', '--width', '96',
        '--video-frames', '6', '--preset', 'small'
    ])
    out = capsys.readouterr().out
    assert 'pipeline (1 worker)' in out
    assert "synthetic preset 'small' generated in" in out
    assert len(rows) == 3
    for row in rows:
        rate = float(row[2].split()[0])
        assert rate > 0

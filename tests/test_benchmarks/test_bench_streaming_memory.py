# Copyright (c) OpenMMLab. All rights reserved.
"""Smoke test of benchmarks/bench_streaming_memory.py (stand-in mode)."""


def test_default_mode_tiny(load_tool, capsys):
    bench = load_tool('benchmarks/bench_streaming_memory.py')
    rows = bench.main(['--frames', '4', '9', '--height', '64', '--width',
                       '96'])
    out = capsys.readouterr().out
    assert 'synthetic stand-in' in out and 'peak ratio 9 / 4' in out
    assert [row['frames'] for row in rows] == [4, 9]
    assert rows[1]['num_clips'] == 7  # stride-1 clips of T=4
    assert all(row['num_tracks'] > 0 for row in rows)

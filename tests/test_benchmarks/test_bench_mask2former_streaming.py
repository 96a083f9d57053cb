# Copyright (c) OpenMMLab. All rights reserved.
"""Smoke test of benchmarks/bench_mask2former_streaming.py (tiny mode)."""
import pytest


def test_tiny_mode_prints_the_table(load_tool, capsys):
    bench = load_tool('benchmarks/bench_mask2former_streaming.py')
    assert bench.main(['--frames', '3', '6', '--in-process']) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    rows = [
        line for line in lines
        if line.startswith('| stock |') or line.startswith('| near-online |')
    ]
    assert len(rows) == 4, out
    for row in rows:
        cells = [c.strip() for c in row.strip('|').split('|')]
        assert cells[1] in ('3', '6')
        peak, before, growth = (float(c) for c in cells[2:5])
        assert peak >= before > 0
        assert growth == pytest.approx(peak - before, abs=0.11)
        assert int(cells[-1]) > 0  # instances in the last frame
    assert any('near-online: peak RSS ratio 6/3' in line for line in lines)
    assert any('target <= 1.10' in line for line in lines)


def test_bad_arguments_are_named(load_tool, capsys):
    bench = load_tool('benchmarks/bench_mask2former_streaming.py')
    with pytest.raises(SystemExit):
        bench.main(['--frames', '0'])
    assert '--frames must be >= 1' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(['--config', 'nope.py'])
    assert 'config file not found: nope.py' in capsys.readouterr().err

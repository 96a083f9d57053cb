# Copyright (c) OpenMMLab. All rights reserved.
"""Smoke test of benchmarks/bench_vis_eval.py at tiny sizes."""


def test_default_mode_tiny(load_tool, capsys, tmp_path):
    bench = load_tool('benchmarks/bench_vis_eval.py')
    runs = bench.main([
        # the default frame size: the workload's objects span all three
        # area bins, so only videos, frames and tracks are made small
        '--num-videos',
        '3',
        '--num-frames',
        '4',
        '--gt-tracks',
        '3',
        '--pred-tracks',
        '6',
        '--num-classes',
        '3',
        '--work-dir',
        str(tmp_path / 'work')
    ])
    out = capsys.readouterr().out
    assert 'eval time (s)' in out and 'speed-up' in out
    # both evaluators ran on the workload and agree on the 12 stats
    assert sorted(runs) == ['mdqe_mm', 'mmdet']
    ours, ref = runs['mdqe_mm']['stats'], runs['mmdet']['stats']
    assert len(ours) == len(ref) == 12
    assert max(abs(a - b) for a, b in zip(ours, ref)) < 1e-6
    assert set(runs['mdqe_mm']['extra']) == {'APso', 'APmo', 'APho'}

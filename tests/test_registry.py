# Copyright (c) OpenMMLab. All rights reserved.
"""An mmdet config with custom_imports=['mdqe_mm'] builds MDQE's parts.

Runs in a fresh interpreter, so registration provably comes from the
config's ``custom_imports`` and not from an earlier import in this process.
"""
import json
import subprocess
import sys
import textwrap

# (registry, type) pairs every MDQE user can put in an mmdet config.
COMPONENTS = [
    ('MODELS', 'MDQE'),
    ('MODELS', 'GridQuerySelection'),
    ('MODELS', 'MDQEHead'),
    ('MODELS', 'MDQEMSDeformAttn'),
    ('MODELS', 'InterInstanceMaskRepulsionLoss'),
    ('MODELS', 'ClipTracker'),
    ('MODELS', 'RepulsionMask2FormerHead'),
    ('MODELS', 'RepulsionMask2FormerTrackHead'),
    ('MODELS', 'GridQueryMask2FormerTrackHead'),
    ('MODELS', 'GridQueryDINO'),
    ('MODELS', 'NearOnlineMask2FormerVideo'),
    ('MODELS', 'OverlapGIoULoss'),
    ('TASK_UTILS', 'DynamicKVideoAssigner'),
    ('TASK_UTILS', 'ClipPeakAssigner'),
    ('DATASETS', 'VISDataset'),
    ('DATASETS', 'SyntheticCocoDataset'),
    ('METRICS', 'VISMetric'),
    ('VISUALIZERS', 'VISLocalVisualizer'),
    ('HOOKS', 'VISVisualizationHook'),
    ('HOOKS', 'TemporalInflationHook'),
    ('HOOKS', 'CheckpointLoadCheckHook'),
]


def test_custom_imports_registers_into_mmdet_scope(tmp_path):
    cfg_path = tmp_path / 'user_config.py'
    cfg_path.write_text(
        textwrap.dedent("""
        default_scope = 'mmdet'
        custom_imports = dict(imports=['mdqe_mm'],
                              allow_failed_imports=False)
        loss = dict(type='InterInstanceMaskRepulsionLoss')
        """))
    script = textwrap.dedent(f"""
        import json, sys
        assert 'mdqe_mm' not in sys.modules
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        import mmdet.registry as R
        cfg = Config.fromfile({str(cfg_path)!r})
        assert 'mdqe_mm' in sys.modules
        init_default_scope(cfg.default_scope)
        loss = R.MODELS.build(cfg.loss)
        found = {{}}
        for reg, name in {COMPONENTS!r}:
            cls = getattr(R, reg).get(name)
            found[name] = None if cls is None else cls.__module__
        print(json.dumps(dict(loss=type(loss).__module__, found=found)))
        """)
    out = subprocess.run([sys.executable, '-c', script],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result['loss'].startswith('mdqe_mm.')
    missing = [k for k, v in result['found'].items() if v is None]
    assert not missing, f'not registered in mmdet scope: {missing}'
    for name, module in result['found'].items():
        assert module.startswith('mdqe_mm.'), (name, module)

# Copyright (c) OpenMMLab. All rights reserved.
import os.path as osp

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging.history_buffer import HistoryBuffer

import mdqe_mm  # noqa: F401
from mdqe_mm import compat


def test_mmengine_loads_its_own_pickled_state(tmp_path):
    """mmengine checkpoints pickle HistoryBuffer + numpy arrays."""
    from mmengine.runner.checkpoint import _load_checkpoint
    state = dict(
        meta=dict(iter=2),
        message_hub=dict(log_scalars={
            'loss': HistoryBuffer(np.array([1.0, 2.0]), np.array([1, 1]))
        }),
        extra=np.arange(3))
    path = str(tmp_path / 'ckpt.pth')
    torch.save(state, path)
    if compat._needs_weights_only_patch():
        # The problem the shim exists for: plain torch.load refuses it.
        try:
            torch.load(path)
        except Exception as exc:  # noqa: BLE001
            assert 'weights_only' in str(exc) or 'Unsupported' in str(exc)
        else:
            raise AssertionError('torch.load unexpectedly loaded the file')
    loaded = _load_checkpoint(path, map_location='cpu')
    assert loaded['meta']['iter'] == 2
    np.testing.assert_array_equal(loaded['extra'], np.arange(3))
    assert loaded['message_hub']['log_scalars']['loss'].mean() == 1.5


def test_torch_load_trusted_keeps_explicit_weights_only(tmp_path):
    path = str(tmp_path / 'plain.pth')
    torch.save({'w': torch.ones(2)}, path)
    out = compat.torch_load_trusted(path, weights_only=True)
    assert torch.equal(out['w'], torch.ones(2))


def test_cpu_distributed_cfg_adaptation():
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    compat.adapt_cfg_for_cpu_distributed(cfg)
    if torch.cuda.is_available():
        assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    else:
        assert cfg.env_cfg.dist_cfg.backend == 'gloo'
        assert cfg.model_wrapper_cfg.device_ids is None
        assert cfg.model_wrapper_cfg.type == 'MMDistributedDataParallel'


def test_patches_are_idempotent():
    from mmengine.runner import checkpoint as mm_ckpt
    before = mm_ckpt.torch
    compat._APPLIED = False
    compat.apply_compat_patches()
    assert mm_ckpt.torch is before


def test_mmdet_bases_load_without_pkg_resources(tmp_path):
    """setuptools >= 82 has no pkg_resources; ``mmdet::`` bases still load.

    A subprocess hides ``pkg_resources`` (as setuptools 82 does) before
    anything imports it, so the shim's import-time patch is what is tested.
    """
    import subprocess
    import sys
    import textwrap
    cfg_path = tmp_path / 'stock_base.py'
    cfg_path.write_text("_base_ = 'mmdet::mask2former_vis/"
                        "mask2former_r50_8xb2-8e_youtubevis2021.py'\n")
    script = textwrap.dedent(f"""
        import sys
        sys.modules['pkg_resources'] = None
        try:
            from mmengine.utils import get_installed_path
            get_installed_path('mmdet')
        except ImportError:
            print('unpatched-fails')
        import mdqe_mm  # noqa: F401
        from mmengine.config import Config
        from mmengine.utils import get_installed_path, is_installed
        cfg = Config.fromfile({str(cfg_path)!r})
        print(cfg.model.type, is_installed('mmdet'),
              is_installed('no_such_package_xyz'))
        print(get_installed_path('mmdet'))
        """)
    out = subprocess.run([sys.executable, '-c', script],
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.split('\n')
    assert lines[0] == 'unpatched-fails'
    assert lines[1] == 'Mask2FormerVideo True False'
    import mmdet
    assert osp.samefile(lines[2], osp.dirname(mmdet.__file__))


def test_package_utils_equivalents_match_pkg_resources():
    """The importlib.metadata versions agree with mmengine's originals."""
    from mmengine.utils import package_utils
    for package in ('mmdet', 'mmengine', 'mmcv', 'mdqe_mm'):
        assert compat._is_installed(package) is package_utils.is_installed(
            package)
        assert osp.samefile(
            compat._get_installed_path(package),
            package_utils.get_installed_path(package))
    assert not compat._is_installed('no_such_package_xyz')
    assert compat._package2module('opencv-python') == 'cv2'

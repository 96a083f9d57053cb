# Copyright (c) OpenMMLab. All rights reserved.
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

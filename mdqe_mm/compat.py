# Copyright (c) OpenMMLab. All rights reserved.
"""Run-time shims that let mmengine 0.10.7 / mmdet 3.3.0 run on new torch.

Every shim here is idempotent, patches nothing on disk, and names the upstream
problem it works around. They are applied once, when ``mdqe_mm`` is imported.
"""
import importlib
import os.path as osp
from typing import Optional

import torch

__all__ = [
    'apply_compat_patches', 'torch_load_trusted',
    'adapt_cfg_for_cpu_distributed', 'patch_mmengine_package_utils'
]

_APPLIED = False


def torch_load_trusted(*args, **kwargs):
    """``torch.load`` that defaults to ``weights_only=False``.

    torch>=2.6 defaults ``torch.load`` to ``weights_only=True``. mmengine
    0.10.7 (``runner/checkpoint.py``) calls ``torch.load`` without the
    argument, so it cannot read back its own checkpoints, which pickle a
    ``HistoryBuffer`` and numpy arrays in ``message_hub``
    (open-mmlab/mmengine#1655; fixed on
    mmengine main by #1670 but not released). Checkpoints loaded through the
    runner are the user's own or ones they chose, i.e. trusted files.
    """
    kwargs.setdefault('weights_only', False)
    return torch.load(*args, **kwargs)


def _patch_mmengine_torch_load() -> None:
    """Route mmengine's checkpoint loading through :func:`torch_load_trusted`.

    mmengine's modules do ``import torch`` and call ``torch.load``; replacing
    the ``torch`` attribute they see with a namespace whose ``load`` is ours
    would be invasive, so the loader functions that call ``torch.load`` are
    given a module-level proxy instead.
    """
    from mmengine.runner import checkpoint as mm_ckpt
    if getattr(mm_ckpt, '_mdqe_mm_patched', False):
        return
    proxy = _TorchProxy()
    mm_ckpt.torch = proxy
    try:
        from mmengine.utils.dl_utils import hub as mm_hub
        mm_hub.torch = proxy
    except ImportError:  # pragma: no cover - layout of other mmengine versions
        pass
    mm_ckpt._mdqe_mm_patched = True


class _TorchProxy:
    """Forward every attribute to ``torch`` except ``load``."""

    def __getattr__(self, name):
        if name == 'load':
            return torch_load_trusted
        return getattr(torch, name)


def _needs_weights_only_patch() -> bool:
    version = torch.__version__.split('+')[0].split('.')
    major, minor = int(version[0]), int(version[1])
    return (major, minor) >= (2, 6)


def _patch_mmengine_cpu_distributed() -> None:
    """Let mmengine's ``pytorch`` launcher start on machines without CUDA.

    mmengine 0.10.7 ``dist/utils.py:_init_dist_pytorch`` always calls
    ``torch.cuda.set_device(local_rank)``, which fails on a CPU-only torch,
    so ``torchrun ... --launcher pytorch`` cannot even start a CPU (gloo) run.
    Without CUDA we initialise the process group directly, with gloo.
    """
    from mmengine.dist import utils as mm_dist_utils
    if getattr(mm_dist_utils, '_mdqe_mm_patched', False):
        return
    original = mm_dist_utils._init_dist_pytorch

    def init_dist_pytorch(backend, init_backend='torch', **kwargs):
        if torch.cuda.is_available():
            return original(backend, init_backend=init_backend, **kwargs)
        import os

        import torch.distributed as torch_dist
        if backend == 'nccl':
            backend = 'gloo'
        torch_dist.init_process_group(
            backend=backend,
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']),
            **kwargs)

    mm_dist_utils._init_dist_pytorch = init_dist_pytorch
    mm_dist_utils._mdqe_mm_patched = True


def _distribution_or_none(package: str):
    """``importlib.metadata.distribution(package)`` or None."""
    from importlib import metadata
    try:
        return metadata.distribution(package)
    except metadata.PackageNotFoundError:
        return None


def _top_level_module(dist) -> Optional[str]:
    """The first top-level module a distribution installs, if it says."""
    top_level = dist.read_text('top_level.txt')
    if top_level and top_level.split():
        return top_level.split()[0]
    return None


def _is_installed(package: str) -> bool:
    """``mmengine.utils.is_installed`` without ``pkg_resources``."""
    import importlib.util
    if _distribution_or_none(package) is not None:
        return True
    spec = importlib.util.find_spec(package)
    return spec is not None and spec.origin is not None


def _get_installed_path(package: str) -> str:
    """``mmengine.utils.get_installed_path`` without ``pkg_resources``.

    Like the original, it prefers the import location of the module (which
    also covers editable and ``PYTHONPATH`` installs) and falls back to the
    distribution's files.
    """
    import importlib.util
    dist = _distribution_or_none(package)
    module = package
    if dist is not None and importlib.util.find_spec(package) is None:
        module = _top_level_module(dist) or package
    spec = importlib.util.find_spec(module)
    if spec is not None and spec.origin is not None:
        return osp.dirname(spec.origin)
    if spec is not None:
        raise RuntimeError(f'{package} is a namespace package, which is '
                           'invalid for `get_install_path`')
    if dist is None:
        raise ModuleNotFoundError(f'package {package!r} is not installed')
    return osp.join(str(dist.locate_file('')), module)


def _package2module(package: str) -> str:
    """``mmengine.utils.package2module`` without ``pkg_resources``."""
    dist = _distribution_or_none(package)
    module = _top_level_module(dist) if dist is not None else None
    if module is None:
        raise ValueError(f'can not infer the module name of {package}')
    return module


def _pkg_resources_missing() -> bool:
    """Whether ``import pkg_resources`` would fail, without importing it
    (the import is slow and warns on setuptools >= 81)."""
    import importlib.util
    import sys
    if 'pkg_resources' in sys.modules:
        return sys.modules['pkg_resources'] is None
    try:
        return importlib.util.find_spec('pkg_resources') is None
    except (ImportError, ValueError):
        return True


def patch_mmengine_package_utils(force: bool = False) -> bool:
    """Let mmengine find installed packages without ``pkg_resources``.

    mmengine 0.10.7 resolves ``mmdet::`` config bases and ``mim``-style
    package paths with ``pkg_resources`` (``utils/package_utils.py``), which
    setuptools 82 removed. Where ``pkg_resources`` cannot be imported (or
    with ``force=True``), ``is_installed``, ``get_installed_path`` and
    ``package2module`` are replaced, in ``mmengine.utils`` and in every
    mmengine module that imported them by name, with equivalents built on
    ``importlib.metadata``. The runtime requirement ``setuptools<82`` keeps
    ``pkg_resources`` available for processes that never import mdqe_mm
    (e.g. mmdet's own tools); this shim covers a setuptools upgraded later.

    Args:
        force (bool): Patch even when ``pkg_resources`` imports.

    Returns:
        bool: Whether the functions were replaced (now or earlier).
    """
    from mmengine import utils as mm_utils
    from mmengine.utils import package_utils
    if getattr(package_utils, '_mdqe_mm_patched', False):
        return True
    if not force and not _pkg_resources_missing():
        return False
    replacements = dict(
        is_installed=_is_installed,
        get_installed_path=_get_installed_path,
        package2module=_package2module)
    modules = [package_utils, mm_utils]
    for name in ('mmengine.config.config', 'mmengine.config.utils',
                 'mmengine.hub.hub'):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:  # pragma: no cover - other mmengine layouts
            pass
    for module in modules:
        for attr, func in replacements.items():
            if hasattr(module, attr):
                setattr(module, attr, func)
    package_utils._mdqe_mm_patched = True
    return True


def adapt_cfg_for_cpu_distributed(cfg) -> None:
    """Make a distributed config runnable on CPU (gloo) when CUDA is absent.

    mmengine wraps the model in DDP with ``device_ids=[LOCAL_RANK]``, which
    DDP rejects for CPU modules, and defaults to the nccl backend. Only
    called by the tools when ``--launcher`` is not ``none``.

    Args:
        cfg (Config): the run's config, modified in place.
    """
    if torch.cuda.is_available():
        return
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') == 'nccl':
        dist_cfg['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg', None) or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def apply_compat_patches() -> None:
    """Apply every shim once."""
    global _APPLIED
    if _APPLIED:
        return
    if _needs_weights_only_patch():
        _patch_mmengine_torch_load()
    _patch_mmengine_cpu_distributed()
    patch_mmengine_package_utils()
    _APPLIED = True


apply_compat_patches()

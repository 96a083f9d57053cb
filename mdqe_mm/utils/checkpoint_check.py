# Copyright (c) OpenMMLab. All rights reserved.
"""Say what a checkpoint load did, and stop when the weights do not fit.

mmengine loads ``load_from`` / ``--resume`` checkpoints non-strictly: a
checkpoint of another model only logs a warning and the run goes on with
random weights. :class:`CheckpointLoadCheckHook` compares the checkpoint
with the model before the weights are copied, logs one line saying what
will be loaded, and raises :class:`CheckpointLoadError` when

- testing (``mode='test'``): any model tensor is missing from the
  checkpoint or has another shape (``allow_partial=True`` allows it);
- fine-tuning from ``load_from`` (``mode='finetune'``): less than
  ``min_loaded_ratio`` (default 0.5) of the model's values load. Heads of
  another size (e.g. 80 COCO classes into a 25-class OVIS model) are fine;
- resuming (``runner._resume``, always strict): anything is missing, has
  another shape or is not part of the model.

:func:`describe_checkpoint_file` names what a file that is not a PyTorch
checkpoint seems to be (JSON, text, empty, a zip without ``data.pkl``...).
``tools/train.py`` and ``tools/test.py`` add the hook through
:func:`add_checkpoint_check`.
"""
import os.path as osp
import re
import zipfile
from dataclasses import dataclass, field
from typing import List, Mapping, Optional, Sequence, Tuple

import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

__all__ = [
    'CheckpointLoadError', 'describe_checkpoint_file', 'check_checkpoint_file',
    'LoadReport', 'compare_state_dict', 'CheckpointLoadCheckHook',
    'add_checkpoint_check'
]

_MAX_LISTED = 5


class CheckpointLoadError(RuntimeError):
    """A checkpoint that cannot be read, or whose weights do not fit."""


def describe_checkpoint_file(path: str) -> Optional[str]:
    """What a file seems to be when it is not a PyTorch checkpoint.

    Only the first bytes (and a zip's table of contents) are read.

    Args:
        path (str): A local file.

    Returns:
        str | None: None when the file looks like a checkpoint (a
        ``torch.save`` zip with ``data.pkl``, or a pickle); else a short
        description such as ``'a JSON file'``.
    """
    size = osp.getsize(path)
    if size == 0:
        return 'an empty file (0 bytes)'
    with open(path, 'rb') as f:
        head = f.read(512)
    if head[:2] == b'PK':
        if not zipfile.is_zipfile(path):
            return ('a truncated or damaged zip archive (an incomplete '
                    'download or copy?)')
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError) as err:
            return f'a damaged zip archive ({err})'
        if any(n == 'data.pkl' or n.endswith('/data.pkl') for n in names):
            return None
        shown = ', '.join(names[:5]) + (', ...' if len(names) > 5 else '')
        return (f'a zip archive without data.pkl (not written by '
                f'torch.save); it holds: {shown or "nothing"}')
    if head[:1] == b'\x80':
        return None  # a pickle: legacy torch.save or a Detectron2 .pkl
    if head[:2] == b'\x1f\x8b':
        return 'a gzip-compressed file (decompress it first)'
    if len(head) > 262 and head[257:262] == b'ustar':
        return 'a tar archive (extract the checkpoint from it first)'
    if head[:4] == b'\x89HDF':
        return 'an HDF5 file (Keras/TensorFlow weights?)'
    if len(head) >= 9 and head[8:9] == b'{' and b'"' in head[8:32]:
        return ('a safetensors file (load it with safetensors and '
                'torch.save the state dict)')
    try:
        text = head.decode('utf-8')
    except UnicodeDecodeError:
        return f'unknown binary data (first bytes {head[:8]!r})'
    stripped = text.lstrip()
    if stripped.startswith(('{', '[')):
        return ('a JSON file (an annotation, results or metrics file?), '
                'not a checkpoint')
    if stripped.lower().startswith(('<!doctype html', '<html')):
        return 'an HTML page (a failed download?)'
    first_line = stripped.split('\n', 1)[0][:60]
    return f'a text file starting with {first_line!r}'


def check_checkpoint_file(path: str, what: str = 'checkpoint') -> None:
    """Raise :class:`CheckpointLoadError` for a local file that is missing or
    not a checkpoint; remote paths (``http://``, ``torchvision://``, ...)
    are left to mmengine.
    """
    if path is None or re.match(r'^[a-z][a-z0-9+.-]*://', str(path)):
        return
    if not osp.exists(path):
        raise CheckpointLoadError(f'{what} not found: {path}')
    if osp.isdir(path):
        raise CheckpointLoadError(f'{what} {path} is a folder, not a file')
    what_it_is = describe_checkpoint_file(path)
    if what_it_is is not None:
        raise CheckpointLoadError(
            f'{what} {path} is not a PyTorch checkpoint: it seems to be '
            f'{what_it_is}')


def _shape(value) -> Optional[Tuple[int, ...]]:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


@dataclass
class LoadReport:
    """What loading a state dict into a model does.

    Attributes:
        source (str): The checkpoint, for messages.
        num_model_tensors (int): Tensors of ``model.state_dict()``.
        num_model_values (int): Their total number of elements.
        loaded (list[str]): Model keys whose checkpoint tensor fits.
        loaded_values (int): Elements of those tensors.
        missing (list[str]): Model keys absent from the checkpoint.
        mismatched (list[tuple]): ``(key, checkpoint shape, model shape)``.
        unexpected (list[str]): Checkpoint keys the model does not have.
    """
    source: str
    num_model_tensors: int
    num_model_values: int
    loaded: List[str] = field(default_factory=list)
    loaded_values: int = 0
    missing: List[str] = field(default_factory=list)
    mismatched: List[tuple] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)

    @property
    def loaded_ratio(self) -> float:
        """Share of the model's values that load (0..1)."""
        return self.loaded_values / max(self.num_model_values, 1)

    def summary(self) -> str:
        """One line: counts of loaded, missing, mismatched, unexpected."""
        return (f'checkpoint {self.source}: loads {len(self.loaded)} of '
                f'{self.num_model_tensors} model tensors '
                f'({100 * self.loaded_ratio:.1f}% of '
                f'{self.num_model_values / 1e6:.2f}M values); missing '
                f'{len(self.missing)}, shape-mismatched '
                f'{len(self.mismatched)}, unexpected {len(self.unexpected)}')

    def details(self, max_listed: int = _MAX_LISTED) -> str:
        """The first few missing / mismatched / unexpected keys."""
        lines = []

        def listed(items):
            more = len(items) - max_listed
            return ', '.join(items[:max_listed]) + (f', ... ({more} more)'
                                                    if more > 0 else '')

        if self.missing:
            lines.append(f'  missing from the checkpoint: '
                         f'{listed(self.missing)}')
        if self.mismatched:
            lines.append('  other shape (checkpoint vs model): ' + listed([
                f'{k} {tuple(a) if a is not None else "non-tensor"} vs '
                f'{tuple(b)}' for k, a, b in self.mismatched
            ]))
        if self.unexpected:
            lines.append(f'  not in the model: {listed(self.unexpected)}')
        return '\n'.join(lines)


def _state_dict_of(checkpoint, source: str) -> Mapping:
    if not isinstance(checkpoint, Mapping):
        raise CheckpointLoadError(
            f'{source} is not a checkpoint: it holds a '
            f'{type(checkpoint).__name__}, not a dict with a state_dict')
    state_dict = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state_dict, Mapping) or not any(
            isinstance(v, torch.Tensor) for v in state_dict.values()):
        keys = ', '.join(map(str, list(checkpoint)[:8]))
        raise CheckpointLoadError(
            f'{source} holds no model weights (no "state_dict" of tensors; '
            f'its keys: {keys or "none"})')
    return state_dict


def compare_state_dict(
    model: torch.nn.Module,
    checkpoint: Mapping,
    source: str = 'checkpoint',
    revise_keys: Sequence[Tuple[str, str]] = ((r'^module\.', ''), )
) -> LoadReport:
    """Compare a checkpoint with a model the way mmengine loads it.

    Args:
        model (nn.Module): The (unwrapped) model.
        checkpoint (Mapping): A loaded checkpoint, with or without a
            ``state_dict`` entry.
        source (str): The checkpoint's name, for messages.
        revise_keys (Sequence[tuple[str, str]]): Regex renames applied to the
            checkpoint keys first, as in ``Runner.load_checkpoint``.

    Returns:
        LoadReport: What would load.

    Raises:
        CheckpointLoadError: When the checkpoint holds no state dict.
    """
    state_dict = _state_dict_of(checkpoint, source)
    revised = dict()
    for key, value in state_dict.items():
        for pattern, replacement in revise_keys:
            key = re.sub(pattern, replacement, key)
        revised[key] = value
    model_state = model.state_dict()
    report = LoadReport(
        source=source,
        num_model_tensors=len(model_state),
        num_model_values=sum(v.numel() for v in model_state.values()))
    for key, target in model_state.items():
        if key not in revised:
            report.missing.append(key)
            continue
        shape = _shape(revised[key])
        if shape != tuple(target.shape):
            report.mismatched.append((key, shape, tuple(target.shape)))
            continue
        report.loaded.append(key)
        report.loaded_values += target.numel()
    report.unexpected = [k for k in revised if k not in model_state]
    return report


def _checkpoint_name(runner) -> str:
    name = getattr(runner, '_load_from', None)
    if name is None and getattr(runner, '_resume', False):
        from mmengine.runner import find_latest_checkpoint
        name = find_latest_checkpoint(runner.work_dir)
    return str(name) if name is not None else 'the checkpoint'


@HOOKS.register_module()
class CheckpointLoadCheckHook(Hook):
    """Check a checkpoint against the model before its weights are loaded.

    Logs :meth:`LoadReport.summary` for every load and raises
    :class:`CheckpointLoadError` (with the first keys of each kind) when the
    checkpoint does not fit; see the module docstring for the rules.

    Args:
        mode (str): ``'test'`` (every model tensor must load) or
            ``'finetune'`` (at least ``min_loaded_ratio`` of the values
            must load). Resuming (``runner._resume``) is always strict.
            Defaults to ``'finetune'``.
        min_loaded_ratio (float): Smallest share (0..1) of the model's
            values (elements of ``model.state_dict()``) that ``load_from``
            must provide when fine-tuning. Defaults to 0.5.
        allow_partial (bool): Log instead of raising in the ``'test'`` and
            ``'finetune'`` modes. Defaults to False.
    """

    # last: hooks that rewrite the checkpoint (e.g. TemporalInflationHook)
    # run first, so the check sees what will be loaded
    priority = 'LOWEST'

    def __init__(self,
                 mode: str = 'finetune',
                 min_loaded_ratio: float = 0.5,
                 allow_partial: bool = False) -> None:
        if mode not in ('test', 'finetune'):
            raise ValueError('CheckpointLoadCheckHook: mode must be "test" '
                             f'or "finetune", got {mode!r}')
        if not 0 <= min_loaded_ratio <= 1:
            raise ValueError('CheckpointLoadCheckHook: min_loaded_ratio must '
                             f'be in [0, 1], got {min_loaded_ratio}')
        self.mode = mode
        self.min_loaded_ratio = min_loaded_ratio
        self.allow_partial = allow_partial
        self.last_report: Optional[LoadReport] = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Compare, log and raise on a bad fit (see the class docstring)."""
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        source = _checkpoint_name(runner)
        report = compare_state_dict(model, checkpoint, source)
        self.last_report = report
        runner.logger.info(report.summary())
        problem = self.problem(report, bool(getattr(runner, '_resume', False)))
        if problem is None:
            return
        if self.allow_partial and not getattr(runner, '_resume', False):
            runner.logger.warning(f'{problem} (loading anyway: '
                                  'allow_partial)\n' + report.details())
            return
        raise CheckpointLoadError(f'{problem}\n{report.details()}')

    def problem(self, report: LoadReport, resume: bool) -> Optional[str]:
        """The reason to refuse ``report``, or None when it is fine."""
        counts = (f'of the model\'s {report.num_model_tensors} tensors, '
                  f'{len(report.missing)} are missing from it and '
                  f'{len(report.mismatched)} have another shape')
        if resume:
            if report.missing or report.mismatched or report.unexpected:
                return (f'cannot resume from {report.source}: {counts}; '
                        f'{len(report.unexpected)} of its tensors are not in '
                        'the model; resuming needs a checkpoint of this very '
                        'model and config')
            return None
        if self.mode == 'test':
            if report.missing or report.mismatched:
                return (f'checkpoint {report.source} does not fit the model: '
                        f'{counts}. Wrong checkpoint or wrong config? Pass '
                        '--allow-partial-load to test a partial load on '
                        'purpose')
            return None
        if report.loaded_ratio < self.min_loaded_ratio:
            return (f'load_from {report.source}: only '
                    f'{100 * report.loaded_ratio:.1f}% of the model\'s values'
                    f' load ({len(report.loaded)} of '
                    f'{report.num_model_tensors} tensors; {counts}), below '
                    f'min_loaded_ratio={self.min_loaded_ratio} of '
                    'CheckpointLoadCheckHook. Wrong checkpoint or wrong '
                    'config? Pass --allow-partial-load (tools/train.py) to '
                    'load it anyway')
        return None


def add_checkpoint_check(cfg, mode: str, allow_partial: bool = False) -> None:
    """Add (or update) a :class:`CheckpointLoadCheckHook` in
    ``cfg.custom_hooks``.

    A hook the config already has keeps its ``min_loaded_ratio``; ``mode``
    is set, and ``allow_partial`` only ever switched on.
    """
    hooks = list(cfg.get('custom_hooks', None) or [])
    names = ('CheckpointLoadCheckHook', 'mmdet.CheckpointLoadCheckHook',
             CheckpointLoadCheckHook)
    for hook in hooks:
        if hook.get('type') in names:
            hook['mode'] = mode
            hook['allow_partial'] = bool(
                hook.get('allow_partial')) or bool(allow_partial)
            break
    else:
        hooks.append(
            dict(
                type='mmdet.CheckpointLoadCheckHook',
                mode=mode,
                allow_partial=bool(allow_partial)))
    cfg.custom_hooks = hooks

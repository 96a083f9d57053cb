# Copyright (c) OpenMMLab. All rights reserved.
"""Temporal weight inflation: a T1-frame MDQE checkpoint for a T2-frame model.

Only the decoder's temporal cross-attention (``MDQEMSDeformAttn`` in
``mode='temporal'``, named ``clip_temporal_attn`` in mdqe_mm and
``temp_attn_inst`` in the reference) has per-frame parameters: its kernel
"levels" are the T frames. Per head h, frame t and point k it holds

* ``attention_weights.weight`` / ``.bias``: rows ``(h, t, k)``, shape
  ``(H*T*K, C)`` / ``(H*T*K,)``;
* ``sampling_grid_offsets.weight`` / ``.bias``: rows ``(h, t, k, xy)``,
  shape ``(H*T*K*2, C)`` / ``(H*T*K*2,)``;
* the buffers ``sampling_offsets`` ``(1, 1, H, T, K, 2)`` (fixed rays) and
  ``lvl_spatial_scales`` ``(T,)``.

Inflating picks, for every new frame ``j < T2``, the slices of one source
frame ``s(j)``. The reference (``convert_inflated_weights.py`` L39-81)
repeats each source frame ``r`` times along T and truncates to T2, i.e.
``s(j) = j // r``, with ``r = max(num_frames+1 // num_pretrain_frames, 1)``.
Python reads that as ``T2 + (1 // T1)``, so ``r >= T2`` and **every new frame
takes frame 0's slices** (``mode='reference'``, the default, as the released
models were trained). ``mode='repeat'`` uses ``r = ceil(T2 / T1)`` instead,
what the reference's docstring describes: 4 -> 3 keeps frames 0, 1, 2 and
2 -> 4 gives 0, 0, 1, 1. With T1 = 1 both give frame 0 everywhere.

The encoder, the per-frame decoder attention and everything else have no
frame axis and load unchanged. ``attention_weights`` are softmax logits over
(frames x points): copies of one frame's logits split that frame's weight
evenly over the copies, so the inflated layer starts as a mean over frames.
"""
import math
from typing import Dict, List, MutableMapping, Optional, Tuple

import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop
from torch import Tensor, nn

__all__ = [
    'INFLATION_MODES', 'source_frame_indices', 'inflate_temporal_attn',
    'find_temporal_attn_prefixes', 'inflate_temporal_state_dict',
    'TemporalInflationHook'
]

INFLATION_MODES = ('reference', 'repeat')
# names of the temporal attention in mdqe_mm and in the reference code
TEMPORAL_ATTN_NAMES = ('clip_temporal_attn', 'temp_attn_inst')


def source_frame_indices(src_frames: int,
                         dst_frames: int,
                         mode: str = 'reference') -> List[int]:
    """Source frame of each of the ``dst_frames`` new frames.

    Args:
        src_frames (int): Frames T1 of the checkpoint.
        dst_frames (int): Frames T2 of the model.
        mode (str): ``'reference'`` or ``'repeat'`` (see the module
            docstring). Defaults to ``'reference'``.

    Returns:
        list[int]: ``s(j)`` for ``j = 0..T2-1``, each in ``[0, T1)``.
    """
    if mode not in INFLATION_MODES:
        raise ValueError(
            f'mode must be one of {INFLATION_MODES}, got {mode!r}')
    for name, val in (('src_frames', src_frames), ('dst_frames', dst_frames)):
        if not isinstance(val, int) or val < 1:
            raise ValueError(f'{name} must be a positive int, got {val!r}')
    if mode == 'reference':
        # convert_inflated_weights.py: T = max(num_frames+1 //
        # num_pretrain_frames, 1), evaluated with Python's precedence
        repeats = max(dst_frames + 1 // src_frames, 1)
    else:
        repeats = math.ceil(dst_frames / src_frames)
    return [j // repeats for j in range(dst_frames)]


def _frame_layout(state_dict: MutableMapping, prefix: str) -> Tuple[int, ...]:
    """(H, T, K) of a temporal attention from its tensors' shapes."""
    grid = state_dict.get(prefix + 'sampling_offsets')
    weight = state_dict.get(prefix + 'attention_weights.weight')
    if isinstance(grid, Tensor) and grid.dim() == 6:
        return tuple(grid.shape[2:5])
    raise ValueError(
        f'{prefix}sampling_offsets: expected the (1, 1, H, T, K, 2) buffer '
        f'of a temporal attention, got '
        f'{None if grid is None else tuple(grid.shape)} (attention_weights'
        f'.weight: {None if weight is None else tuple(weight.shape)})')


def inflate_temporal_attn(state_dict: MutableMapping,
                          prefix: str,
                          num_frames: int,
                          mode: str = 'reference') -> int:
    """Inflate one temporal attention's tensors in ``state_dict`` in place.

    Args:
        state_dict (MutableMapping): Holds ``<prefix>attention_weights.*``,
            ``<prefix>sampling_grid_offsets.*``, ``<prefix>sampling_offsets``
            and (optionally) ``<prefix>lvl_spatial_scales``.
        prefix (str): Module prefix ending with ``'.'``.
        num_frames (int): Frames T2 to inflate to.
        mode (str): ``'reference'`` or ``'repeat'``.

    Returns:
        int: The checkpoint's frame count T1 (nothing changes if T1 == T2).

    Raises:
        ValueError: A tensor is missing or its shape does not fit the
            (H, T1, K) layout read from ``sampling_offsets``.
    """
    num_heads, src_frames, num_points = _frame_layout(state_dict, prefix)
    if src_frames == num_frames:
        return src_frames
    index = torch.tensor(
        source_frame_indices(src_frames, num_frames, mode), dtype=torch.long)
    layout = (num_heads, src_frames, num_points)
    # name -> (ndim, the view that puts the frame axis at dim 1)
    views = {
        'attention_weights.weight': (2, layout + (-1, )),
        'attention_weights.bias': (1, layout),
        'sampling_grid_offsets.weight': (2, layout + (2, -1)),
        'sampling_grid_offsets.bias': (1, layout + (2, )),
    }
    updates: Dict[str, Tensor] = {}
    for name, (ndim, view) in views.items():
        key = prefix + name
        tensor = state_dict.get(key)
        if not isinstance(tensor, Tensor):
            raise ValueError(f'{key} is missing: cannot inflate the temporal '
                             f'attention {prefix[:-1]}')
        rows = math.prod(d for d in view if d > 0)
        if tensor.dim() != ndim or tensor.shape[0] != rows:
            raise ValueError(
                f'{key}: shape {tuple(tensor.shape)} does not fit '
                f'{num_heads} heads x {src_frames} frames x {num_points} '
                f'points (read from {prefix}sampling_offsets)')
        out = tensor.reshape(view).index_select(1, index)
        updates[key] = out.reshape(-1, *tensor.shape[1:]).contiguous()
    grid = state_dict[prefix + 'sampling_offsets']
    updates[prefix + 'sampling_offsets'] = grid.index_select(
        3, index).contiguous()
    scales = state_dict.get(prefix + 'lvl_spatial_scales')
    if isinstance(scales, Tensor):
        if tuple(scales.shape) != (src_frames, ):
            raise ValueError(f'{prefix}lvl_spatial_scales: shape '
                             f'{tuple(scales.shape)}, expected '
                             f'({src_frames},)')
        updates[prefix + 'lvl_spatial_scales'] = scales.index_select(
            0, index).contiguous()
    state_dict.update(updates)
    return src_frames


def find_temporal_attn_prefixes(state_dict: MutableMapping) -> List[str]:
    """Prefixes of the temporal attentions in a state dict, by name."""
    prefixes = []
    for key in state_dict:
        for name in TEMPORAL_ATTN_NAMES:
            suffix = f'{name}.sampling_offsets'
            if key == suffix or key.endswith('.' + suffix):
                prefixes.append(key[:-len('sampling_offsets')])
    return prefixes


def inflate_temporal_state_dict(
        state_dict: MutableMapping,
        num_frames: int,
        mode: str = 'reference',
        prefixes: Optional[List[str]] = None) -> Dict[str, int]:
    """Inflate every temporal attention of a state dict to ``num_frames``.

    Args:
        state_dict (MutableMapping): Changed in place.
        num_frames (int): Frames T2.
        mode (str): ``'reference'`` or ``'repeat'``.
        prefixes (list[str], optional): Module prefixes (ending with
            ``'.'``); found by name (``clip_temporal_attn`` /
            ``temp_attn_inst``) when not given.

    Returns:
        dict: prefix -> the checkpoint's frame count T1.
    """
    if prefixes is None:
        prefixes = find_temporal_attn_prefixes(state_dict)
    return {
        prefix: inflate_temporal_attn(state_dict, prefix, num_frames, mode)
        for prefix in prefixes
    }


def _temporal_attns(model: nn.Module) -> Dict[str, nn.Module]:
    from mdqe_mm.models.layers import MDQEMSDeformAttn
    return {
        name + '.': module
        for name, module in model.named_modules()
        if isinstance(module, MDQEMSDeformAttn) and module.mode == 'temporal'
    }


@HOOKS.register_module()
class TemporalInflationHook(Hook):
    """Inflate a ``load_from`` checkpoint's temporal attention to the model's
    clip length when the two differ, before the weights are loaded.

    The reference does this in ``train_net.py`` (L249-254) whenever
    ``PRETRAIN_FRAME_NUM != SAMPLING_FRAME_NUM`` and it does not resume.
    Here the checkpoint's T is read from its tensors, so a config cannot
    state it wrongly. Only fine-tuning is affected: resuming needs the very
    weights of the run, and testing a checkpoint of another T is an error
    that the strict load check of ``tools/test.py`` reports, not something to
    patch over. Every inflation is logged.

    Class heads are not touched: with another number of classes (80 COCO
    classes into a 25-class OVIS model) the last layers of the two class MLPs
    (``track_head.cls_embed.layers.2`` and
    ``query_selection.rpn_cls_embed.layers.2``) have another shape, so
    mmengine's non-strict load skips them and they keep the model's
    initialisation (focal-loss prior bias), while their hidden layers load.
    The reference does the same: Detectron2's checkpointer skips tensors of
    another shape.

    Args:
        mode (str): ``'reference'`` (default) or ``'repeat'``; see
            :func:`source_frame_indices`.
    """

    # before CheckpointLoadCheckHook (VERY_HIGH) compares the shapes
    priority = 'HIGHEST'

    def __init__(self, mode: str = 'reference') -> None:
        if mode not in INFLATION_MODES:
            raise ValueError(f'TemporalInflationHook: mode must be one of '
                             f'{INFLATION_MODES}, got {mode!r}')
        self.mode = mode
        self.inflated: Dict[str, Tuple[int, int]] = {}

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Inflate ``checkpoint['state_dict']`` in place (fine-tuning
        only)."""
        if getattr(runner, '_resume', False) or not isinstance(
                getattr(runner, '_train_loop', None), BaseLoop):
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        state_dict = checkpoint.get('state_dict', checkpoint)
        self.inflated = self.inflate(model, state_dict)
        for prefix, (src, dst) in self.inflated.items():
            runner.logger.info(
                f'TemporalInflationHook: {prefix[:-1]} inflated from {src} '
                f'to {dst} frames (mode={self.mode!r}, source frames '
                f'{source_frame_indices(src, dst, self.mode)})')

    def inflate(self, model: nn.Module,
                state_dict: MutableMapping) -> Dict[str, Tuple[int, int]]:
        """Inflate the tensors of ``model``'s temporal attentions.

        Returns:
            dict: prefix -> (T1, T2) of each inflated attention.
        """
        done = {}
        for prefix, module in _temporal_attns(model).items():
            for key_prefix in (prefix, 'module.' + prefix):
                if key_prefix + 'sampling_offsets' in state_dict:
                    break
            else:
                continue  # absent: reported by the load as missing keys
            src = inflate_temporal_attn(state_dict, key_prefix,
                                        module.num_frames, self.mode)
            if src != module.num_frames:
                done[prefix] = (src, module.num_frames)
        return done

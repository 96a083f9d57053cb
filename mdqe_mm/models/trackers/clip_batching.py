# Copyright (c) OpenMMLab. All rights reserved.
"""Batching of the clips a ``decode_clips`` callable receives from
:class:`NearOnlineInferencer`, shared by the models that implement it."""
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import Tensor

__all__ = ['frame_index_tensor', 'decode_clips_in_batches']

DecodeBatchFn = Callable[[Tensor, int, int], List[Dict[str, Tensor]]]


def frame_index_tensor(clips: List[List[int]],
                       device: torch.device) -> Tensor:
    """The flattened frame rows of clips of equal length, shape (N*T',).

    Clips of consecutive frames that start at consecutive frames (the
    near-online schedule) are built with ``arange`` on the device; other
    layouts are copied from the host (pinned, without blocking, on CUDA).
    Either way the host does not wait for the device.
    """
    first, length = clips[0][0], len(clips[0])
    if all(clip == list(range(first + i, first + i + length))
           for i, clip in enumerate(clips)):
        starts = torch.arange(first, first + len(clips), device=device)
        offsets = torch.arange(length, device=device)
        return (starts[:, None] + offsets[None]).flatten()
    inds = torch.tensor([i for clip in clips for i in clip], dtype=torch.long)
    if device.type == 'cuda':
        return inds.pin_memory().to(device, non_blocking=True)
    return inds.to(device)


def decode_clips_in_batches(clip_frame_inds: Sequence[Sequence[int]],
                            num_rows: int,
                            device: torch.device,
                            decode_batch: DecodeBatchFn,
                            batch_size: Optional[int] = None,
                            owner: str = 'decode_clips') -> List[dict]:
    """Decode clips of equal length together, at most ``batch_size`` at once.

    Args:
        clip_frame_inds (Sequence[Sequence[int]]): For every clip, the rows
            of the cached features it spans, in temporal order.
        num_rows (int): Rows (frames) the features hold.
        device (torch.device): Device of the features.
        decode_batch (Callable): ``decode_batch(frame_inds, num_clips,
            clip_len)`` with ``frame_inds`` of shape (N*T',), clip-major ->
            N per-clip dicts.
        batch_size (int, optional): Most clips per call; None: no limit.
        owner (str): Who decodes, for the error messages.

    Returns:
        list[dict]: One dict per clip, in input order, each with
        ``frame_inds`` (T',) added.
    """
    groups: 'OrderedDict[int, List[int]]' = OrderedDict()
    for clip_idx, inds in enumerate(clip_frame_inds):
        inds = [int(i) for i in inds]
        if len(inds) == 0:
            raise ValueError(f'{owner}: clip {clip_idx} has no frames')
        if min(inds) < 0 or max(inds) >= num_rows:
            raise IndexError(f'{owner}: clip {clip_idx} reads frames {inds} '
                             f'but the features hold {num_rows} frames')
        groups.setdefault(len(inds), []).append(clip_idx)
    results: List[Optional[dict]] = [None] * len(clip_frame_inds)
    for clip_len, clip_ids in groups.items():
        step = batch_size or len(clip_ids)
        for start in range(0, len(clip_ids), step):
            chunk = clip_ids[start:start + step]
            frame_inds = frame_index_tensor(
                [[int(i) for i in clip_frame_inds[c]] for c in chunk], device)
            preds = decode_batch(frame_inds, len(chunk), clip_len)
            for clip_idx, pred, inds in zip(
                    chunk, preds, frame_inds.view(len(chunk), -1)):
                pred['frame_inds'] = inds
                results[clip_idx] = pred
    return results

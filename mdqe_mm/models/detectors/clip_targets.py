# Copyright (c) OpenMMLab. All rights reserved.
import math
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmdet.structures import TrackDataSample
from mmdet.structures.bbox import get_box_tensor
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmengine.structures import InstanceData
from torch import Tensor


def _video_name(video: TrackDataSample, index: int) -> str:
    """A readable name of a clip for error messages."""
    frame = video[0]
    for key in ('video_id', 'img_path'):
        if key in frame.metainfo:
            return f'clip {index} ({key}={frame.metainfo[key]})'
    return f'clip {index}'


def _masks_to_tensor(masks: Union[BitmapMasks, PolygonMasks, Tensor,
                                  np.ndarray], device: torch.device,
                     where: str) -> Tensor:
    """Per-frame instance masks as a float tensor (n, h, w)."""
    if isinstance(masks, (BitmapMasks, PolygonMasks)):
        return masks.to_tensor(dtype=torch.float32, device=device)
    if isinstance(masks, np.ndarray):
        masks = torch.from_numpy(masks)
    if isinstance(masks, Tensor):
        if masks.dim() != 3:
            raise ValueError(f'{where}: gt masks must be (n, h, w), got '
                             f'shape {tuple(masks.shape)}')
        return masks.to(device=device, dtype=torch.float32)
    raise TypeError(f'{where}: unsupported gt mask type {type(masks)}')


def build_clip_targets(
        data_samples: Sequence[TrackDataSample],
        pad_shape: Tuple[int, int],
        device: Union[str, torch.device] = 'cpu',
        mask_stride: int = 4,
        num_classes: Optional[int] = None) -> List[InstanceData]:
    """Gather the per-frame ground truth of every clip into clip targets.

    Instances are linked across frames by ``gt_instances.instances_ids``; an
    instance is kept if it appears in at least one frame of the clip.
    Instances are ordered by ascending instance id.

    Args:
        data_samples (Sequence[:obj:`TrackDataSample`]): N clips of T frames;
            each frame's ``gt_instances`` has ``labels`` (n,),
            ``bboxes`` (n, 4) xyxy pixels (Tensor or HorizontalBoxes),
            ``masks`` (BitmapMasks / PolygonMasks / Tensor (n, h, w)) and
            ``instances_ids`` (n,).
        pad_shape (tuple[int, int]): padded input size (H_pad, W_pad).
        device (str | torch.device): device of the targets.
        mask_stride (int): stride of ``match_masks``. Defaults to 4.
        num_classes (int, optional): K; a label outside [0, K) is an error
            (a dataset whose classes do not match the model's). None skips
            the check.

    Returns:
        list[:obj:`InstanceData`]: one per clip, with G instances:

        - ``labels``: (G,) long; the label of the last frame the instance
          appears in (labels must agree across frames).
        - ``instances_ids``: (G,) long, the dataset instance ids.
        - ``present``: (G, T) bool, instance annotated in frame t.
        - ``masks``: (G, T, H_pad, W_pad) float in {0, 1}, zeros where
          absent, the frame's mask pasted at the top-left (padding at the
          right/bottom).
        - ``match_masks``: (G, T, ceil(H_pad/s), ceil(W_pad/s)) float,
          bilinear (align_corners=False) resize of ``masks``, left soft.
        - ``boxes``: (G, T, 4) xyxy normalised by the PADDED size, clamped
          to [0, 1], zeros where absent or degenerate (w or h <= 0 pixels).
        - ``valid``: (G, T) bool, box of positive normalised width and
          height (the frames that count in the box losses).
    """
    pad_h, pad_w = (int(v) for v in pad_shape)
    match_size = (math.ceil(pad_h / mask_stride),
                  math.ceil(pad_w / mask_stride))
    device = torch.device(device)
    clip_targets = []
    for clip_idx, video in enumerate(data_samples):
        where = _video_name(video, clip_idx)
        num_frames = len(video)
        frame_gts = []
        for frame_idx in range(num_frames):
            gt = video[frame_idx].gt_instances
            if 'instances_ids' not in gt:
                raise KeyError(f'{where}, frame {frame_idx}: gt_instances '
                               'has no "instances_ids"; MDQE links frames by '
                               'instance id (use LoadTrackAnnotations)')
            frame_gts.append(gt)
        all_ids = [
            gt.instances_ids.tolist() if isinstance(gt.instances_ids, Tensor)
            else list(np.asarray(gt.instances_ids).tolist())
            for gt in frame_gts
        ]
        for frame_idx, ids in enumerate(all_ids):
            if len(set(ids)) != len(ids):
                raise ValueError(f'{where}, frame {frame_idx}: duplicated '
                                 f'instance ids {ids}')
        unique_ids = sorted({int(i) for ids in all_ids for i in ids})
        id_to_row = {inst_id: row for row, inst_id in enumerate(unique_ids)}
        num_inst = len(unique_ids)

        labels = torch.full((num_inst, ), -1, dtype=torch.long)
        present = torch.zeros((num_inst, num_frames), dtype=torch.bool)
        boxes = torch.zeros((num_inst, num_frames, 4), dtype=torch.float32)
        masks = torch.zeros((num_inst, num_frames, pad_h, pad_w),
                            dtype=torch.float32,
                            device=device)
        for frame_idx, (gt, ids) in enumerate(zip(frame_gts, all_ids)):
            if len(ids) == 0:
                continue
            rows = torch.tensor([id_to_row[int(i)] for i in ids])
            frame_labels = torch.as_tensor(gt.labels).long().cpu()
            for row, label in zip(rows.tolist(), frame_labels.tolist()):
                if num_classes is not None and not 0 <= label < num_classes:
                    raise ValueError(
                        f'{where}, frame {frame_idx}: instance '
                        f'{unique_ids[row]} has label {label}, outside '
                        f'[0, {num_classes}); does the model\'s num_classes '
                        'match the dataset\'s classes?')
                if labels[row] >= 0 and labels[row] != label:
                    raise ValueError(
                        f'{where}: instance {unique_ids[row]} has label '
                        f'{int(labels[row])} and {label} in different frames')
                labels[row] = label
            present[rows, frame_idx] = True
            frame_boxes = get_box_tensor(gt.bboxes)
            frame_boxes = torch.as_tensor(frame_boxes).float().cpu()
            has_area = ((frame_boxes[:, 2:] - frame_boxes[:, :2])
                        > 0).all(dim=-1)
            boxes[rows[has_area], frame_idx] = frame_boxes[has_area]
            if 'masks' not in gt:
                raise KeyError(f'{where}, frame {frame_idx}: gt_instances '
                               'has no "masks"; MDQE trains on instance '
                               'masks (LoadTrackAnnotations(with_mask=True))')
            frame_masks = _masks_to_tensor(gt.masks, device,
                                           f'{where}, frame {frame_idx}')
            mask_h = min(frame_masks.shape[-2], pad_h)
            mask_w = min(frame_masks.shape[-1], pad_w)
            masks[rows.to(device), frame_idx, :mask_h, :mask_w] = \
                frame_masks[:, :mask_h, :mask_w]

        scale = boxes.new_tensor([pad_w, pad_h, pad_w, pad_h])
        boxes = (boxes / scale).clamp(min=0, max=1)
        valid = ((boxes[..., 2:] - boxes[..., :2]) > 0).all(dim=-1)
        boxes[~valid] = 0
        if num_inst > 0:
            match_masks = F.interpolate(
                masks, size=match_size, mode='bilinear', align_corners=False)
        else:
            match_masks = masks.new_zeros((0, num_frames) + match_size)
        clip_targets.append(
            InstanceData(
                labels=labels.to(device),
                instances_ids=torch.tensor(
                    unique_ids, dtype=torch.long, device=device),
                present=present.to(device),
                masks=masks,
                match_masks=match_masks,
                boxes=boxes.to(device),
                valid=valid.to(device)))
    return clip_targets

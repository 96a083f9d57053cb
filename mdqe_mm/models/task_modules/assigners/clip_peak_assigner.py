# Copyright (c) OpenMMLab. All rights reserved.
"""Per-pixel targets of the query-selection score map (spec §2.6)."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
from torch import Tensor

__all__ = ['ClipPeakAssigner']

# Distance given to pixels already claimed by an earlier (smaller) instance.
_CLAIMED_DIST = 1e9


@TASK_UTILS.register_module()
class ClipPeakAssigner:
    """Assign every stride-8 pixel of a clip to at most one GT instance.

    Part of MDQE's query initialisation (targets of
    :class:`GridQuerySelection`'s semantic map), not an mmdet
    ``BaseAssigner``.

    Per frame, the present GT instances are visited in order of mean box
    area over the clip, smallest first. An instance claims every pixel of
    the score map inside its mask (bilinearly resized to H0×W0, ``> 0.5``);
    if there is none, the single pixel nearest its box centre (in the
    normalised distance ``d`` below, ignoring claimed pixels). Claimed pixels
    get label (class id), instance index and the distance target::

        dist = 1 − 2·clamp(d, 0, 0.5),  d = ‖(c_gt − p) / max(wh_gt, 0.05)‖²

    where p is the pixel centre ``((j+.5)/W0, (i+.5)/H0)`` and ``d`` is the
    *squared* norm (as in the spec and the reference: d = 0.25 on the
    box's inscribed ellipse, so dist falls to 0.5 there and to 0 at d = 0.5).

    Reference quirk (``overwrite_claimed_pixels=True``, the default): once
    claimed, a pixel's ``d`` is set to 1e9 for the later instances, but a
    later (larger) instance whose mask covers it still overwrites its label
    and instance index, with distance target 0 (so the positive gets zero
    weight in :class:`DistanceWeightedFocalLoss`). With ``False`` claimed
    pixels stay with the first (smallest) instance.

    Instances with a non-positive box in every frame, or a negative label,
    are ignored, as in the reference.

    Args:
        num_classes (int, optional): If given, :meth:`assign` also returns
            ``class_dist`` (T, H0, W0, K), the reference's per-class distance
            target: an overwritten pixel keeps the earlier instance's
            distance on the earlier class channel.
        overwrite_claimed_pixels (bool): Keep the reference quirk above.
            Defaults to True.
        mask_thr (float): Threshold of the resized masks. Defaults to 0.5.
        min_box_size (float): Floor of the normalised box size in ``d``.
            Defaults to 0.05.
    """

    def __init__(self,
                 num_classes: Optional[int] = None,
                 overwrite_claimed_pixels: bool = True,
                 mask_thr: float = 0.5,
                 min_box_size: float = 0.05) -> None:
        if num_classes is not None and num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        if min_box_size <= 0:
            raise ValueError(f'min_box_size must be > 0, got {min_box_size}')
        self.num_classes = num_classes
        self.overwrite_claimed_pixels = overwrite_claimed_pixels
        self.mask_thr = mask_thr
        self.min_box_size = min_box_size

    @staticmethod
    def pixel_centres(feat_size: Tuple[int, int],
                      device: Optional[torch.device] = None) -> Tensor:
        """Normalised (x, y) centres of a H0×W0 map, row-major.

        Returns:
            Tensor: shape (H0·W0, 2).
        """
        height, width = feat_size
        ys = (torch.arange(height, device=device, dtype=torch.float32) +
              0.5) / height
        xs = (torch.arange(width, device=device, dtype=torch.float32) +
              0.5) / width
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
        return torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=-1)

    @torch.no_grad()
    def assign(self, gt_masks: Tensor, gt_boxes: Tensor, gt_labels: Tensor,
               gt_valid: Tensor, feat_size: Tuple[int,
                                                  int]) -> Dict[str, Tensor]:
        """Build the per-pixel targets of one clip.

        Args:
            gt_masks (Tensor): float masks in padded-image coordinates, any
                resolution, shape (G, T, Hm, Wm).
            gt_boxes (Tensor): normalised xyxy boxes (by the padded size),
                shape (G, T, 4), zeros where absent.
            gt_labels (Tensor): long class ids, shape (G,).
            gt_valid (Tensor): bool, shape (G, T): instance present in frame.
            feat_size (tuple[int, int]): (H0, W0) of the score map.

        Returns:
            dict[str, Tensor]:

            - labels: long (T, H0, W0), class id or -1 for background.
            - inst_ids: long (T, H0, W0), index into G or -1.
            - dist: float (T, H0, W0), distance target of the pixel's
              current label (0 on background).
            - class_dist: float (T, H0, W0, K), only if ``num_classes``.
        """
        if gt_masks.dim() != 4:
            raise ValueError('gt_masks must have shape (G, T, Hm, Wm), got '
                             f'{tuple(gt_masks.shape)}')
        num_gts, num_frames = gt_masks.shape[:2]
        if gt_boxes.shape != (num_gts, num_frames, 4):
            raise ValueError(
                f'gt_boxes must have shape ({num_gts}, {num_frames}, 4), got'
                f' {tuple(gt_boxes.shape)}')
        if gt_labels.shape != (num_gts, ):
            raise ValueError(f'gt_labels must have shape ({num_gts},), got '
                             f'{tuple(gt_labels.shape)}')
        if gt_valid.shape != (num_gts, num_frames):
            raise ValueError(
                f'gt_valid must have shape ({num_gts}, {num_frames}), got '
                f'{tuple(gt_valid.shape)}')
        height, width = int(feat_size[0]), int(feat_size[1])
        num_pixels = height * width
        device = gt_boxes.device
        if (self.num_classes is not None and num_gts > 0
                and int(gt_labels.max()) >= self.num_classes):
            raise ValueError(f'gt label {int(gt_labels.max())} is out of '
                             f'range for num_classes={self.num_classes}')

        labels = torch.full((num_frames, num_pixels),
                            -1,
                            dtype=torch.long,
                            device=device)
        inst_ids = torch.full_like(labels, -1)
        dist_target = torch.zeros((num_frames, num_pixels), device=device)
        class_dist = None
        if self.num_classes is not None:
            class_dist = torch.zeros(
                (num_frames, num_pixels, self.num_classes), device=device)

        def pack() -> Dict[str, Tensor]:
            out = dict(
                labels=labels.view(num_frames, height, width),
                inst_ids=inst_ids.view(num_frames, height, width),
                dist=dist_target.view(num_frames, height, width))
            if class_dist is not None:
                out['class_dist'] = class_dist.view(num_frames, height, width,
                                                    -1)
            return out

        if num_gts == 0:
            return pack()

        boxes_cxcywh = bbox_xyxy_to_cxcywh(gt_boxes.float())  # (G, T, 4)
        mean_area = boxes_cxcywh[..., 2:].prod(-1).mean(-1)
        order = mean_area.argsort(stable=True)
        usable = ((boxes_cxcywh[..., 2:] > 0).all(-1).any(-1) &
                  (gt_labels >= 0))
        order = order[usable[order]]
        if order.numel() == 0:
            return pack()

        inside = F.interpolate(
            gt_masks[order].float(), (height, width),
            mode='bilinear',
            align_corners=False) > self.mask_thr
        inside = inside.flatten(2)  # (G', T, P)

        centres = self.pixel_centres((height, width), device)  # (P, 2)
        sel_boxes = boxes_cxcywh[order]
        offsets = (sel_boxes[:, :, None, :2] - centres[None, None]) / \
            sel_boxes[:, :, None, 2:].clamp(min=self.min_box_size)
        sq_dist = offsets.pow(2).sum(-1)  # (G', T, P)
        sel_labels = gt_labels[order]
        sel_valid = gt_valid[order].bool()

        for t in range(num_frames):
            # A claimed pixel acts as if its distance were 1e9 for every
            # later instance: never the nearest, and dist target 0.
            claimed = torch.zeros(num_pixels, dtype=torch.bool, device=device)
            for k, gt_ind in enumerate(order.tolist()):
                if not sel_valid[k, t]:
                    continue
                candidates = inside[k, t]
                if not self.overwrite_claimed_pixels:
                    candidates = candidates & ~claimed
                if candidates.any():
                    pixels = candidates.nonzero().squeeze(1)
                else:
                    pixels = sq_dist[k, t].masked_fill(
                        claimed, _CLAIMED_DIST).argmin().view(1)
                value = 1 - 2 * sq_dist[k, t, pixels].clamp(min=0, max=0.5)
                value = value.masked_fill(claimed[pixels], 0.)
                label = int(sel_labels[k])
                labels[t, pixels] = label
                inst_ids[t, pixels] = gt_ind
                dist_target[t, pixels] = value
                if class_dist is not None:
                    class_dist[t, pixels, label] = value
                claimed[pixels] = True
        return pack()

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_classes={self.num_classes}, '
                f'overwrite_claimed_pixels={self.overwrite_claimed_pixels}, '
                f'mask_thr={self.mask_thr}, '
                f'min_box_size={self.min_box_size})')

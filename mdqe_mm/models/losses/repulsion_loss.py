# Copyright (c) OpenMMLab. All rights reserved.
"""Inter-instance mask repulsion loss of MDQE (spec §4.3).

The loss works on *pairs*: ``P`` (prediction, target) pairs produced by a
(possibly one-to-many) assignment, each with a clip mask of ``T`` frames. For
every pair ``i`` the union ``U_i`` of the binarised target masks of all
*nearby* pairs (itself included) is built; pixels of ``U_i`` get weight 2 in
a weighted BCE, and the pixels of ``U_i`` that are not part of the own target
are pushed to background by a "repulsion" dice term.

One implementation serves two forms. The dense form (MDQE) takes every
stride-4 pixel of the clip masks. The point form (mmdet's Mask2Former-style
heads) takes N points per mask: the same points are sampled from the
prediction, the target and the union ``U_i``, and the same formulas are
evaluated over them (:func:`sample_repulsion_points`). With every pixel
centre as a point the two forms are equal.
"""
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.ops import point_sample
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_overlaps
from torch import Tensor

__all__ = [
    'InterInstanceMaskRepulsionLoss', 'nearby_instance_matrix',
    'nearby_instance_union', 'weighted_bce_loss', 'repulsion_dice_loss',
    'masks_to_normalised_boxes', 'sample_repulsion_points'
]


def _check_avg_factor(avg_factor: float) -> float:
    """Clamp the normaliser to >= 1 like the reference (``max(n, 1)``)."""
    if isinstance(avg_factor, Tensor):
        avg_factor = float(avg_factor.detach().item())
    return max(float(avg_factor), 1.0)


@torch.no_grad()
def nearby_instance_matrix(target_boxes: Tensor,
                           clip_inds: Optional[Tensor] = None,
                           iou_thr: float = 0.1,
                           min_box_size: float = 0.05,
                           absent_boxes_are_nearby: bool = True) -> Tensor:
    """Which pairs are "nearby" each other, from their per-frame GT boxes.

    Boxes first get their width and height clamped to ``>= min_box_size``
    about their centre; then ``IoU_ij = max_t IoU(box_it, box_jt)`` and
    ``nearby_ij = IoU_ij > iou_thr`` for pairs of the same clip.

    A frame where an instance is absent carries the box ``(0, 0, 0, 0)``.
    With ``absent_boxes_are_nearby=True`` (the reference behaviour) such a box
    becomes a ``min_box_size`` square at the origin, so two instances that
    are both absent in the same frame get IoU 1 and count as nearby. With
    ``False`` a frame only enters the max over T when both boxes are present
    (positive width and height); the diagonal is always nearby.

    Args:
        target_boxes (Tensor): GT boxes of the pairs, normalised xyxy,
            shape (P, T, 4), zeros in absent frames.
        clip_inds (Tensor, optional): Clip (video) index of every pair,
            shape (P,). None means all pairs come from one clip.
        iou_thr (float): A pair is nearby when its max IoU is above this.
        min_box_size (float): Minimum normalised width/height.
        absent_boxes_are_nearby (bool): Keep the reference quirk above.

    Returns:
        Tensor: bool, shape (P, P).
    """
    if target_boxes.dim() != 3 or target_boxes.size(-1) != 4:
        raise ValueError('target_boxes must have shape (P, T, 4), got '
                         f'{tuple(target_boxes.shape)}')
    num_pairs = target_boxes.size(0)
    boxes = target_boxes.float()
    present = ((boxes[..., 2:] - boxes[..., :2]) > 0).all(dim=-1)  # (P, T)
    centre = 0.5 * (boxes[..., :2] + boxes[..., 2:])
    size = (boxes[..., 2:] - boxes[..., :2]).clamp(min=min_box_size)
    boxes = torch.cat([centre - 0.5 * size, centre + 0.5 * size], dim=-1)

    # eps=1e-3 is the reference's union clamp; it only matters when
    # min_box_size is configured below ~0.03.
    frame_ious = bbox_overlaps(
        boxes.transpose(0, 1), boxes.transpose(0, 1), eps=1e-3)  # (T, P, P)
    if not absent_boxes_are_nearby:
        both_present = present.t()[:, :, None] & present.t()[:, None, :]
        frame_ious = frame_ious.masked_fill(~both_present, 0.)
    if frame_ious.size(0) == 0:
        max_ious = frame_ious.new_zeros((num_pairs, num_pairs))
    else:
        max_ious = frame_ious.max(dim=0).values
    nearby = max_ious > iou_thr
    if not absent_boxes_are_nearby:
        nearby |= torch.eye(num_pairs, dtype=torch.bool, device=nearby.device)
    if clip_inds is not None:
        if clip_inds.shape != (num_pairs, ):
            raise ValueError(f'clip_inds must have shape ({num_pairs},), '
                             f'got {tuple(clip_inds.shape)}')
        nearby &= clip_inds[:, None] == clip_inds[None, :]
    return nearby


@torch.no_grad()
def nearby_instance_union(mask_targets: Tensor,
                          nearby: Tensor,
                          mask_thr: float = 0.5) -> Tensor:
    """Union of the binarised target masks of each pair's nearby pairs.

    Args:
        mask_targets (Tensor): Soft target masks, shape (P, T, h, w).
        nearby (Tensor): bool, shape (P, P); row i selects the pairs whose
            masks form ``U_i`` (normally includes i itself).
        mask_thr (float): Binarisation threshold (strictly greater).

    Returns:
        Tensor: float 0/1 union ``U``, shape (P, T, h, w).
    """
    num_pairs = mask_targets.size(0)
    if nearby.shape != (num_pairs, num_pairs):
        raise ValueError(f'nearby must have shape ({num_pairs}, {num_pairs})'
                         f', got {tuple(nearby.shape)}')
    binary = (mask_targets > mask_thr).flatten(1).float()  # (P, THW)
    # A matrix product counts the covering neighbours of every pixel.
    counts = nearby.float() @ binary
    return (counts > 0).float().view_as(mask_targets)


@torch.no_grad()
def masks_to_normalised_boxes(masks: Tensor, thr: float = 0.5) -> Tensor:
    """Tight boxes of binarised masks, normalised by the mask size.

    For heads whose targets carry masks but no per-frame boxes (mmdet's
    Mask2Former heads): gives the ``target_boxes`` of
    :func:`nearby_instance_matrix`. A box spans the covered pixels,
    ``(x0 / W, y0 / H, (x1 + 1) / W, (y1 + 1) / H)``.

    Args:
        masks (Tensor): shape (P, T, H, W), soft or binary.
        thr (float): Binarisation threshold (strictly greater).

    Returns:
        Tensor: xyxy in [0, 1], shape (P, T, 4), zeros where a frame's mask
        is empty (absent).
    """
    if masks.dim() != 4:
        raise ValueError('masks must have shape (P, T, H, W), got '
                         f'{tuple(masks.shape)}')
    height, width = masks.shape[-2:]
    binary = masks > thr
    cols = binary.any(dim=-2)  # (P, T, W)
    rows = binary.any(dim=-1)  # (P, T, H)
    col_idx = torch.arange(width, device=masks.device, dtype=torch.float32)
    row_idx = torch.arange(height, device=masks.device, dtype=torch.float32)
    big = float(max(height, width))
    x0 = torch.where(cols, col_idx, big).amin(dim=-1)
    x1 = torch.where(cols, col_idx, -1.).amax(dim=-1) + 1
    y0 = torch.where(rows, row_idx, big).amin(dim=-1)
    y1 = torch.where(rows, row_idx, -1.).amax(dim=-1) + 1
    boxes = torch.stack([x0 / width, y0 / height, x1 / width, y1 / height],
                        dim=-1)
    present = cols.any(dim=-1, keepdim=True)
    return torch.where(present, boxes, torch.zeros_like(boxes))


def sample_repulsion_points(mask_logits: Tensor,
                            mask_targets: Tensor,
                            nearby: Tensor,
                            point_coords: Tensor,
                            mask_thr: float = 0.5) -> Dict[str, Tensor]:
    """Point-sample prediction, target and nearby union at the same points.

    The point form of the repulsion loss (used by
    ``RepulsionMask2FormerHead`` and ``RepulsionMask2FormerTrackHead``): the
    union ``U_i`` is built densely from the binarised targets
    (:func:`nearby_instance_union`) and then sampled like the target, with
    mmcv's bilinear ``point_sample`` (``align_corners=False``). The T frames
    of a pair are concatenated, so each pair is one row of ``T * N``
    points, as the dense form flattens ``T * h * w`` pixels.

    Args:
        mask_logits (Tensor): predicted logits, shape (P, T, h, w).
        mask_targets (Tensor): soft targets in [0, 1], shape (P, T, H, W);
            H, W may differ from h, w (points are in [0, 1] coordinates).
        nearby (Tensor): bool, shape (P, P), see
            :func:`nearby_instance_matrix`.
        point_coords (Tensor): (x, y) in [0, 1], shape (P * T, N, 2), the
            points of each (pair, frame), pair-major.
        mask_thr (float): Binarisation threshold of the union.

    Returns:
        dict[str, Tensor]: ``logits``, ``targets`` and ``union``, each of
        shape (P, T * N); only ``logits`` carries gradients.
    """
    num_pairs, num_frames = mask_logits.shape[:2]
    if mask_targets.shape[:2] != (num_pairs, num_frames):
        raise ValueError(
            f'mask_targets shape {tuple(mask_targets.shape)} does not match '
            f'mask_logits shape {tuple(mask_logits.shape)} in (P, T)')
    if point_coords.dim() != 3 or point_coords.shape[0] != \
            num_pairs * num_frames or point_coords.shape[-1] != 2:
        raise ValueError(f'point_coords must have shape ({num_pairs} * '
                         f'{num_frames}, N, 2), got '
                         f'{tuple(point_coords.shape)}')
    with torch.no_grad():
        targets = mask_targets if mask_targets.is_floating_point() else \
            mask_targets.float()
        union = nearby_instance_union(targets, nearby.bool(), mask_thr)
        dense = torch.stack([targets, union.to(targets)], dim=2)
        sampled = point_sample(
            dense.flatten(0, 1), point_coords.to(targets.dtype))
        sampled = sampled.view(num_pairs, num_frames, 2, -1)
        targets = sampled[:, :, 0].flatten(1)
        union = sampled[:, :, 1].flatten(1)
    logits = point_sample(
        mask_logits.flatten(0, 1)[:, None],
        point_coords.to(mask_logits.dtype))[:, 0]
    return dict(
        logits=logits.reshape(num_pairs, -1), targets=targets, union=union)


def weighted_bce_loss(mask_logits: Tensor, mask_targets: Tensor,
                      nearby_union: Tensor, avg_factor: float) -> Tensor:
    """BCE with weight 2 on ``target ∪ nearby`` pixels and 1 elsewhere.

    ``ℓ_i = Σ w·BCE / max(Σ w, 1)`` with ``w = U_i + 1`` over the T·h·w
    pixels (dense form) or the sampled points (point form) of pair i, and
    ``L = Σ_i ℓ_i / max(avg_factor, 1)``.

    Args:
        mask_logits (Tensor): shape (P, T, h, w), or (P, N) points.
        mask_targets (Tensor): soft targets in [0, 1], same shape.
        nearby_union (Tensor): union ``U`` (0/1, or bilinearly sampled),
            same shape.
        avg_factor (float): Normaliser (number of matched pairs).

    Returns:
        Tensor: scalar loss (unweighted).
    """
    logits = mask_logits.float().flatten(1)
    targets = mask_targets.to(logits).flatten(1)
    weights = nearby_union.to(logits).flatten(1) + 1
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction='none')
    per_pair = (bce * weights).sum(1) / weights.sum(1).clamp(min=1)
    return per_pair.sum() / _check_avg_factor(avg_factor)


def repulsion_dice_loss(mask_logits: Tensor, mask_targets: Tensor,
                        nearby_union: Tensor, avg_factor: float) -> Tensor:
    """Dice loss that also pushes neighbours' pixels to background.

    With ``p = σ(logit)``, ``m`` the soft target and
    ``m̄ = (U_i > .5) ∧ (m < .5)`` the nearby non-target pixels::

        ℓ_i = 1 − (2Σ p·m + Σ (1−p)·m̄ + 1) / (Σ p + Σ m + Σ m̄ + 1)

    and ``L = Σ_i ℓ_i / max(avg_factor, 1)``, the sums running over the
    pixels or the sampled points of pair i. It is 0 when p = 1 on a binary
    target and p = 0 on ``m̄``.

    Args:
        mask_logits (Tensor): shape (P, T, h, w), or (P, N) points.
        mask_targets (Tensor): soft targets in [0, 1], same shape.
        nearby_union (Tensor): union ``U`` (0/1, or bilinearly sampled),
            same shape.
        avg_factor (float): Normaliser (number of matched pairs).

    Returns:
        Tensor: scalar loss (unweighted).
    """
    logits = mask_logits.float().flatten(1)
    targets = mask_targets.to(logits).flatten(1)
    others = ((nearby_union.flatten(1) > 0.5) &
              ((1 - targets) > 0.5)).to(logits)
    prob_fg = logits.sigmoid()
    # sigmoid(-x) rather than 1 - sigmoid(x): exact for large |x|.
    prob_bg = (-logits).sigmoid()
    numerator = 2 * (prob_fg * targets).sum(1) + (prob_bg * others).sum(1)
    denominator = prob_fg.sum(1) + targets.sum(1) + others.sum(1)
    per_pair = 1 - (numerator + 1) / (denominator + 1)
    return per_pair.sum() / _check_avg_factor(avg_factor)


@MODELS.register_module()
class InterInstanceMaskRepulsionLoss(nn.Module):
    """Weighted BCE + repulsion dice on per-instance (video) masks.

    Usable by any head that predicts one mask (or clip mask) per matched
    prediction: it takes P (prediction, target) pairs. "Nearby" pairs are
    either given directly (``nearby``) or derived from the targets' boxes
    (max-over-frames IoU above ``nearby_iou_thr``, same clip only; see
    :func:`nearby_instance_matrix`). The nearby set is computed without
    gradients.

    Args:
        loss_weight_bce (float): Weight of ``loss_mask``. Defaults to 4.0.
        loss_weight_dice (float): Weight of ``loss_dice``. Defaults to 4.0.
        nearby_iou_thr (float): IoU threshold of the nearby set.
            Defaults to 0.1 (``INTERINST_MASK_THRESHOLD``).
        min_box_size (float): Boxes get w, h clamped to at least this
            (normalised) about their centre. Defaults to 0.05.
        absent_boxes_are_nearby (bool): Reference quirk: two instances both
            absent in one frame (zero boxes) count as nearby. False excludes
            absent frames from the max over T. Defaults to True.
        repulsion (bool): False drops the nearby sets, i.e. ``U_i = 0``:
            the loss becomes plain per-pixel-mean BCE plus plain dice, the
            "without repulsion" ablation of MDQE. Defaults to True.
    """

    def __init__(self,
                 loss_weight_bce: float = 4.0,
                 loss_weight_dice: float = 4.0,
                 nearby_iou_thr: float = 0.1,
                 min_box_size: float = 0.05,
                 absent_boxes_are_nearby: bool = True,
                 repulsion: bool = True) -> None:
        super().__init__()
        if loss_weight_bce < 0 or loss_weight_dice < 0:
            raise ValueError('loss weights must be >= 0, got '
                             f'{loss_weight_bce}, {loss_weight_dice}')
        if not 0 <= nearby_iou_thr < 1:
            raise ValueError('nearby_iou_thr must be in [0, 1), got '
                             f'{nearby_iou_thr}')
        if min_box_size < 0:
            raise ValueError(f'min_box_size must be >= 0, got {min_box_size}')
        self.loss_weight_bce = loss_weight_bce
        self.loss_weight_dice = loss_weight_dice
        self.nearby_iou_thr = nearby_iou_thr
        self.min_box_size = min_box_size
        self.absent_boxes_are_nearby = absent_boxes_are_nearby
        self.repulsion = repulsion

    def forward(self,
                mask_logits: Tensor,
                mask_targets: Tensor,
                target_boxes: Optional[Tensor] = None,
                clip_inds: Optional[Tensor] = None,
                avg_factor: float = 1.0,
                nearby: Optional[Tensor] = None,
                nearby_union: Optional[Tensor] = None,
                **kwargs) -> Dict[str, Tensor]:
        """Compute the weighted losses, in the dense or the point form.

        Dense form: ``mask_logits`` and ``mask_targets`` of shape
        (P, T, h, w); the union is built here from ``nearby`` or
        ``target_boxes``. Point form: pass ``nearby_union`` too, sampled at
        the same points as the logits and targets (shape (P, N) or any
        (P, ...)), e.g. from :func:`sample_repulsion_points`.

        Args:
            mask_logits (Tensor): Predicted mask logits of the P matched
                pairs, shape (P, T, h, w) (use T=1 for image masks), or
                (P, N) points with ``nearby_union``.
            mask_targets (Tensor): Soft targets in [0, 1], same shape.
            target_boxes (Tensor, optional): GT boxes of the pairs,
                normalised xyxy, shape (P, T, 4), zeros where absent.
                Needed in the dense form unless ``nearby`` is given.
            clip_inds (Tensor, optional): long, shape (P,): the clip each
                pair comes from; pairs of different clips are never nearby.
                None means one clip. Ignored when ``nearby`` is given.
            avg_factor (float): Normaliser, the number of matched pairs
                (clamped to >= 1).
            nearby (Tensor, optional): Precomputed bool (P, P) nearby
                matrix (row i: pairs whose masks form ``U_i``; it should
                include the diagonal).
            nearby_union (Tensor, optional): The union ``U`` already at
                the shape of ``mask_logits`` (point form).

        Returns:
            dict[str, Tensor]: ``loss_mask`` (weighted BCE) and ``loss_dice``
            (repulsion dice), already multiplied by their loss weights.
        """
        if kwargs or mask_logits.dim() < 2:
            # The call of a stock mmdet head: flat point logits, plus
            # weight / reduction_override, and no notion of which pairs are
            # nearby. Fail loudly instead of computing something else.
            raise TypeError(
                'InterInstanceMaskRepulsionLoss takes per-pair masks (P, T, '
                'h, w) or points (P, N) together with who is near whom, '
                f'got mask_logits of shape {tuple(mask_logits.shape)}' +
                (f' and {sorted(kwargs)}' if kwargs else '') +
                '. In mmdet models use it through RepulsionMask2FormerHead '
                '(images) or RepulsionMask2FormerTrackHead (videos), which '
                'compute the nearby sets; see configs/mixing/.')
        if mask_targets.shape != mask_logits.shape:
            raise ValueError(
                f'mask_targets shape {tuple(mask_targets.shape)} differs from '
                f'mask_logits shape {tuple(mask_logits.shape)}')
        num_pairs = mask_logits.shape[0]
        if num_pairs == 0:
            zero = mask_logits.sum() * 0
            return dict(loss_mask=zero, loss_dice=zero.clone())

        if not self.repulsion:
            nearby_union = torch.zeros_like(mask_targets)
        elif nearby_union is not None:
            if nearby_union.shape != mask_logits.shape:
                raise ValueError(
                    f'nearby_union shape {tuple(nearby_union.shape)} differs '
                    f'from mask_logits shape {tuple(mask_logits.shape)}')
        else:
            if mask_logits.dim() != 4:
                raise ValueError(
                    'mask_logits must have shape (P, T, h, w), got '
                    f'{tuple(mask_logits.shape)}; point logits (P, N) need '
                    'nearby_union sampled at the same points')
            num_frames = mask_logits.shape[1]
            if nearby is None:
                if target_boxes is None:
                    raise ValueError(
                        'either target_boxes or nearby must be given')
                if target_boxes.shape != (num_pairs, num_frames, 4):
                    raise ValueError('target_boxes must have shape '
                                     f'({num_pairs}, {num_frames}, 4), got '
                                     f'{tuple(target_boxes.shape)}')
                nearby = self.nearby_matrix(target_boxes, clip_inds)
            nearby_union = nearby_instance_union(mask_targets, nearby.bool())

        loss_mask = weighted_bce_loss(mask_logits, mask_targets, nearby_union,
                                      avg_factor)
        loss_dice = repulsion_dice_loss(mask_logits, mask_targets,
                                        nearby_union, avg_factor)
        return dict(
            loss_mask=self.loss_weight_bce * loss_mask,
            loss_dice=self.loss_weight_dice * loss_dice)

    def nearby_matrix(self,
                      target_boxes: Tensor,
                      clip_inds: Optional[Tensor] = None) -> Tensor:
        """:func:`nearby_instance_matrix` with this loss's settings.

        Args:
            target_boxes (Tensor): normalised xyxy, shape (P, T, 4).
            clip_inds (Tensor, optional): shape (P,).

        Returns:
            Tensor: bool, shape (P, P).
        """
        return nearby_instance_matrix(
            target_boxes,
            clip_inds,
            iou_thr=self.nearby_iou_thr,
            min_box_size=self.min_box_size,
            absent_boxes_are_nearby=self.absent_boxes_are_nearby)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'loss_weight_bce={self.loss_weight_bce}, '
                f'loss_weight_dice={self.loss_weight_dice}, '
                f'nearby_iou_thr={self.nearby_iou_thr}, '
                f'min_box_size={self.min_box_size}, '
                f'absent_boxes_are_nearby={self.absent_boxes_are_nearby}, '
                f'repulsion={self.repulsion})')

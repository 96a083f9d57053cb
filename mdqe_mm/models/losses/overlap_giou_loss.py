# Copyright (c) OpenMMLab. All rights reserved.
"""GIoU loss that ignores pairs of boxes that do not intersect (§4.2)."""
from typing import Optional

import torch
import torch.nn as nn
from mmdet.models.losses.utils import weighted_loss
from mmdet.registry import MODELS
from torch import Tensor

__all__ = ['OverlapGIoULoss', 'overlap_giou']


def overlap_giou(pred: Tensor, target: Tensor, eps: float = 1e-3) -> Tensor:
    """GIoU of aligned box pairs, set to 0 where the two do not intersect.

    ``GIoU = inter / max(union, eps) - (enclose - union) / max(enclose,
    eps)`` where ``inter > 0``, else 0.

    Args:
        pred (Tensor): xyxy boxes, shape (N, 4).
        target (Tensor): xyxy boxes, shape (N, 4).
        eps (float): Lower bound of the union and enclosing areas. Defaults
            to 1e-3 (the reference value, for boxes normalised to [0, 1]).

    Returns:
        Tensor: shape (N,).
    """
    area_pred = (pred[:, 2:] - pred[:, :2]).prod(-1)
    area_target = (target[:, 2:] - target[:, :2]).prod(-1)
    inter_wh = (torch.minimum(pred[:, 2:], target[:, 2:]) -
                torch.maximum(pred[:, :2], target[:, :2])).clamp(min=0)
    inter = inter_wh.prod(-1)
    union = area_pred + area_target - inter
    enclose_wh = (torch.maximum(pred[:, 2:], target[:, 2:]) -
                  torch.minimum(pred[:, :2], target[:, :2])).clamp(min=0)
    enclose = enclose_wh.prod(-1)
    giou = inter / union.clamp(min=eps) - \
        (enclose - union) / enclose.clamp(min=eps)
    return torch.where(inter > 0, giou, torch.zeros_like(giou))


@weighted_loss
def overlap_giou_loss(pred: Tensor,
                      target: Tensor,
                      eps: float = 1e-3) -> Tensor:
    return 1 - overlap_giou(pred, target, eps)


@MODELS.register_module()
class OverlapGIoULoss(nn.Module):
    """``1 - GIoU`` with the GIoU of non-intersecting pairs set to 0.

    The GIoU loss of MDQE's reference (its ``matched_boxlist_giou``): a
    predicted box that does not touch its target costs exactly 1 and gets
    no gradient from this loss (the L1 loss still pulls it), whereas
    mmdet's ``GIoULoss`` charges up to 2 and pushes disjoint boxes together.
    Early in training most matched pairs are disjoint, so the two give
    different gradients.

    Args:
        eps (float): Lower bound of the union and enclosing areas. Defaults
            to 1e-3.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``. Defaults to
            ``'mean'``.
        loss_weight (float): Defaults to 1.0.
    """

    def __init__(self,
                 eps: float = 1e-3,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f'reduction must be none, mean or sum, got '
                             f'{reduction!r}')
        if eps <= 0:
            raise ValueError(f'eps must be > 0, got {eps}')
        self.eps = eps
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): Predicted xyxy boxes, shape (N, 4).
            target (Tensor): Target xyxy boxes, shape (N, 4).
            weight (Tensor, optional): Per-box weight, shape (N,), or
                mmdet's per-coordinate box weights, shape (N, 4), which
                are averaged over the 4 coordinates as ``GIoULoss`` does.
            avg_factor (float, optional): Divisor of the summed loss.
            reduction_override (str, optional): Overrides ``reduction``.

        Returns:
            Tensor: Scalar, or shape (N,) with reduction ``'none'``.
        """
        if pred.shape != target.shape or pred.shape[-1:] != (4, ):
            raise ValueError(f'pred and target must both be (N, 4), got '
                             f'{tuple(pred.shape)} and {tuple(target.shape)}')
        if reduction_override not in (None, 'none', 'mean', 'sum'):
            raise ValueError('reduction_override must be None, none, mean '
                             f'or sum, got {reduction_override!r}')
        reduction = reduction_override or self.reduction
        if weight is not None:
            if weight.shape == pred.shape:
                # mmdet's DETR heads pass (N, 4) bbox weights. All-zero
                # weights need no early exit (GIoULoss has one): the
                # clamped areas keep every term finite, so the weighted sum
                # is an exact 0 in the graph, without a host sync.
                weight = weight.mean(-1)
            elif weight.shape != pred.shape[:1]:
                raise ValueError(
                    f'weight must have shape ({pred.shape[0]},) or '
                    f'{tuple(pred.shape)}, got {tuple(weight.shape)}')
        return self.loss_weight * overlap_giou_loss(
            pred,
            target,
            weight,
            eps=self.eps,
            reduction=reduction,
            avg_factor=avg_factor)

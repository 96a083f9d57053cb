# Copyright (c) OpenMMLab. All rights reserved.
"""Class focal loss of MDQE's clip queries, averaged over queries (§4.2)."""
from typing import Optional

import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss
from mmdet.registry import MODELS
from torch import Tensor

__all__ = ['VideoQueryFocalLoss']


@MODELS.register_module()
class VideoQueryFocalLoss(nn.Module):
    """Sigmoid focal loss normalised by the (weighted) number of queries.

    MDQE-internal: :class:`MDQEHead` calls it with (query, class) logits and
    a per-query matched mask, not with mmdet's ``(pred, target, weight,
    avg_factor)`` convention.

    Every matched query (one-to-many matching included) gets a one-hot
    target; the rest get all zeros. With ``ℓ_qk`` the focal loss (α, γ) and
    ``w_q = 1`` for matched, ``no_object_weight`` for unmatched queries::

        L = loss_weight · Σ_q (Σ_k ℓ_qk)·w_q / max(Σ_q w_q, 1)

    With ``no_object_weight=1`` this is the mean over all queries of the
    class-summed focal loss, not a division by the number of matches.

    Args:
        alpha (float): Focal α. Defaults to 0.25.
        gamma (float): Focal γ. Defaults to 2.0.
        no_object_weight (float): ``w_q`` of unmatched queries. Defaults to
            1.0 (``NO_OBJECT_WEIGHT``).
        loss_weight (float): Defaults to 2.0.
    """

    def __init__(self,
                 alpha: float = 0.25,
                 gamma: float = 2.0,
                 no_object_weight: float = 1.0,
                 loss_weight: float = 2.0) -> None:
        super().__init__()
        if not 0 <= alpha <= 1:
            raise ValueError(f'alpha must be in [0, 1], got {alpha}')
        if gamma < 0 or no_object_weight < 0 or loss_weight < 0:
            raise ValueError(
                'gamma, no_object_weight and loss_weight must be >= 0, got '
                f'{gamma}, {no_object_weight}, {loss_weight}')
        self.alpha = alpha
        self.gamma = gamma
        self.no_object_weight = no_object_weight
        self.loss_weight = loss_weight

    def forward(self,
                cls_logits: Tensor,
                labels: Tensor,
                query_weights: Optional[Tensor] = None) -> Tensor:
        """Compute the loss.

        Args:
            cls_logits (Tensor): Class logits, shape (..., K), e.g. (N, Q, K).
            labels (Tensor): long, shape (...), e.g. (N, Q): the matched
                class in [0, K), or -1 / K (mmdet's background index) for an
                unmatched query.
            query_weights (Tensor, optional): Overrides ``w_q``, shape (...).

        Returns:
            Tensor: scalar loss, already multiplied by ``loss_weight``.
        """
        num_classes = cls_logits.size(-1)
        if labels.shape != cls_logits.shape[:-1]:
            raise ValueError(
                f'labels shape {tuple(labels.shape)} does not match '
                f'cls_logits shape {tuple(cls_logits.shape)}')
        if labels.numel() > 0 and (labels.min() < -1
                                   or labels.max() > num_classes):
            raise ValueError(
                f'labels must be in [-1, {num_classes}], got values in '
                f'[{int(labels.min())}, {int(labels.max())}]')
        label_shape = tuple(labels.shape)
        logits = cls_logits.float().reshape(-1, num_classes)
        labels = labels.reshape(-1)
        matched = (labels >= 0) & (labels < num_classes)
        targets = F.one_hot(labels.clamp(0, num_classes - 1), num_classes)
        targets = targets.to(logits) * matched[:, None].to(logits)

        focal = py_sigmoid_focal_loss(
            logits,
            targets,
            gamma=self.gamma,
            alpha=self.alpha,
            reduction='none').sum(-1)
        if query_weights is None:
            unmatched_weight = self.no_object_weight * (~matched).to(logits)
            weights = matched.to(logits) + unmatched_weight
        else:
            weights = query_weights.to(logits).reshape(-1)
            if weights.numel() != focal.numel():
                raise ValueError('query_weights must have the shape of '
                                 f'labels {label_shape}')
        loss = (focal * weights).sum() / weights.sum().clamp(min=1)
        return self.loss_weight * loss

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(alpha={self.alpha}, '
                f'gamma={self.gamma}, '
                f'no_object_weight={self.no_object_weight}, '
                f'loss_weight={self.loss_weight})')

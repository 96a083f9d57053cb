# Copyright (c) OpenMMLab. All rights reserved.
"""Distance-weighted focal loss on the query-selection score map (§2.6)."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor

__all__ = ['DistanceWeightedFocalLoss', 'select_uncertain_pixels']


@torch.no_grad()
def select_uncertain_pixels(probs: Tensor, onehot_targets: Tensor,
                            num_points: int) -> Tensor:
    """Indices of the most uncertain pixels of every map.

    Uncertainty ``u = Σ_k [K·(1−p)·y + p·(1−y)]`` (a missed positive counts
    K times a false positive); the top ``min(H·W, num_points)`` pixels of
    every map are returned (the grid point sampling of PointRend written as
    one top-k).

    Args:
        probs (Tensor): Sigmoid probabilities, shape (M, H, W, K).
        onehot_targets (Tensor): 0/1 targets, shape (M, H, W, K).
        num_points (int): Number of pixels to keep per map.

    Returns:
        Tensor: long, shape (M, min(H·W, num_points)), flat pixel indices.
    """
    num_maps, height, width, num_classes = probs.shape
    uncertainty = (num_classes * (1 - probs) * onehot_targets + probs *
                   (1 - onehot_targets)).sum(-1).view(num_maps, -1)
    num_keep = min(height * width, num_points)
    return uncertainty.topk(num_keep, dim=1).indices


@MODELS.register_module()
class DistanceWeightedFocalLoss(nn.Module):
    """Focal loss of the semantic score map with centre-distance weights.

    Part of MDQE's query initialisation: :class:`GridQuerySelection` calls
    it with its semantic map and the targets of :class:`ClipPeakAssigner`;
    any model that hosts the selection (``GridQueryDINO``,
    ``GridQueryMask2FormerTrackHead``) gets it that way.

    For every pixel/class: ``ℓ = BCE(x, y)·p_t^γ·γ_t^δ`` with
    ``p_t = (1−p)y + p(1−y)`` and ``γ_t = dist·y + (1−dist)(1−y)``, i.e.
    weight 1 on negatives and ``dist^δ`` on positives (``γ = δ = 2`` in the
    reference). Only the ``num_points`` most uncertain pixels of each map are
    used. The loss of a map is summed over points and classes and divided by
    the number of positive pixels among them (clamped to >= 1); maps are
    averaged and the result is multiplied by ``loss_weight``.

    Args:
        loss_weight (float): Defaults to 2.0.
        num_points (int): Pixels kept per map. Defaults to 12544.
        gamma (float): Exponent of ``p_t``. Defaults to 2.0.
        dist_power (float): Exponent of ``γ_t``. Defaults to 2.0.
    """

    def __init__(self,
                 loss_weight: float = 2.0,
                 num_points: int = 12544,
                 gamma: float = 2.0,
                 dist_power: float = 2.0) -> None:
        super().__init__()
        if loss_weight < 0:
            raise ValueError(f'loss_weight must be >= 0, got {loss_weight}')
        if int(num_points) != num_points or num_points < 1:
            raise ValueError(
                f'num_points must be a positive int, got {num_points}')
        if gamma < 0 or dist_power < 0:
            raise ValueError('gamma and dist_power must be >= 0, got '
                             f'{gamma}, {dist_power}')
        self.loss_weight = loss_weight
        self.num_points = int(num_points)
        self.gamma = gamma
        self.dist_power = dist_power

    def forward(self, sem_logits: Tensor, labels: Tensor,
                dist: Tensor) -> Tensor:
        """Compute the weighted loss.

        Args:
            sem_logits (Tensor): Score-map logits, shape (M, H0, W0, K)
                (M = N·T frames).
            labels (Tensor): long, shape (M, H0, W0), class id or -1 for
                background (``ClipPeakAssigner`` ``labels``).
            dist (Tensor): Distance targets in [0, 1], either shape
                (M, H0, W0) (the value of the labelled class, used on that
                channel only) or shape (M, H0, W0, K) per class (the
                ``ClipPeakAssigner`` ``class_dist``, exact also where a pixel
                was overwritten by an instance of another class).

        Returns:
            Tensor: scalar loss, already multiplied by ``loss_weight``.
        """
        if sem_logits.dim() != 4:
            raise ValueError('sem_logits must have shape (M, H0, W0, K), got'
                             f' {tuple(sem_logits.shape)}')
        num_maps, height, width, num_classes = sem_logits.shape
        if labels.shape != (num_maps, height, width):
            raise ValueError(
                f'labels must have shape {(num_maps, height, width)}, got '
                f'{tuple(labels.shape)}')
        if labels.numel() > 0 and (labels.min() < -1
                                   or labels.max() >= num_classes):
            raise ValueError(
                f'labels must be in [-1, {num_classes - 1}], got values in '
                f'[{int(labels.min())}, {int(labels.max())}]')
        if num_maps == 0:
            return sem_logits.sum() * 0

        logits = sem_logits.float()
        positive = labels >= 0
        onehot = F.one_hot(labels.clamp(min=0), num_classes).to(logits)
        onehot = onehot * positive[..., None].to(logits)
        if dist.shape == labels.shape:
            class_dist = dist.to(logits)[..., None] * onehot
        elif dist.shape == sem_logits.shape:
            class_dist = dist.to(logits)
        else:
            raise ValueError(
                f'dist must have shape {(num_maps, height, width)} or '
                f'{tuple(sem_logits.shape)}, got {tuple(dist.shape)}')

        point_inds = select_uncertain_pixels(logits.detach().sigmoid(), onehot,
                                             self.num_points)
        gather_inds = point_inds[..., None].expand(-1, -1, num_classes)

        def gather(x: Tensor) -> Tensor:
            return x.reshape(num_maps, -1, num_classes).gather(1, gather_inds)

        point_logits = gather(logits)
        point_targets = gather(onehot)
        point_dist = gather(class_dist)

        probs = point_logits.sigmoid()
        bce = F.binary_cross_entropy_with_logits(
            point_logits, point_targets, reduction='none')
        p_t = (1 - probs) * point_targets + probs * (1 - point_targets)
        gamma_t = (
            point_dist * point_targets + (1 - point_dist) *
            (1 - point_targets))
        loss = bce * p_t.pow(self.gamma) * gamma_t.pow(self.dist_power)

        num_pos = point_targets.amax(-1).sum(1).clamp(min=1)  # (M,)
        per_map = loss.sum(dim=(1, 2)) / num_pos
        return self.loss_weight * per_map.mean()

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(loss_weight={self.loss_weight}, '
                f'num_points={self.num_points}, gamma={self.gamma}, '
                f'dist_power={self.dist_power})')

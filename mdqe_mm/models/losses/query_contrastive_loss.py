# Copyright (c) OpenMMLab. All rights reserved.
"""Contrastive loss on the query embeddings used for association (§3)."""
import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor

__all__ = ['QueryContrastiveLoss', 'contrastive_candidate_area']

# Cap of Σ_n exp(e_n·a − e_p·a) inside the log (reference value).
_MAX_EXP_SUM = 1e3


def contrastive_candidate_area(anchor_frame: int, anchor_query: int,
                               num_frames: int, num_grid: int,
                               window: int) -> Tensor:
    """Queries near the anchor's grid cell, in every frame of the clip.

    Query q sits in grid cell ``(q mod num_grid, q div num_grid)``. In frame
    t a query is a candidate when its Chebyshev grid distance to the
    anchor's cell is at most ``window·(|t − anchor_frame| + 1)``.

    Args:
        anchor_frame (int): Frame of the anchor.
        anchor_query (int): Query (grid cell) index of the anchor.
        num_frames (int): T.
        num_grid (int): Cells per side (Q = num_grid²).
        window (int): Spatial window per frame of temporal distance.

    Returns:
        Tensor: bool, shape (T, Q).
    """
    cells = torch.arange(num_grid * num_grid)
    col_dist = (cells % num_grid - anchor_query % num_grid).abs()
    row_dist = (cells // num_grid - anchor_query // num_grid).abs()
    grid_dist = torch.maximum(col_dist, row_dist)  # (Q,)
    frame_gap = (torch.arange(num_frames) - anchor_frame).abs()
    return grid_dist[None, :] <= window * (frame_gap[:, None] + 1)


@MODELS.register_module()
class QueryContrastiveLoss(nn.Module):
    """Contrastive + auxiliary cosine loss on per-frame query embeddings.

    Part of MDQE's query initialisation, called by
    :class:`GridQuerySelection` with its (clip, frame, query) embeddings and
    grid-cell instance ids, in whatever model hosts the selection.

    For every GT instance of a clip the anchor ``a`` is its first query in
    (frame, query) order. Candidates are the queries inside a spatio-temporal
    grid window around the anchor (:func:`contrastive_candidate_area`, with
    ``w = max(window, 2)``); if all candidates belong to the instance the
    whole clip is used. Up to ``neg_per_frame·T`` negatives (other instance
    or background) and ``max(⌊n_neg/5⌋, 2)`` positives (same instance, the
    anchor included) are drawn at random. Then::

        L_ctt = mean_p log(1 + min(Σ_n exp(e_n·a − e_p·a), 1e3))
        L_aux = mean_{p,n} (cos(a, e) − label)²

    with un-normalised dot products in ``L_ctt``. Both are averaged over
    the instances of the batch.

    Random draws use ``torch.randperm`` on the CPU with the ``generator``
    passed to :meth:`forward`, or the global CPU RNG (seed it with
    ``torch.manual_seed``).

    Args:
        loss_weight_ctt (float): Defaults to 0.5.
        loss_weight_aux (float): Defaults to 0.5.
        window (int): Association window of training (5 OVIS/COCO, 7 YTVIS).
        num_grid (int): Query grid side (Q = num_grid²). Defaults to 14.
        neg_per_frame (int): Negatives per frame. Defaults to 50.
    """

    def __init__(self,
                 loss_weight_ctt: float = 0.5,
                 loss_weight_aux: float = 0.5,
                 window: int = 5,
                 num_grid: int = 14,
                 neg_per_frame: int = 50) -> None:
        super().__init__()
        if loss_weight_ctt < 0 or loss_weight_aux < 0:
            raise ValueError('loss weights must be >= 0, got '
                             f'{loss_weight_ctt}, {loss_weight_aux}')
        if window < 0 or num_grid < 1 or neg_per_frame < 0:
            raise ValueError(
                'window >= 0, num_grid >= 1 and neg_per_frame >= 0 required,'
                f' got {window}, {num_grid}, {neg_per_frame}')
        self.loss_weight_ctt = loss_weight_ctt
        self.loss_weight_aux = loss_weight_aux
        self.window = window
        self.num_grid = num_grid
        self.neg_per_frame = neg_per_frame

    def _instance_losses(
            self, embeds: Tensor, inst_ids: Tensor, anchor: int,
            generator: Optional[torch.Generator]) -> Tuple[Tensor, Tensor]:
        """Losses of one instance of one clip.

        Args:
            embeds (Tensor): shape (T, Q, E).
            inst_ids (Tensor): long, shape (T, Q).
            anchor (int): Flat (t·Q + q) index of the anchor.
            generator (torch.Generator, optional): RNG of the draws.

        Returns:
            tuple[Tensor, Tensor]: scalar ctt and aux losses.
        """
        num_frames, num_queries, _ = embeds.shape
        flat_ids = inst_ids.reshape(-1)
        flat_embeds = embeds.reshape(num_frames * num_queries, -1)
        inst_id = flat_ids[anchor]

        area = contrastive_candidate_area(anchor // num_queries,
                                          anchor % num_queries,
                                          num_frames, self.num_grid,
                                          max(self.window, 2)).reshape(-1)
        area = area.to(flat_ids.device)
        if (flat_ids[area] == inst_id).all():
            area = torch.ones_like(area)

        same = area & (flat_ids == inst_id)
        diff = area & (flat_ids != inst_id)
        pos_inds = same.nonzero().squeeze(1)
        neg_inds = diff.nonzero().squeeze(1)

        num_neg = min(neg_inds.numel(), self.neg_per_frame * num_frames)
        num_pos = max(num_neg // 5, 2)
        pos_order = torch.randperm(pos_inds.numel(), generator=generator)
        neg_order = torch.randperm(neg_inds.numel(), generator=generator)
        pos_inds = pos_inds[pos_order[:num_pos].to(pos_inds.device)]
        neg_inds = neg_inds[neg_order[:num_neg].to(neg_inds.device)]

        anchor_embed = flat_embeds[anchor]
        pos_embeds = flat_embeds[pos_inds]
        neg_embeds = flat_embeds[neg_inds]
        pos_sims = pos_embeds @ anchor_embed  # (n_pos,)
        neg_sims = neg_embeds @ anchor_embed  # (n_neg,)

        if num_neg == 0:
            loss_ctt = embeds.sum() * 0
        else:
            # log(1 + min(Σ exp(s_n − s_p), C)) through logsumexp, so a
            # large similarity gap cannot overflow exp (nor give NaN grads).
            log_sum = torch.logsumexp(
                neg_sims[:, None] - pos_sims[None, :], dim=0)
            log_sum = log_sum.clamp(max=math.log(_MAX_EXP_SUM))
            loss_ctt = F.softplus(log_sum).mean()

        sample_embeds = torch.cat([pos_embeds, neg_embeds])
        labels = torch.cat([
            pos_sims.new_ones(len(pos_inds)),
            neg_sims.new_zeros(len(neg_inds))
        ])
        unit_anchor = F.normalize(anchor_embed, dim=-1)
        cosine = F.normalize(sample_embeds, dim=-1) @ unit_anchor
        loss_aux = (cosine - labels).pow(2).mean()
        return loss_ctt, loss_aux

    def forward(
            self,
            embeds: Tensor,
            inst_ids: Tensor,
            generator: Optional[torch.Generator] = None) -> Dict[str, Tensor]:
        """Compute the losses.

        Args:
            embeds (Tensor): Query embeddings before association, shape
                (N, T, Q, E).
            inst_ids (Tensor): long, shape (N, T, Q): GT instance index of
                every query (read from the ClipPeakAssigner id map), -1 for
                background.
            generator (torch.Generator, optional): CPU RNG of the random
                draws; None uses the global CPU RNG.

        Returns:
            dict[str, Tensor]: ``loss_reid_ctt`` and ``loss_reid_aux``,
            already multiplied by their loss weights (0 when the batch has
            no instance).
        """
        if embeds.dim() != 4:
            raise ValueError('embeds must have shape (N, T, Q, E), got '
                             f'{tuple(embeds.shape)}')
        if inst_ids.shape != embeds.shape[:3]:
            raise ValueError(
                f'inst_ids shape {tuple(inst_ids.shape)} does not match '
                f'embeds shape {tuple(embeds.shape)}')
        num_queries = embeds.size(2)
        if num_queries != self.num_grid * self.num_grid:
            raise ValueError(
                f'{num_queries} queries do not form a {self.num_grid}x'
                f'{self.num_grid} grid')
        embeds = embeds.float()
        losses_ctt, losses_aux = [], []
        for clip_embeds, clip_ids in zip(embeds, inst_ids):
            flat_ids = clip_ids.reshape(-1)
            for inst_id in flat_ids[flat_ids >= 0].unique().tolist():
                anchor = int((flat_ids == inst_id).nonzero()[0, 0])
                loss_ctt, loss_aux = self._instance_losses(
                    clip_embeds, clip_ids, anchor, generator)
                losses_ctt.append(loss_ctt)
                losses_aux.append(loss_aux)

        if len(losses_ctt) == 0:
            zero = embeds.sum() * 0
            loss_ctt, loss_aux = zero, zero.clone()
        else:
            loss_ctt = torch.stack(losses_ctt).mean()
            loss_aux = torch.stack(losses_aux).mean()
        return dict(
            loss_reid_ctt=self.loss_weight_ctt * loss_ctt,
            loss_reid_aux=self.loss_weight_aux * loss_aux)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'loss_weight_ctt={self.loss_weight_ctt}, '
                f'loss_weight_aux={self.loss_weight_aux}, '
                f'window={self.window}, num_grid={self.num_grid}, '
                f'neg_per_frame={self.neg_per_frame})')

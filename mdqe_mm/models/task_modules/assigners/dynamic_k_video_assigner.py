# Copyright (c) OpenMMLab. All rights reserved.
"""One-to-many (dynamic-k) assignment of clip queries to GT tracks (§4.1)."""
from typing import Optional, Tuple

import torch
from mmdet.models.task_modules.assigners import (AssignResult, BaseAssigner,
                                                 CrossEntropyLossCost,
                                                 DiceCost)
from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import bbox_overlaps, bbox_xyxy_to_cxcywh
from mmengine.structures import InstanceData
from scipy.optimize import linear_sum_assignment
from torch import Tensor

__all__ = [
    'DynamicKVideoAssigner', 'video_giou_matrix', 'in_box_prior',
    'dynamic_k_matching'
]

# Added to the cost of already matched queries while unmatched GTs pick.
_MATCHED_PENALTY = 1e5
# Replacement of NaN / inf costs.
_INVALID_COST = 1000.


def video_giou_matrix(pred_boxes: Tensor, gt_boxes: Tensor,
                      gt_valid: Tensor) -> Tensor:
    """Per-frame GIoU averaged over the valid frames of each GT.

    The GIoU of a frame is 0 where the two boxes do not intersect, and
    unions / enclosing areas are clamped to >= 1e-3 (reference values).

    Args:
        pred_boxes (Tensor): normalised xyxy, shape (Q, T, 4).
        gt_boxes (Tensor): normalised xyxy, shape (G, T, 4).
        gt_valid (Tensor): bool, shape (G, T).

    Returns:
        Tensor: vGIoU, shape (Q, G).
    """
    preds = pred_boxes.float().transpose(0, 1)  # (T, Q, 4)
    gts = gt_boxes.float().transpose(0, 1)  # (T, G, 4)
    ious = bbox_overlaps(preds, gts, mode='iou', eps=1e-3)
    gious = bbox_overlaps(preds, gts, mode='giou', eps=1e-3)
    gious = torch.where(ious > 0, gious, torch.zeros_like(gious))
    gious = gious * gt_valid.t()[:, None, :].to(gious)  # (T, Q, G)
    num_valid = gt_valid.float().sum(-1).clamp(min=1)  # (G,)
    return gious.sum(0) / num_valid[None, :]


def in_box_prior(pred_boxes: Tensor,
                 gt_boxes: Tensor,
                 center_radius: float = 2.5 / 32) -> Tensor:
    """Whether each query's per-frame box centre lies near some GT.

    True in frame t when the predicted centre is strictly inside the box of
    any GT in that frame, or strictly within ``center_radius`` (in both x and
    y) of any GT box centre. Absent GT frames (zero boxes) take part as in
    the reference: their "centre" is the origin.

    Args:
        pred_boxes (Tensor): normalised xyxy, shape (Q, T, 4).
        gt_boxes (Tensor): normalised xyxy, shape (G, T, 4).
        center_radius (float): Normalised radius of the centre region.

    Returns:
        Tensor: bool, shape (Q, T).
    """
    pred_centres = bbox_xyxy_to_cxcywh(pred_boxes.float())[..., None, :, :2]
    gt_boxes = gt_boxes.float()[None]  # (1, G, T, 4)
    gt_centres = bbox_xyxy_to_cxcywh(gt_boxes)[..., :2]
    in_boxes = ((pred_centres > gt_boxes[..., :2]) &
                (pred_centres < gt_boxes[..., 2:])).all(-1)  # (Q, G, T)
    in_centres = ((pred_centres > gt_centres - center_radius) &
                  (pred_centres < gt_centres + center_radius)).all(-1)
    return (in_boxes | in_centres).any(dim=1)


def dynamic_k_matching(cost: Tensor,
                       ious: Tensor,
                       num_candidates: int = 10,
                       min_k: int = 2) -> Tuple[Tensor, Tensor]:
    """IDOL/OTA-style dynamic-k assignment on a cost matrix.

    1. Each GT g takes its ``k_g = max(int(Σ top-num_candidates of
       clamp(ious[:, g], 0)), min_k)`` lowest-cost queries.
    2. A query taken by several GTs keeps only the lowest-cost GT of its
       whole cost row (as in the reference, this can be a GT that did not
       take it in step 1).
    3. While some GT has no query and some query is free: matched queries
       get a large penalty, every GT without a query takes its lowest-cost
       query, and conflicts are resolved as in 2.

    Args:
        cost (Tensor): shape (Q, G), lower is better.
        ious (Tensor): shape (Q, G), quality used to size k.
        num_candidates (int): Top-n qualities summed per GT.
        min_k (int): Minimum k.

    Returns:
        tuple[Tensor, Tensor]: long ``query_inds`` (ascending) and their
        ``gt_inds``, each of shape (num_matched,).
    """
    num_queries, num_gts = cost.shape
    device = cost.device
    if num_gts == 0 or num_queries == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty.clone()
    cost = cost.clone()
    ious = ious.clamp(min=0)
    matching = torch.zeros_like(cost, dtype=torch.bool)

    top_ious = ious.topk(min(num_candidates, num_queries), dim=0).values
    dynamic_ks = top_ious.sum(0).int().clamp(min=min_k, max=num_queries)
    for gt_ind in range(num_gts):
        query_inds = cost[:, gt_ind].topk(
            int(dynamic_ks[gt_ind]), largest=False).indices
        matching[query_inds, gt_ind] = True

    def keep_cheapest_gt() -> None:
        shared = matching.sum(1) > 1
        if shared.any():
            cheapest = cost[shared].argmin(dim=1)
            matching[shared] = False
            matching[shared.nonzero().squeeze(1), cheapest] = True

    keep_cheapest_gt()
    # Every round matches at least one more query, so Q rounds suffice.
    for _ in range(num_queries):
        lonely_gts = (matching.sum(0) == 0).nonzero().squeeze(1)
        if lonely_gts.numel() == 0 or (matching.sum(1) > 0).all():
            break
        cost[matching.any(1)] += _MATCHED_PENALTY
        for gt_ind in lonely_gts.tolist():
            matching[cost[:, gt_ind].argmin(), gt_ind] = True
        keep_cheapest_gt()

    query_inds = matching.any(1).nonzero().squeeze(1)
    gt_inds = matching[query_inds].float().argmax(1)
    return query_inds, gt_inds


@TASK_UTILS.register_module()
class DynamicKVideoAssigner(BaseAssigner):
    """One-to-many assignment of clip queries to GT tracks (MDQE/IDOL).

    MDQE-internal: called by :class:`MDQEHead` with clip-level predictions
    (per-frame boxes and stride-4 clip masks), not through mmdet's
    ``assign(pred_instances, gt_instances)`` convention of image heads.

    Cost of query q and GT g over the clip::

        C = w_cls·(−σ(s_q)[label_g])
            + w_box·(L1(flatten_T(box_q), flatten_T(box_g)) + 1 − vGIoU)
            + w_mask·(BCE + Dice)(mask_q, mask_g)

    with the L1 over all T×4 coordinates (zeros of absent GT frames
    included), vGIoU from :func:`video_giou_matrix` and the mask costs over
    all T frames against the soft targets. NaN/inf costs become 1000, and
    ``out_of_box_cost`` is added per frame where the query's centre is not
    near any GT (:func:`in_box_prior`). Queries are then assigned with
    :func:`dynamic_k_matching`. If any predicted box is NaN, the box terms
    are dropped and a plain Hungarian (one-to-one) matching is used.

    Args:
        cls_cost_weight (float): Defaults to 1.0.
        box_cost_weight (float): Defaults to 2.0 (``BOX_WEIGHT``).
        mask_cost_weight (float): Defaults to 4.0 (``DICE_WEIGHT``).
        center_radius (float): Normalised radius of the centre prior.
            Defaults to 2.5/32.
        out_of_box_cost (float): Per-frame penalty. Defaults to 100.
        num_candidates (int): Top-n vGIoUs that size k. Defaults to 10.
        min_k (int): Minimum queries per GT. Defaults to 2.
    """

    def __init__(self,
                 cls_cost_weight: float = 1.0,
                 box_cost_weight: float = 2.0,
                 mask_cost_weight: float = 4.0,
                 center_radius: float = 2.5 / 32,
                 out_of_box_cost: float = 100.0,
                 num_candidates: int = 10,
                 min_k: int = 2) -> None:
        if min(cls_cost_weight, box_cost_weight, mask_cost_weight) < 0:
            raise ValueError('cost weights must be >= 0')
        if center_radius < 0 or out_of_box_cost < 0:
            raise ValueError('center_radius and out_of_box_cost must be >= 0')
        if num_candidates < 1 or min_k < 1:
            raise ValueError('num_candidates and min_k must be >= 1, got '
                             f'{num_candidates}, {min_k}')
        self.cls_cost_weight = cls_cost_weight
        self.box_cost_weight = box_cost_weight
        self.mask_cost_weight = mask_cost_weight
        self.center_radius = center_radius
        self.out_of_box_cost = out_of_box_cost
        self.num_candidates = int(num_candidates)
        self.min_k = int(min_k)
        self.bce_cost = CrossEntropyLossCost(use_sigmoid=True)
        self.dice_cost = DiceCost(pred_act=True, eps=1.0, naive_dice=True)

    def _check_inputs(self, pred_instances: InstanceData,
                      gt_instances: InstanceData) -> None:
        """Raise a clear error on inconsistent shapes."""
        for key in ('scores', 'boxes', 'masks'):
            if key not in pred_instances:
                raise KeyError(f'pred_instances needs "{key}"')
        for key in ('labels', 'boxes', 'masks'):
            if key not in gt_instances:
                raise KeyError(f'gt_instances needs "{key}"')
        num_queries, num_frames = pred_instances.boxes.shape[:2]
        num_gts = len(gt_instances.labels)
        if pred_instances.boxes.shape != (num_queries, num_frames, 4):
            raise ValueError('pred boxes must have shape (Q, T, 4), got '
                             f'{tuple(pred_instances.boxes.shape)}')
        if gt_instances.boxes.shape != (num_gts, num_frames, 4):
            raise ValueError(
                f'gt boxes must have shape ({num_gts}, {num_frames}, 4), got'
                f' {tuple(gt_instances.boxes.shape)}')
        pred_masks, gt_masks = pred_instances.masks, gt_instances.masks
        if pred_masks.shape[:2] != (num_queries, num_frames) or \
                gt_masks.shape[:2] != (num_gts, num_frames) or \
                pred_masks.shape[2:] != gt_masks.shape[2:]:
            raise ValueError(
                'pred masks (Q, T, h, w) and gt masks (G, T, h, w) disagree:'
                f' {tuple(pred_masks.shape)} vs {tuple(gt_masks.shape)}')
        if pred_instances.scores.size(0) != num_queries:
            raise ValueError('pred scores must have shape (Q, K)')

    @torch.no_grad()
    def compute_cost(
            self, pred_instances: InstanceData,
            gt_instances: InstanceData) -> Tuple[Tensor, Optional[Tensor]]:
        """Matching cost of every (query, GT) pair, priors included.

        Args:
            pred_instances (InstanceData): See :meth:`assign`.
            gt_instances (InstanceData): See :meth:`assign`.

        Returns:
            tuple[Tensor, Tensor | None]: ``cost`` (Q, G) (NaN/inf replaced,
            out-of-box penalty added) and ``vgiou`` (Q, G), or ``None`` for
            ``vgiou`` when a predicted box is NaN (the cost then has no box
            terms and no prior).
        """
        scores = pred_instances.scores.float()
        pred_boxes = pred_instances.boxes.float()
        gt_labels = gt_instances.labels.long()
        gt_boxes = gt_instances.boxes.float()

        cls_cost = -scores.sigmoid()[:, gt_labels]
        mask_preds = InstanceData(masks=pred_instances.masks.float())
        mask_gts = InstanceData(masks=gt_instances.masks.float())
        mask_cost = self.bce_cost(mask_preds, mask_gts) + \
            self.dice_cost(mask_preds, mask_gts)
        cost = self.cls_cost_weight * cls_cost + \
            self.mask_cost_weight * mask_cost

        if torch.isnan(pred_boxes).any():
            cost = torch.where(
                torch.isfinite(cost), cost,
                torch.full_like(cost, _INVALID_COST))
            return cost, None

        gt_valid = ((gt_boxes[..., 2:] - gt_boxes[..., :2]) > 0).all(-1)
        if 'valid' in gt_instances:
            gt_valid &= gt_instances.valid.bool()
        vgiou = video_giou_matrix(pred_boxes, gt_boxes, gt_valid)
        l1_cost = torch.cdist(pred_boxes.flatten(1), gt_boxes.flatten(1), p=1)
        cost = cost + self.box_cost_weight * (l1_cost + 1 - vgiou)
        cost = torch.where(
            torch.isfinite(cost), cost, torch.full_like(cost, _INVALID_COST))
        not_in_box = ~in_box_prior(pred_boxes, gt_boxes, self.center_radius)
        cost = cost + self.out_of_box_cost * not_in_box.sum(
            -1, keepdim=True).to(cost)
        return cost, vgiou

    @torch.no_grad()
    def assign(self,
               pred_instances: InstanceData,
               gt_instances: InstanceData,
               gt_instances_ignore: Optional[InstanceData] = None,
               **kwargs) -> AssignResult:
        """Assign the Q clip queries of one clip to its G GT tracks.

        Args:
            pred_instances (InstanceData): ``scores`` (Q, K) class logits,
                ``boxes`` (Q, T, 4) normalised xyxy, ``masks`` (Q, T, h, w)
                mask logits.
            gt_instances (InstanceData): ``labels`` (G,), ``boxes``
                (G, T, 4) normalised xyxy with zeros where absent, ``masks``
                (G, T, h, w) soft targets and optionally ``valid`` (G, T)
                bool. A frame counts as valid for vGIoU when it is ``valid``
                (if given) and its box has positive width and height.
            gt_instances_ignore: Unused.

        Returns:
            :obj:`AssignResult`: ``gt_inds`` (Q,) 0 = unassigned else the
            1-based GT index, ``labels`` (Q,) -1 if unassigned,
            ``max_overlaps`` (Q,) vGIoU with the assigned GT (0 otherwise).
        """
        self._check_inputs(pred_instances, gt_instances)
        gt_labels = gt_instances.labels.long()
        num_queries, num_gts = len(pred_instances.scores), gt_labels.numel()
        device = pred_instances.scores.device

        assigned_gt_inds = torch.zeros(
            num_queries, dtype=torch.long, device=device)
        assigned_labels = torch.full_like(assigned_gt_inds, -1)
        max_overlaps = torch.zeros(num_queries, device=device)
        if num_gts == 0 or num_queries == 0:
            return AssignResult(num_gts, assigned_gt_inds, max_overlaps,
                                assigned_labels)

        cost, vgiou = self.compute_cost(pred_instances, gt_instances)
        if vgiou is not None:
            query_inds, gt_inds = dynamic_k_matching(cost, vgiou,
                                                     self.num_candidates,
                                                     self.min_k)
            max_overlaps[query_inds] = vgiou[query_inds, gt_inds]
        else:
            rows, cols = linear_sum_assignment(cost.cpu().numpy())
            query_inds = torch.as_tensor(rows, dtype=torch.long).to(device)
            gt_inds = torch.as_tensor(cols, dtype=torch.long).to(device)

        assigned_gt_inds[query_inds] = gt_inds + 1
        assigned_labels[query_inds] = gt_labels[gt_inds]
        return AssignResult(num_gts, assigned_gt_inds, max_overlaps,
                            assigned_labels)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'cls_cost_weight={self.cls_cost_weight}, '
                f'box_cost_weight={self.box_cost_weight}, '
                f'mask_cost_weight={self.mask_cost_weight}, '
                f'center_radius={self.center_radius}, '
                f'out_of_box_cost={self.out_of_box_cost}, '
                f'num_candidates={self.num_candidates}, '
                f'min_k={self.min_k})')

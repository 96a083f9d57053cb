# Copyright (c) OpenMMLab. All rights reserved.
"""Per-clip post-processing of MDQE predictions (MDQE_SPEC §5, steps 1-6).

Every step is a pure function over tensors of one clip so that it can be
tested on its own; :func:`postprocess_clip` chains them in the order of the
reference ``inference_clip``. Shapes: Q queries, K classes, T frames of the
clip, (h, w) the stride-4 mask size, C the clip-query channels.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData
from torch import Tensor


def select_by_score(cls_probs: Tensor, score_thr: float) -> Tensor:
    """Step 1: rank queries by their top class probability and keep the
    confident ones.

    A query is kept when its top probability is ``>= min(score_thr, top
    score of the clip)``, so at least one query always survives.

    Args:
        cls_probs (Tensor): Sigmoid class probabilities, shape (Q, K).
        score_thr (float): ``APPLY_CLS_THRES``.

    Returns:
        Tensor: Indices of the kept queries, shape (D,), ordered by
        decreasing top probability.
    """
    if cls_probs.numel() == 0:
        return cls_probs.new_zeros((0, ), dtype=torch.long)
    top_scores = cls_probs.max(dim=-1)[0]
    sorted_scores, order = top_scores.sort(descending=True)
    thr = min(score_thr, sorted_scores[0].item())
    return order[sorted_scores >= thr]


def dedup_by_query_similarity(embeds: Tensor,
                              sim_thr: float = 0.99,
                              max_keep: int = 100) -> Tensor:
    """Step 2: drop queries that repeat a higher-ranked clip query.

    A query is dropped when its cosine similarity with ANY higher-ranked
    query (kept or not, as in the reference) is ``>= sim_thr``. At most
    ``max_keep`` (``10 * DETECTIONS_PER_IMAGE``) survivors are kept.

    Args:
        embeds (Tensor): Clip queries in rank order, shape (D, C).
        sim_thr (float): Cosine-similarity threshold. Defaults to 0.99.
        max_keep (int): Maximum number of kept queries. Defaults to 100.

    Returns:
        Tensor: Kept positions into ``embeds`` (ascending), shape (D',).
    """
    num = embeds.shape[0]
    if num == 0:
        return embeds.new_zeros((0, ), dtype=torch.long)
    unit = F.normalize(embeds.float(), dim=-1)
    sim = unit @ unit.t()
    # Only pairs (higher-ranked i, lower-ranked j) with i < j count.
    sim = torch.triu(sim, diagonal=1)
    max_sim_with_higher = sim.max(dim=0)[0]
    keep = torch.nonzero(max_sim_with_higher < sim_thr).flatten()
    return keep[:max_keep]


def remove_empty_masks(mask_logits: Tensor) -> Tensor:
    """Step 3: keep the queries whose mask has at least one logit > 0.

    Args:
        mask_logits (Tensor): Mask logits, shape (D, T, h, w).

    Returns:
        Tensor: Boolean keep flags, shape (D,).
    """
    if mask_logits.shape[0] == 0 or mask_logits[0].numel() == 0:
        return (mask_logits > 0).flatten(1).any(dim=1)
    # "some logit > 0" is "the largest logit > 0"; one pass, no bool copy
    return mask_logits.flatten(1).amax(dim=1) > 0


def soft_mask_nms(cls_probs: Tensor,
                  mask_logits: Tensor,
                  iou_thr: float = 0.5,
                  min_frames_to_skip: int = 5,
                  smooth: float = 1.0) -> Tuple[Tensor, Tensor]:
    """Step 4: soft mask-NMS between queries given in rank order.

    The masks are first thinned for speed: every second frame when the clip
    has ``>= min_frames_to_skip`` frames, then a 0.5x nearest downsampling
    (``F.interpolate(scale_factor=0.5)``, i.e. rows/cols 0, 2, 4, ...). For a
    higher-ranked query i and a lower-ranked query j the soft IoU is
    ``<p_i, b_j> / (sum p_i + sum b_j - <p_i, b_j> + smooth)`` with
    ``p = sigmoid(m)`` and ``b = (p > 0.5)``; this is the orientation of
    the reference code (soft mask of the higher-ranked query against the
    binarised mask of the query being suppressed). Each query's class
    probabilities are scaled by ``1 - max_i IoU(i, j)`` over all higher-ranked
    i, and the queries with ``max IoU >= iou_thr`` are removed.

    Args:
        cls_probs (Tensor): Class probabilities, shape (D, K).
        mask_logits (Tensor): Mask logits, shape (D, T, h, w).
        iou_thr (float): Removal threshold. Defaults to 0.5.
        min_frames_to_skip (int): Clips with at least this many frames use
            every second frame. Defaults to 5.
        smooth (float): Added to the denominator. Defaults to 1.0.

    Returns:
        tuple[Tensor, Tensor]: The rescaled class probabilities, shape
        (D, K), and boolean keep flags, shape (D,).
    """
    num = mask_logits.shape[0]
    if num == 0:
        return cls_probs, cls_probs.new_zeros((0, ), dtype=torch.bool)
    masks = mask_logits.float()
    if masks.shape[1] >= min_frames_to_skip:
        masks = masks[:, ::2]
    # 0.5x nearest == every second row / column from the first, cut to
    # floor(size / 2) (a view instead of a resampling kernel)
    height, width = masks.shape[-2:]
    masks = masks[..., :height // 2 * 2:2, :width // 2 * 2:2]
    soft = masks.sigmoid().flatten(1)
    hard = (soft > 0.5).float()
    inter = soft @ hard.t()
    union = soft.sum(-1)[:, None] + hard.sum(-1)[None, :] - inter
    soft_iou = torch.triu(inter / (union + smooth), diagonal=1)
    max_iou = soft_iou.max(dim=0)[0]
    rescaled = cls_probs * (1 - max_iou[:, None]).to(cls_probs.dtype)
    return rescaled, max_iou < iou_thr


def mask_quality_scores(mask_logits: Tensor,
                        mask_thr: float = 0.5,
                        eps: float = 1e-6) -> Tensor:
    """Step 5: mean foreground probability of each mask.

    Args:
        mask_logits (Tensor): Mask logits, shape (D, T, h, w).
        mask_thr (float): Foreground threshold on sigmoid probabilities.
            Defaults to 0.5.
        eps (float): Added to the foreground pixel count. Defaults to 1e-6.

    Returns:
        Tensor: ``mean(sigmoid(m) over sigmoid(m) > mask_thr)``, shape (D,).
    """
    soft = mask_logits.float().sigmoid().flatten(1)
    hard = soft > mask_thr
    # the same sums as (soft * hard).sum and hard.sum, without the products
    foreground = torch.where(hard, soft, soft.new_zeros(())).sum(1)
    return foreground / (hard.sum(1).to(soft.dtype) + eps)


def select_top_scores(cls_probs: Tensor, score_thr: float) -> Tensor:
    """Step 6: keep the detections whose top score is above ``score_thr``
    (at least one), best first.

    Args:
        cls_probs (Tensor): Rescored class probabilities, shape (D, K).
        score_thr (float): ``APPLY_CLS_THRES``.

    Returns:
        Tensor: Kept indices, shape (D',), by decreasing top score.
    """
    if cls_probs.shape[0] == 0:
        return cls_probs.new_zeros((0, ), dtype=torch.long)
    scores = cls_probs.max(dim=-1)[0]
    order = scores.sort(descending=True)[1]
    num_keep = max(int((scores > score_thr).sum()), 1)
    return order[:num_keep]


def postprocess_clip(cls_probs: Tensor,
                     mask_logits: Tensor,
                     clip_embeds: Tensor,
                     score_thr: float = 0.1,
                     max_dets: int = 10,
                     query_sim_thr: float = 0.99,
                     nms_iou_thr: float = 0.5,
                     nms_min_frames_to_skip: int = 5,
                     mask_thr: float = 0.5) -> InstanceData:
    """Run steps 1-6 of MDQE_SPEC §5 on the raw predictions of one clip.

    Args:
        cls_probs (Tensor): Sigmoid class probabilities, shape (Q, K).
        mask_logits (Tensor): Stride-4 mask logits, shape (Q, T, h, w).
        clip_embeds (Tensor): Raw last-layer clip queries, shape (Q, C).
        score_thr (float): ``APPLY_CLS_THRES``. Defaults to 0.1.
        max_dets (int): ``DETECTIONS_PER_IMAGE``; the query deduplication
            keeps at most ``10 * max_dets``. Defaults to 10.
        query_sim_thr (float): Cosine threshold of step 2. Defaults to 0.99.
        nms_iou_thr (float): Removal threshold of step 4. Defaults to 0.5.
        nms_min_frames_to_skip (int): Clip length from which step 4 uses
            every second frame. Defaults to 5.
        mask_thr (float): Foreground threshold of step 5. Defaults to 0.5.

    Returns:
        :obj:`InstanceData`: D detections, best first, with ``scores``
        (D,), ``labels`` (D,), ``cls_probs`` (D, K) rescored,
        ``mask_logits`` (D, T, h, w), ``embeds`` (D, C) and ``query_inds``
        (D,) (indices into the Q input queries).
    """
    if cls_probs.dim() != 2 or mask_logits.dim() != 4 or \
            clip_embeds.dim() != 2:
        raise ValueError(
            'postprocess_clip expects cls_probs (Q, K), mask_logits '
            f'(Q, T, h, w) and clip_embeds (Q, C), got '
            f'{tuple(cls_probs.shape)}, {tuple(mask_logits.shape)} and '
            f'{tuple(clip_embeds.shape)}')
    num_queries = cls_probs.shape[0]
    if mask_logits.shape[0] != num_queries or \
            clip_embeds.shape[0] != num_queries:
        raise ValueError(
            'postprocess_clip: cls_probs, mask_logits and clip_embeds '
            f'disagree on the number of queries ({num_queries}, '
            f'{mask_logits.shape[0]}, {clip_embeds.shape[0]})')

    inds = select_by_score(cls_probs, score_thr)
    inds = inds[dedup_by_query_similarity(
        clip_embeds[inds], query_sim_thr, max_keep=10 * max_dets)]
    masks = mask_logits[inds]
    nonempty = remove_empty_masks(masks)
    inds, masks = inds[nonempty], masks[nonempty]

    probs = cls_probs[inds].float()
    probs, keep = soft_mask_nms(
        probs,
        masks,
        iou_thr=nms_iou_thr,
        min_frames_to_skip=nms_min_frames_to_skip)
    inds, probs, masks = inds[keep], probs[keep], masks[keep]

    probs = probs * mask_quality_scores(masks, mask_thr)[:, None]
    top = select_top_scores(probs, score_thr)
    inds, probs, masks = inds[top], probs[top], masks[top]
    if probs.shape[0] > 0:
        scores, labels = probs.max(dim=-1)
    else:
        scores = probs.new_zeros((0, ))
        labels = probs.new_zeros((0, ), dtype=torch.long)

    results = InstanceData()
    results.scores = scores
    results.labels = labels
    results.cls_probs = probs
    results.mask_logits = masks
    results.embeds = clip_embeds[inds]
    results.query_inds = inds
    return results

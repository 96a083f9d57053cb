# Copyright (c) OpenMMLab. All rights reserved.
"""The masked-attention decoder loop of mmdet's ``Mask2FormerTrackHead``,
from queries and keys given by the caller."""
from typing import List, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ['run_mask2former_track_decoder']


def run_mask2former_track_decoder(
        head,
        query_feat: Tensor,
        query_embed: Tensor,
        keys: Sequence[Tensor],
        key_pos: Sequence[Tensor],
        level_sizes: Sequence[Tuple[int, int]],
        mask_features: Tensor,
        all_steps: bool = True) -> Tuple[List[Tensor], List[Tensor], Tensor]:
    """``Mask2FormerTrackHead.forward`` after its pixel decoder and queries.

    For heads that make their own queries (``GridQueryMask2FormerTrackHead``)
    or their own batches of clips (``NearOnlineMask2FormerVideo``): the
    stock head's decoder layers, masked attention and prediction heads
    (``head._forward_head``), in the stock order.

    Args:
        head (Mask2FormerTrackHead): The head whose layers run.
        query_feat (Tensor): initial query contents, shape (B, Q, C).
        query_embed (Tensor): query positions, shape (B, Q, C).
        keys (Sequence[Tensor]): per level, the projected features with the
            level embedding, shape (B, T * h_l * w_l, C).
        key_pos (Sequence[Tensor]): per level, their positional encodings,
            same shapes.
        level_sizes (Sequence[tuple[int, int]]): (h_l, w_l) per level.
        mask_features (Tensor): shape (B, T, C, H/4, W/4).
        all_steps (bool): Return the predictions of every step (training);
            False keeps only the last (inference, less memory).

    Returns:
        tuple: class logits (B, Q, K + 1) and mask logits (B, Q, T, H/4,
        W/4) of every step (or of the last one), and the last queries
        (B, Q, C) before the decoder's post-norm.
    """
    num_levels = head.num_transformer_feat_level
    cls_pred, mask_pred, attn_mask = head._forward_head(
        query_feat, mask_features, level_sizes[0])
    cls_preds, mask_preds = [cls_pred], [mask_pred]
    for i in range(head.num_transformer_decoder_layers):
        level = i % num_levels
        # a query whose mask hides every key attends to all of them
        attn_mask[torch.where(
            attn_mask.sum(-1) == attn_mask.shape[-1])] = False
        query_feat = head.transformer_decoder.layers[i](
            query=query_feat,
            key=keys[level],
            value=keys[level],
            query_pos=query_embed,
            key_pos=key_pos[level],
            cross_attn_mask=attn_mask,
            query_key_padding_mask=None,
            key_padding_mask=None)
        cls_pred, mask_pred, attn_mask = head._forward_head(
            query_feat, mask_features, level_sizes[(i + 1) % num_levels])
        if all_steps:
            cls_preds.append(cls_pred)
            mask_preds.append(mask_pred)
        else:
            cls_preds, mask_preds = [cls_pred], [mask_pred]
    return cls_preds, mask_preds, query_feat

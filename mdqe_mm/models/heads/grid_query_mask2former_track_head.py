# Copyright (c) OpenMMLab. All rights reserved.
from collections import defaultdict
from typing import Dict, List, Tuple

import torch
from mmdet.models.tracking_heads import Mask2FormerTrackHead
from mmdet.registry import MODELS
from mmdet.structures import TrackDataSample, TrackSampleList
from mmdet.utils import ConfigType
from torch import Tensor

from ..necks.query_selection import level_start_index
from .mask2former_decoding import run_mask2former_track_decoder

__all__ = ['GridQueryMask2FormerTrackHead']


@MODELS.register_module()
class GridQueryMask2FormerTrackHead(Mask2FormerTrackHead):
    """Mask2FormerVideo's head with MDQE's grid-guided, frame-associated
    query initialisation.

    Stock Mask2FormerVideo starts its decoder from ``num_queries`` learned
    content embeddings (``query_feat``), the same for every video. Here a
    :class:`GridQuerySelection` runs on the pixel decoder's multi-scale
    features of every frame (flattened as one multi-level memory, its
    semantic map on the finest, stride-8 level): one objectness peak per
    cell of a ``g x g`` grid (``num_queries = g * g``), the grid-sampled
    features as contents, associated across the frames of the clip to the
    centre frame's queries. The content of video query k is the mean over
    frames of its associated per-frame contents. The learned positional
    embeddings (``query_embed``) stay: query k always comes from grid cell
    k, so they act as per-cell position embeddings. The rest (decoder,
    masks, matching, losses, inference) is the stock head's; the
    selection's losses (``loss_sem``, ``loss_reid_ctt``, ``loss_reid_aux``)
    are added, with targets from the ground-truth masks.

    Args:
        query_selection (dict): Config of the ``GridQuerySelection``;
            ``num_queries``, ``embed_dims`` (``feat_channels``),
            ``num_classes`` and ``sem_level`` (the stride-8 level) default
            to the head's.
        *args, **kwargs: Those of mmdet's ``Mask2FormerTrackHead``.
    """

    def __init__(self,
                 *args,
                 query_selection: ConfigType = dict(type='GridQuerySelection'),
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        selection = dict(query_selection)
        selection.setdefault('num_queries', self.num_queries)
        selection.setdefault('embed_dims', self.query_feat.embedding_dim)
        selection.setdefault('num_classes', self.num_classes)
        # the pixel decoder's memories run from low to high resolution
        selection.setdefault('sem_level', self.num_transformer_feat_level - 1)
        if selection['num_queries'] != self.num_queries:
            raise ValueError(
                'GridQueryMask2FormerTrackHead: query_selection.num_queries '
                f'({selection["num_queries"]}) must equal num_queries '
                f'({self.num_queries})')
        self.query_selection = MODELS.build(selection)
        # contents come from the selection instead
        del self.query_feat

    def init_weights(self) -> None:
        super().init_weights()
        self.query_selection.init_weights()

    def select_queries(self, multi_scale_memorys: List[Tensor],
                       batch_size: int) -> Tuple[Tensor, dict]:
        """Grid-selected, associated video queries.

        Args:
            multi_scale_memorys (list[Tensor]): pixel-decoder features, low
                to high resolution, each of shape (B * T, C, H_l, W_l).
            batch_size (int): B.

        Returns:
            tuple[Tensor, dict]: contents of shape (B, Q, C) and the
            selection's outputs (:meth:`GridQuerySelection.forward`).
        """
        memory = torch.cat([
            level.flatten(2).transpose(1, 2) for level in multi_scale_memorys
        ],
                           dim=1)
        level_shapes = [tuple(m.shape[-2:]) for m in multi_scale_memorys]
        spatial_shapes = torch.tensor(
            level_shapes, dtype=torch.long, device=memory.device)
        num_frames = memory.shape[0] // batch_size
        # the Python level sizes spare the selection reading them back
        selection = self.query_selection(
            memory,
            spatial_shapes,
            level_start_index(spatial_shapes),
            num_frames,
            level_shapes=level_shapes)
        query = selection['query'].view(batch_size, num_frames,
                                        self.num_queries, -1).mean(1)
        return query, selection

    def forward(self, x: List[Tensor],
                data_samples: TrackDataSample) -> Tuple[List[Tensor]]:
        """Forward, as the stock head's.

        Returns:
            tuple[list[Tensor]]: class logits (B, Q, K + 1) and mask logits
            (B, Q, T, h, w) of every decoder step.
        """
        cls_preds, mask_preds, _ = self._forward_with_selection(x)
        return cls_preds, mask_preds

    def _forward_with_selection(
            self, x: List[Tensor]) -> Tuple[List[Tensor], List[Tensor], dict]:
        """The stock forward with grid-selected query contents.

        Returns:
            tuple: class logits and mask logits of every decoder step, and
            the selection's outputs.
        """
        mask_features, multi_scale_memorys = self.pixel_decoder(x)
        bt, c_m, h_m, w_m = mask_features.shape
        batch_size = bt // self.num_frames if self.training else 1
        t = bt // batch_size
        mask_features = mask_features.view(batch_size, t, c_m, h_m, w_m)
        decoder_inputs, positional_encodings = [], []
        for i in range(self.num_transformer_feat_level):
            decoder_input = self.decoder_input_projs[i](multi_scale_memorys[i])
            decoder_input = decoder_input.flatten(2)
            level_embed = self.level_embed.weight[i][None, :, None]
            decoder_input = decoder_input + level_embed
            _, c, hw = decoder_input.shape
            # (B * T, C, HW) -> (B, T * HW, C)
            decoder_inputs.append(
                decoder_input.view(batch_size, t, c,
                                   hw).permute(0, 1, 3, 2).flatten(1, 2))
            mask = decoder_input.new_zeros(
                (batch_size, t) + multi_scale_memorys[i].shape[-2:],
                dtype=torch.bool)
            positional_encodings.append(
                self.decoder_positional_encoding(mask).flatten(3).permute(
                    0, 1, 3, 2).flatten(1, 2))
        query_feat, selection = self.select_queries(multi_scale_memorys,
                                                    batch_size)
        query_embed = self.query_embed.weight.unsqueeze(0).repeat(
            (batch_size, 1, 1))

        cls_preds, mask_preds, _ = run_mask2former_track_decoder(
            self, query_feat, query_embed, decoder_inputs,
            positional_encodings,
            [memory.shape[-2:] for memory in multi_scale_memorys],
            mask_features)
        return cls_preds, mask_preds, selection

    def loss(self, x: Tuple[Tensor],
             data_samples: TrackSampleList) -> Dict[str, Tensor]:
        """The stock losses plus the query-selection losses.

        Args:
            x (tuple[Tensor]): Multi-level features of the B * T frames.
            data_samples (list[:obj:`TrackDataSample`]): B videos with
                ``gt_instances`` (``labels``, ``masks``, ``instances_ids``)
                per frame.

        Returns:
            dict[str, Tensor]: The losses.
        """
        batch_img_metas, batch_gt_instances = [], []
        for data_sample in data_samples:
            video_img_metas = defaultdict(list)
            for image_idx in range(len(data_sample)):
                batch_gt_instances.append(data_sample[image_idx].gt_instances)
                for key, value in data_sample[image_idx].metainfo.items():
                    video_img_metas[key].append(value)
            batch_img_metas.append(video_img_metas)

        all_cls_scores, all_mask_preds, selection = \
            self._forward_with_selection(x)
        batch_gt_instances = self.preprocess_gt(batch_gt_instances)
        losses = self.loss_by_feat(all_cls_scores, all_mask_preds,
                                   batch_gt_instances, batch_img_metas)
        clip_targets = [
            self.query_selection.targets_from_masks(gt.masks, gt.labels)
            for gt in batch_gt_instances
        ]
        losses.update(self.query_selection.loss(selection, clip_targets))
        return losses

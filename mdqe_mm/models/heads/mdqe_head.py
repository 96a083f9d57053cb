# Copyright (c) OpenMMLab. All rights reserved.
import math
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig, reduce_mean
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor

from ..layers import GELUMLP, MDQEMSDeformAttn


@MODELS.register_module()
class MDQEHead(BaseModule):
    """MDQE decoder, prediction heads and clip-level losses.

    MDQE-internal: it is MDQE's whole two-stream decoder and takes the
    grid-selected, associated queries of :class:`GridQuerySelection`, so it
    is not a DETR ``bbox_head``. To use MDQE's ideas in mmdet's DETRs or
    Mask2Former, see ``GridQueryDINO``, ``GridQueryMask2FormerTrackHead``
    and the ``Repulsion*Head`` classes (configs/mixing/).

    Part of `MDQE: Mining Discriminative Query Embeddings to Segment Occluded
    Instances on Challenging Videos <https://arxiv.org/abs/2303.14395>`_.

    The head owns the two-stream decoder (``MDQETwoStreamDecoder``), the
    prediction MLPs (``MLP(C, C, out, 3)`` with GELU, all applied after the
    decoder's shared LayerNorm ``decoder.norm``) and the mask prototype net:

    - ``cls_embed``: clip query -> K class logits (sigmoid, no background;
      last bias ``-log(0.99 / 0.01)``);
    - ``bbox_embed``: frame query -> 4 box offsets, shared by every decoder
      step (iterative refinement, last bias 0); frame t's box of clip query
      q is the box of aligned frame query q in frame t;
    - ``mask_embed``: clip query -> P coefficients (tanh); the clip mask of
      a query is ``sum_p c_p * proto_p`` over the clip's stride-4
      prototypes (YOLACT-style linear combination).

    Losses (:meth:`loss`) are computed on all ``L_dec = num_layers + 1``
    decoder outputs (the warm-up step included), each with its own
    assignment (``DynamicKVideoAssigner``, one-to-many). Keys of the last
    step are ``loss_cls``, ``loss_bbox``, ``loss_iou``, ``loss_mask`` and
    ``loss_dice``; the others follow mmdet's DETR convention,
    ``d{i}.loss_cls`` for step i = 0 (warm-up) .. L_dec - 2. (The reference
    suffixes ``_{i}`` instead, with the same i.)

    Args:
        num_classes (int): Number of classes K.
        embed_dims (int): Channels C. Defaults to 256.
        num_frames (int): Training clip length T. Defaults to 4.
        decoder (dict): ``MDQETwoStreamDecoder`` config; ``embed_dims`` and
            ``num_frames`` default to the head's.
        mask_proto (dict): ``MDQEMaskPrototypeNet`` config; ``embed_dims``
            defaults to the head's.
        loss_cls (dict): class loss, focal averaged over all queries
            (``VideoQueryFocalLoss``, weight 2).
        loss_bbox (dict): L1 box loss on the valid frames of matched pairs,
            normalised by ``T * num_matched`` (weight 2).
        loss_iou (dict): GIoU loss, same normalisation (weight 2); the
            reference's ``OverlapGIoULoss`` (0 GIoU for disjoint pairs).
        loss_mask (dict): ``InterInstanceMaskRepulsionLoss`` (weights 4/4).
        train_cfg (dict, optional): ``dict(assigner=...)``, defaults to a
            ``DynamicKVideoAssigner`` with its defaults.
        test_cfg (dict, optional): unused by the head; kept for symmetry.
        init_cfg (dict or list[dict], optional): Initialization config.
    """

    def __init__(self,
                 num_classes: int,
                 embed_dims: int = 256,
                 num_frames: int = 4,
                 decoder: ConfigType = dict(type='MDQETwoStreamDecoder'),
                 mask_proto: ConfigType = dict(type='MDQEMaskPrototypeNet'),
                 loss_cls: ConfigType = dict(
                     type='VideoQueryFocalLoss',
                     alpha=0.25,
                     gamma=2.0,
                     loss_weight=2.0),
                 loss_bbox: ConfigType = dict(type='L1Loss', loss_weight=2.0),
                 loss_iou: ConfigType = dict(
                     type='OverlapGIoULoss', loss_weight=2.0),
                 loss_mask: ConfigType = dict(
                     type='InterInstanceMaskRepulsionLoss',
                     loss_weight_bce=4.0,
                     loss_weight_dice=4.0),
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        if num_frames < 1:
            raise ValueError(f'num_frames must be >= 1, got {num_frames}')
        self.num_classes = num_classes
        self.embed_dims = embed_dims
        self.num_frames = num_frames

        decoder = dict(decoder)
        decoder.setdefault('embed_dims', embed_dims)
        decoder.setdefault('num_frames', num_frames)
        if decoder['embed_dims'] != embed_dims:
            raise ValueError(f'decoder.embed_dims={decoder["embed_dims"]} '
                             f'differs from embed_dims={embed_dims}')
        if decoder['num_frames'] != num_frames:
            raise ValueError(f'decoder.num_frames={decoder["num_frames"]} '
                             f'differs from num_frames={num_frames}')
        self.decoder = MODELS.build(decoder)
        mask_proto = dict(mask_proto)
        mask_proto.setdefault('embed_dims', embed_dims)
        self.mask_proto = MODELS.build(mask_proto)
        self.num_prototypes = self.mask_proto.num_prototypes

        self.cls_embed = GELUMLP(embed_dims, embed_dims, num_classes, 3)
        self.bbox_embed = GELUMLP(embed_dims, embed_dims, 4, 3)
        self.mask_embed = GELUMLP(embed_dims, embed_dims, self.num_prototypes,
                                  3)

        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_iou = MODELS.build(loss_iou)
        self.loss_mask = MODELS.build(loss_mask)
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = dict(test_cfg or {})
        self.assigner = TASK_UTILS.build(
            self.train_cfg.get('assigner', dict(type='DynamicKVideoAssigner')))

    def init_weights(self) -> None:
        """Reference initialisation of the decoder side.

        ``xavier_uniform_`` on every parameter of dim > 1 (decoder, heads and
        mask prototype net alike), then the deformable attention modules'
        own initialisation, zero bias of the last box layer and the focal
        prior ``-log(0.99 / 0.01)`` on the last class bias.
        """
        super().init_weights()
        for param in self.parameters():
            if param.dim() > 1:
                nn.init.xavier_uniform_(param)
        for module in self.modules():
            if isinstance(module, MDQEMSDeformAttn):
                module.reset_parameters()
        nn.init.zeros_(self.bbox_embed.layers[-1].bias)
        nn.init.constant_(self.cls_embed.layers[-1].bias, -math.log(
            (1 - 0.01) / 0.01))

    # ------------------------------------------------------------------
    def get_prototypes(self, mlvl_feats: Sequence[Tensor]) -> Tensor:
        """Per-frame stride-4 prototypes.

        Args:
            mlvl_feats (Sequence[Tensor]): encoder maps of M frames, finest
                first, each (M, C, H_l, W_l).

        Returns:
            Tensor: shape (M, P, H/4, W/4), >= 0.
        """
        return self.mask_proto(mlvl_feats)

    @staticmethod
    def clip_prototypes(frame_protos: Tensor, num_frames: int) -> Tensor:
        """(N*T, P, h, w) per-frame prototypes -> (N, P, T, h, w)."""
        return frame_protos.unflatten(0, (-1, num_frames)).transpose(1, 2)

    def forward(
            self,
            query: Tensor,
            query_xy: Tensor,
            memory: Tensor,
            memory_padding_mask: Optional[Tensor],
            spatial_shapes: Tensor,
            level_start_index: Tensor,
            num_frames: int,
            tca_frame_inds: Optional[List[int]] = None) -> Dict[str, Tensor]:
        """Decode N clips of T frames and apply the prediction heads.

        Args:
            query (Tensor): aligned frame queries, shape (N*T, Q, C).
            query_xy (Tensor): aligned reference points, (N*T, Q, 2).
            memory (Tensor): encoder output, shape (N*T, S, C).
            memory_padding_mask (Tensor, optional): (N*T, S) bool.
            spatial_shapes (Tensor): (L, 2) long.
            level_start_index (Tensor): (L,) long.
            num_frames (int): T (may differ from the training T at test).
            tca_frame_inds (list[int], optional): see the decoder.

        Returns:
            dict[str, Tensor]: with L_dec decoder steps,

            - ``cls_logits``: (L_dec, N, Q, K).
            - ``boxes``: (L_dec, N, Q, T, 4) normalised xyxy.
            - ``mask_coeffs``: (L_dec, N, Q, P), tanh.
            - ``clip_queries``: (L_dec, N, Q, C), raw (before the norm).
        """
        dec = self.decoder(
            query,
            query_xy,
            memory,
            memory_padding_mask,
            spatial_shapes,
            level_start_index,
            num_frames=num_frames,
            reg_branch=self.bbox_embed,
            tca_frame_inds=tca_frame_inds)
        clip_queries = dec['clip_queries']
        normed = self.decoder.norm(clip_queries)
        frame_boxes = dec['frame_boxes']
        num_steps, _, num_queries = frame_boxes.shape[:3]
        boxes = frame_boxes.view(num_steps, -1, num_frames, num_queries, 4)
        boxes = bbox_cxcywh_to_xyxy(boxes.transpose(2, 3))
        return dict(
            cls_logits=self.cls_embed(normed),
            boxes=boxes,
            mask_coeffs=self.mask_embed(normed).tanh(),
            clip_queries=clip_queries)

    # ------------------------------------------------------------------
    def _assign(self, cls_logits: Tensor, boxes: Tensor, mask_coeffs: Tensor,
                protos: Tensor,
                clip_targets: List[InstanceData]) -> List[Tensor]:
        """Assign every clip of one decoder step.

        Returns:
            list[Tensor]: per clip, ``gt_inds`` (Q,) long, 0 = unassigned,
            else 1-based GT index.
        """
        assignments = []
        with torch.no_grad():
            for clip_idx, targets in enumerate(clip_targets):
                num_queries = cls_logits.shape[1]
                if len(targets) == 0:
                    assignments.append(
                        cls_logits.new_zeros(num_queries, dtype=torch.long))
                    continue
                mask_logits = torch.einsum('qp,pthw->qthw',
                                           mask_coeffs[clip_idx],
                                           protos[clip_idx])
                pred = InstanceData(
                    scores=cls_logits[clip_idx],
                    boxes=boxes[clip_idx],
                    masks=mask_logits)
                gt = InstanceData(
                    labels=targets.labels,
                    boxes=targets.boxes,
                    masks=targets.match_masks,
                    valid=targets.valid)
                result = self.assigner.assign(pred, gt)
                assignments.append(result.gt_inds.to(cls_logits.device))
        return assignments

    def loss_by_step(self, cls_logits: Tensor, boxes: Tensor,
                     mask_coeffs: Tensor, protos: Tensor,
                     clip_targets: List[InstanceData]) -> Dict[str, Tensor]:
        """Losses of one decoder step.

        Args:
            cls_logits (Tensor): (N, Q, K).
            boxes (Tensor): (N, Q, T, 4) normalised xyxy.
            mask_coeffs (Tensor): (N, Q, P).
            protos (Tensor): (N, P, T, h, w).
            clip_targets (list[:obj:`InstanceData`]): N clip targets (see
                ``build_clip_targets``).

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_bbox``, ``loss_iou``,
            ``loss_mask``, ``loss_dice`` (weighted).
        """
        num_clips, num_queries, _ = cls_logits.shape
        num_frames = boxes.shape[2]
        gt_inds = self._assign(cls_logits, boxes, mask_coeffs, protos,
                               clip_targets)

        labels = cls_logits.new_full((num_clips, num_queries),
                                     -1,
                                     dtype=torch.long)
        pos_clip, pos_query, pos_gt = [], [], []
        for clip_idx, (inds, targets) in enumerate(zip(gt_inds, clip_targets)):
            query_idx = torch.nonzero(inds > 0, as_tuple=False).view(-1)
            gt_idx = inds[query_idx] - 1
            labels[clip_idx, query_idx] = targets.labels[gt_idx]
            pos_clip.append(torch.full_like(query_idx, clip_idx))
            pos_query.append(query_idx)
            pos_gt.append(gt_idx)
        pos_clip = torch.cat(pos_clip)
        pos_query = torch.cat(pos_query)
        num_pos = pos_clip.numel()
        num_matched = reduce_mean(cls_logits.new_tensor(float(num_pos)))
        num_matched = max(num_matched.item(), 1.0)

        losses = dict(loss_cls=self.loss_cls(cls_logits, labels))

        # boxes of the valid frames of every matched pair
        pos_boxes = boxes[pos_clip, pos_query]  # P, T, 4
        tgt_boxes = torch.cat([
            targets.boxes[gt_idx]
            for targets, gt_idx in zip(clip_targets, pos_gt)
        ]).to(pos_boxes)
        box_valid = torch.cat([
            targets.valid[gt_idx]
            for targets, gt_idx in zip(clip_targets, pos_gt)
        ])
        box_factor = num_frames * num_matched
        if num_pos > 0 and bool(box_valid.any()):
            losses['loss_bbox'] = self.loss_bbox(
                pos_boxes[box_valid],
                tgt_boxes[box_valid],
                avg_factor=box_factor)
            losses['loss_iou'] = self.loss_iou(
                pos_boxes[box_valid],
                tgt_boxes[box_valid],
                avg_factor=box_factor)
        else:
            zero = boxes.sum() * 0
            losses['loss_bbox'] = zero
            losses['loss_iou'] = zero.clone()

        # clip masks of the matched pairs only (memory: P x T x h x w)
        pos_masks = [
            torch.einsum('qp,pthw->qthw', mask_coeffs[clip_idx, query_idx],
                         protos[clip_idx])
            for clip_idx, query_idx in enumerate(
                torch.split(pos_query, [len(g) for g in pos_gt]))
        ]
        pos_masks = torch.cat(pos_masks)
        tgt_masks = torch.cat([
            targets.match_masks[gt_idx]
            for targets, gt_idx in zip(clip_targets, pos_gt)
        ]).to(pos_masks)
        if num_pos > 0:
            losses.update(
                self.loss_mask(
                    pos_masks,
                    tgt_masks,
                    target_boxes=tgt_boxes,
                    clip_inds=pos_clip,
                    avg_factor=num_matched))
        else:
            zero = mask_coeffs.sum() * 0 + protos.sum() * 0
            losses['loss_mask'] = zero
            losses['loss_dice'] = zero.clone()
        return losses

    def loss(self, outs: Dict[str, Tensor], protos: Tensor,
             clip_targets: List[InstanceData]) -> Dict[str, Tensor]:
        """Deeply supervised clip losses over every decoder step.

        Args:
            outs (dict): output of :meth:`forward`.
            protos (Tensor): clip prototypes, shape (N, P, T, h, w).
            clip_targets (list[:obj:`InstanceData`]): N clip targets.

        Returns:
            dict[str, Tensor]: last step without prefix, step i with prefix
            ``d{i}.`` (i = 0 is the warm-up step).
        """
        num_steps, num_clips = outs['cls_logits'].shape[:2]
        if len(clip_targets) != num_clips:
            raise ValueError(f'got {len(clip_targets)} clip targets for '
                             f'{num_clips} clips')
        target_size = tuple(protos.shape[-2:])
        for targets in clip_targets:
            if len(targets) and tuple(
                    targets.match_masks.shape[-2:]) != target_size:
                raise ValueError(
                    f'match_masks are {tuple(targets.match_masks.shape)}, '
                    f'prototypes are {tuple(protos.shape)}: both must be at '
                    'stride 4 of the same padded input')
        losses = {}
        for step in range(num_steps):
            step_losses = self.loss_by_step(outs['cls_logits'][step],
                                            outs['boxes'][step],
                                            outs['mask_coeffs'][step], protos,
                                            clip_targets)
            prefix = '' if step == num_steps - 1 else f'd{step}.'
            losses.update({prefix + k: v for k, v in step_losses.items()})
        return losses

    def predict_clips(self, outs: Dict[str, Tensor],
                      protos: Tensor) -> List[Dict[str, Tensor]]:
        """Last-step predictions of every clip, for near-online inference.

        Args:
            outs (dict): output of :meth:`forward` for N clips of T frames.
            protos (Tensor): clip prototypes, shape (N, P, T, h, w).

        Returns:
            list[dict[str, Tensor]]: per clip,

            - ``scores``: (Q, K) sigmoid class scores.
            - ``mask_logits``: (Q, T, h, w) stride-4 mask logits.
            - ``clip_embeds``: (Q, C) raw last-step clip queries (before the
              norm; used to link clips).
            - ``frame_boxes``: (Q, T, 4) normalised xyxy boxes.
        """
        scores = outs['cls_logits'][-1].sigmoid()
        coeffs = outs['mask_coeffs'][-1]
        mask_logits = torch.einsum('nqp,npthw->nqthw', coeffs, protos)
        return [
            dict(
                scores=scores[i],
                mask_logits=mask_logits[i],
                clip_embeds=outs['clip_queries'][-1][i],
                frame_boxes=outs['boxes'][-1][i])
            for i in range(scores.shape[0])
        ]

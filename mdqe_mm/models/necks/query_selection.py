# Copyright (c) OpenMMLab. All rights reserved.
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor

from ..layers import GELUMLP


def level_start_index(spatial_shapes: Tensor) -> Tensor:
    """First token of every level of flattened multi-level features.

    Args:
        spatial_shapes (Tensor): (H_l, W_l) per level, shape (L, 2).

    Returns:
        Tensor: long, shape (L,).
    """
    sizes = spatial_shapes.prod(1)
    return torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])


def split_levels(
        memory: Tensor,
        spatial_shapes: Tensor,
        level_start_index: Tensor,
        level_shapes: Optional[Sequence[Tuple[int, int]]] = None
) -> List[Tensor]:
    """Cut flattened multi-level tokens back into feature maps.

    Args:
        memory (Tensor): shape (M, S, C), S = sum of H_l * W_l.
        spatial_shapes (Tensor): shape (L, 2), (H_l, W_l) per level.
        level_start_index (Tensor): shape (L,), first token of each level.
        level_shapes (Sequence[tuple[int, int]], optional): the same
            (H_l, W_l) as Python ints (levels packed in order). When given,
            the two tensors are not read, which on a GPU saves a host
            synchronisation.

    Returns:
        list[Tensor]: L maps of shape (M, C, H_l, W_l).
    """
    num_frames, num_tokens, channels = memory.shape
    if level_shapes is not None:
        shapes = [(int(h), int(w)) for h, w in level_shapes]
        starts = [
            sum(h * w for h, w in shapes[:i]) for i in range(len(shapes))
        ]
    else:
        shapes = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
        starts = [int(s) for s in level_start_index.tolist()]
    if starts[-1] + shapes[-1][0] * shapes[-1][1] != num_tokens:
        raise ValueError(
            f'memory has {num_tokens} tokens but the spatial shapes '
            f'{shapes} describe {starts[-1] + shapes[-1][0] * shapes[-1][1]}')
    maps = []
    for (h, w), start in zip(shapes, starts):
        level = memory[:, start:start + h * w]
        maps.append(level.transpose(1, 2).reshape(num_frames, channels, h, w))
    return maps


@MODELS.register_module()
class GridQuerySelection(BaseModule):
    """Grid-guided query selection and inter-frame query association.

    Part of `MDQE: Mining Discriminative Query Embeddings to Segment Occluded
    Instances on Challenging Videos <https://arxiv.org/abs/2303.14395>`_.

    It works on a transformer encoder's multi-level memory, so it is not a
    detector ``neck`` between backbone and head: a model hosts it where its
    queries are made. Hosts in this package: :class:`MDQE`,
    ``GridQueryDINO`` (DINO's ``pre_decoder``, one frame per image) and
    ``GridQueryMask2FormerTrackHead`` (the pixel decoder's features). A host
    gives it the memory (M, S, C) of its frames, the levels' shapes and
    start indices, the frame count T of a clip, and, for the losses, clip
    targets from instance masks (:meth:`targets_from_masks`).

    Per frame:

    1. a semantic head (``rpn_cls_embed``, MLP C->C->K) scores every token of
       the stride-8 encoder level; the class-agnostic objectness is
       ``max_k sigmoid``;
    2. the objectness map is bilinearly upsampled to
       ``((2*H0) // g + 1) * g`` by ``((2*W0) // g + 1) * g`` (g = grid
       size, 14) and cut into g x g equal cells; the argmax of each cell
       (first one on ties, row-major inside the cell) is one query, so there
       are always Q = g*g queries ordered row-major over cells;
    3. each query's content is the mean over the 4 encoder levels of a
       bilinear ``grid_sample`` (border padding, align_corners=False) at the
       peak; its reference point is the peak (x, y) in [0, 1];
    4. an embedding head (``track_embed``, MLP C->C->E) maps the content to
       E=64-d association embeddings.

    Per clip, every query k of the centre frame ``ct = (T-1)//2`` picks, in
    each frame t, the query q of highest raw dot product ``e_tq . e_ctk``
    among the queries whose grid cell is within ``window * |t - ct|`` cells
    in both directions (softmax over q, then argmax; not one-to-one). The
    picked features and coordinates are gathered in centre-frame order, so
    query k of every frame describes the same "tube".

    Reference quirk (kept by default for checkpoint parity): the peak y is
    computed with a true division, ``y = (flat_index / W_up) / H_up =
    (row + col / W_up) / H_up``, a sub-pixel downward bias. Set
    ``true_division_y=False`` for ``y = row / H_up``. In both cases ``x =
    col / W_up`` (the top-left corner of the upsampled pixel).

    Args:
        num_classes (int): Number of classes K of the semantic head.
        embed_dims (int): Channels C. Defaults to 256.
        num_queries (int): Q, a perfect square. Defaults to 196 (14 x 14).
        sem_level (int): Encoder level of the semantic map. Defaults to 0
            (stride 8, the finest level).
        embed_channels (int): E, association embedding size. Defaults to 64.
        train_window (float): Association window w in grid cells per frame
            of distance to the centre frame, in training. Defaults to 5
            (OVIS/COCO; 7 for YouTube-VIS).
        test_window (float, optional): Window at inference. Defaults to
            ``train_window / 2`` as in the reference.
        true_division_y (bool): Keep the reference y quirk. Defaults to True.
        loss_sem (dict): Config of the semantic-map loss
            (``DistanceWeightedFocalLoss``, weight 2).
        loss_reid (dict): Config of the contrastive embedding loss
            (``QueryContrastiveLoss``, weights 0.5/0.5). Its ``window`` and
            ``num_grid`` default to ``train_window`` and the grid size.
        train_cfg (dict, optional): ``dict(assigner=...)``, the
            ``ClipPeakAssigner`` giving the semantic-map targets (its
            ``num_classes`` defaults to ours, so that it returns the
            per-class distance targets of the reference). Defaults to a
            ``ClipPeakAssigner`` with its defaults.
        init_cfg (dict or list[dict], optional): Initialization config.
    """

    def __init__(self,
                 num_classes: int,
                 embed_dims: int = 256,
                 num_queries: int = 196,
                 sem_level: int = 0,
                 embed_channels: int = 64,
                 train_window: float = 5.,
                 test_window: Optional[float] = None,
                 true_division_y: bool = True,
                 loss_sem: ConfigType = dict(
                     type='DistanceWeightedFocalLoss', loss_weight=2.0),
                 loss_reid: ConfigType = dict(
                     type='QueryContrastiveLoss',
                     loss_weight_ctt=0.5,
                     loss_weight_aux=0.5),
                 train_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        num_grid = int(round(math.sqrt(num_queries)))
        if num_grid * num_grid != num_queries or num_queries < 1:
            raise ValueError('num_queries must be a perfect square (one '
                             f'query per grid cell), got {num_queries}')
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        if train_window < 0 or (test_window is not None and test_window < 0):
            raise ValueError('association windows must be >= 0, got '
                             f'{train_window} / {test_window}')
        self.num_classes = num_classes
        self.embed_dims = embed_dims
        self.num_queries = num_queries
        self.num_grid = num_grid
        self.sem_level = sem_level
        self.embed_channels = embed_channels
        self.train_window = float(train_window)
        self.test_window = (
            self.train_window /
            2 if test_window is None else float(test_window))
        self.true_division_y = true_division_y

        self.rpn_cls_embed = GELUMLP(embed_dims, embed_dims, num_classes, 3)
        self.track_embed = GELUMLP(embed_dims, embed_dims, embed_channels, 3)

        cols, rows = torch.meshgrid(
            torch.arange(num_grid), torch.arange(num_grid), indexing='xy')
        cell_xy = torch.stack([cols, rows], dim=-1).view(-1, 2)
        # |d col|, |d row| between the grid cells of every query pair
        self.register_buffer(
            'query_cell_dist', (cell_xy[:, None] - cell_xy[None]).abs(),
            persistent=False)

        self.loss_sem = MODELS.build(loss_sem)
        loss_reid = dict(loss_reid)
        loss_reid.setdefault('window', train_window)
        loss_reid.setdefault('num_grid', num_grid)
        self.loss_reid = MODELS.build(loss_reid)
        train_cfg = dict(train_cfg or {})
        self.train_cfg = train_cfg
        assigner = dict(
            train_cfg.get('assigner', dict(type='ClipPeakAssigner')))
        if assigner.get('type') == 'ClipPeakAssigner':
            # per-class distance targets, exact where a pixel is overwritten
            assigner.setdefault('num_classes', num_classes)
        self.assigner = TASK_UTILS.build(assigner)

    def init_weights(self) -> None:
        """Xavier-uniform on the MLP weights and the focal prior bias.

        As in the reference, where both heads live inside the decoder module
        whose parameters of dim > 1 get ``xavier_uniform_``.
        """
        super().init_weights()
        for param in self.parameters():
            if param.dim() > 1:
                nn.init.xavier_uniform_(param)
        prior_bias = -math.log((1 - 0.01) / 0.01)
        nn.init.constant_(self.rpn_cls_embed.layers[-1].bias, prior_bias)

    # ------------------------------------------------------------------
    # numeric pieces (public so that tests and other models can use them)
    # ------------------------------------------------------------------
    def upsampled_size(self, height: int, width: int) -> List[int]:
        """Size (H_up, W_up) of the objectness map before the grid cut."""
        g = self.num_grid
        return [(2 * height // g + 1) * g, (2 * width // g + 1) * g]

    def select_grid_peaks(self, sem_logits: Tensor) -> Tensor:
        """One objectness peak per grid cell.

        Args:
            sem_logits (Tensor): semantic logits, shape (M, H0, W0, K).

        Returns:
            Tensor: peak coordinates (x, y) in [0, 1], shape (M, Q, 2),
            queries in row-major cell order.
        """
        num_maps, height, width, _ = sem_logits.shape
        g = self.num_grid
        up_h, up_w = self.upsampled_size(height, width)
        cell_h, cell_w = up_h // g, up_w // g
        objectness = sem_logits.float().sigmoid().amax(dim=-1)[:, None]
        objectness = F.interpolate(
            objectness,
            size=(up_h, up_w),
            mode='bilinear',
            align_corners=False)[:, 0]
        cells = objectness.view(num_maps, g, cell_h, g, cell_w)
        cells = cells.permute(0, 1, 3, 2, 4).reshape(num_maps, g * g,
                                                     cell_h * cell_w)
        local_idx = cells.argmax(dim=-1)
        cell_idx = torch.arange(g * g, device=sem_logits.device)
        rows = (cell_idx // g) * cell_h + local_idx // cell_w
        cols = (cell_idx % g) * cell_w + local_idx % cell_w
        query_x = cols.float() / up_w
        if self.true_division_y:
            flat_idx = (rows * up_w + cols).float()
            query_y = flat_idx / up_w / up_h
        else:
            query_y = rows.float() / up_h
        return torch.stack([query_x, query_y], dim=-1)

    @staticmethod
    def sample_query_features(
            memory: Tensor,
            query_xy: Tensor,
            spatial_shapes: Tensor,
            level_start_index: Tensor,
            level_shapes: Optional[Sequence[Tuple[int, int]]] = None
    ) -> Tensor:
        """Mean over levels of the bilinear samples at the query points.

        Args:
            memory (Tensor): encoder output, shape (M, S, C).
            query_xy (Tensor): points (x, y) in [0, 1], shape (M, Q, 2).
            spatial_shapes (Tensor): shape (L, 2).
            level_start_index (Tensor): shape (L,).
            level_shapes (Sequence[tuple[int, int]], optional): see
                :func:`split_levels`.

        Returns:
            Tensor: query contents, shape (M, Q, C).
        """
        grid = (2 * query_xy - 1)[:, :, None].to(memory.dtype)  # M,Q,1,2
        sampled = [
            F.grid_sample(
                level_map,
                grid,
                mode='bilinear',
                padding_mode='border',
                align_corners=False)[..., 0] for level_map in split_levels(
                    memory, spatial_shapes, level_start_index, level_shapes)
        ]
        return torch.stack(sampled).mean(0).transpose(1, 2)

    def associate(self, query_embeds: Tensor, window: float) -> Tensor:
        """Windowed association of every frame to the centre frame.

        Args:
            query_embeds (Tensor): embeddings, shape (N, T, Q, E).
            window (float): window w in grid cells per frame of distance.

        Returns:
            Tensor: ``assoc_inds`` of shape (N, T, Q), long: entry (n, t, k)
            is the query of frame t matched to centre-frame query k.
        """
        num_clips, num_frames, num_queries, _ = query_embeds.shape
        centre = (num_frames - 1) // 2
        similarity = torch.einsum('ntqe,nke->ntqk', query_embeds,
                                  query_embeds[:, centre])
        frame_gap = (torch.arange(num_frames, device=query_embeds.device) -
                     centre).abs().to(query_embeds.dtype)
        outside = (self.query_cell_dist[None].to(query_embeds.dtype)
                   > window * frame_gap[:, None, None, None]).any(dim=-1)
        similarity = similarity.masked_fill(outside[None], float('-inf'))
        return similarity.softmax(dim=2).argmax(dim=2)

    @staticmethod
    def targets_from_masks(masks: Tensor, labels: Tensor) -> InstanceData:
        """Clip targets for :meth:`loss` from (padded) instance masks.

        For host models that have per-frame instance masks but not MDQE's
        clip targets (e.g. mmdet's Mask2FormerVideo, or DINO with boxes
        drawn as masks): boxes are the masks' tight boxes normalised by the
        mask size, and an instance is present in the frames where its mask
        is not empty.

        Args:
            masks (Tensor): masks at the padded input size, shape
                (G, T, H_pad, W_pad), bool or float.
            labels (Tensor): long class ids, shape (G,).

        Returns:
            :obj:`InstanceData`: ``labels`` (G,), ``masks`` (G, T, H_pad,
            W_pad) float, ``boxes`` (G, T, 4) and ``present`` (G, T).
        """
        from ..losses import masks_to_normalised_boxes
        if masks.dim() != 4 or labels.shape != masks.shape[:1]:
            raise ValueError('masks must have shape (G, T, H, W) and labels '
                             f'(G,), got {tuple(masks.shape)} and '
                             f'{tuple(labels.shape)}')
        masks = masks.float()
        return InstanceData(
            labels=labels.long(),
            masks=masks,
            boxes=masks_to_normalised_boxes(masks),
            present=(masks > 0.5).flatten(2).any(-1))

    # ------------------------------------------------------------------
    def forward(self,
                memory: Tensor,
                spatial_shapes: Tensor,
                level_start_index: Tensor,
                num_frames: int,
                window: Optional[float] = None,
                level_shapes: Optional[Sequence[Tuple[int, int]]] = None
                ) -> Dict[str, Tensor]:
        """Select, embed and associate the queries of N clips of T frames.

        Args:
            memory (Tensor): encoder output, shape (N*T, S, C), frame index
                fastest.
            spatial_shapes (Tensor): shape (L, 2), long.
            level_start_index (Tensor): shape (L,), long.
            num_frames (int): T.
            window (float, optional): association window; defaults to
                ``train_window`` in training mode, ``test_window`` otherwise.
            level_shapes (Sequence[tuple[int, int]], optional): the
                (H_l, W_l) of ``spatial_shapes`` as Python ints; when given
                the shape tensors are not read on the host (no GPU
                synchronisation).

        Returns:
            dict[str, Tensor]:

            - ``sem_logits``: (N*T, H0, W0, K) semantic logits.
            - ``query``: (N*T, Q, C) contents, aligned to the centre frame.
            - ``query_xy``: (N*T, Q, 2) reference points, aligned.
            - ``query_embeds``: (N, T, Q, E) embeddings before association.
            - ``query_xy_unaligned``: (N*T, Q, 2) points before association.
            - ``assoc_inds``: (N, T, Q) long, see :meth:`associate`.
        """
        num_maps = memory.shape[0]
        if num_frames < 1 or num_maps % num_frames != 0:
            raise ValueError(f'{num_maps} frame maps cannot be split into '
                             f'clips of num_frames={num_frames}')
        num_clips = num_maps // num_frames
        if level_shapes is not None:
            height, width = (int(v) for v in level_shapes[self.sem_level])
            start = sum(h * w for h, w in level_shapes[:self.sem_level])
        else:
            height, width = (int(v) for v in spatial_shapes[self.sem_level])
            start = int(level_start_index[self.sem_level])
        sem_feat = memory[:, start:start + height * width]
        sem_logits = self.rpn_cls_embed(sem_feat).view(num_maps, height, width,
                                                       self.num_classes)

        query_xy = self.select_grid_peaks(sem_logits.detach())
        query = self.sample_query_features(memory, query_xy, spatial_shapes,
                                           level_start_index, level_shapes)
        query_embeds = self.track_embed(query).view(num_clips, num_frames,
                                                    self.num_queries, -1)
        if window is None:
            window = self.train_window if self.training else self.test_window
        with torch.no_grad():
            assoc_inds = self.associate(query_embeds.detach(), window)
        flat_inds = assoc_inds.flatten(0, 1)
        aligned_query = torch.gather(
            query, 1, flat_inds[..., None].expand(-1, -1, query.shape[-1]))
        aligned_xy = torch.gather(query_xy, 1,
                                  flat_inds[..., None].expand(-1, -1, 2))
        return dict(
            sem_logits=sem_logits,
            query=aligned_query,
            query_xy=aligned_xy,
            query_embeds=query_embeds,
            query_xy_unaligned=query_xy,
            assoc_inds=assoc_inds)

    def loss(self, outs: Dict[str, Tensor],
             clip_targets: List[InstanceData]) -> Dict[str, Tensor]:
        """Query-initialisation losses: semantic map and embeddings.

        Args:
            outs (dict): output of :meth:`forward` for N clips.
            clip_targets (list[:obj:`InstanceData`]): N clip targets with
                ``labels`` (G,), ``masks`` (G, T, H_pad, W_pad) float,
                ``boxes`` (G, T, 4) normalised xyxy and ``present`` (G, T).

        Returns:
            dict[str, Tensor]: ``loss_sem`` and the contrastive losses
            (``loss_reid_ctt``, ``loss_reid_aux``), already weighted.
        """
        sem_logits = outs['sem_logits']
        num_clips, num_frames = outs['query_embeds'].shape[:2]
        if len(clip_targets) != num_clips:
            raise ValueError(f'got {len(clip_targets)} clip targets for '
                             f'{num_clips} clips')
        feat_size = tuple(sem_logits.shape[1:3])
        labels, inst_ids, dists = [], [], []
        with torch.no_grad():
            for targets in clip_targets:
                peaks = self.assigner.assign(
                    gt_masks=targets.masks,
                    gt_boxes=targets.boxes,
                    gt_labels=targets.labels,
                    gt_valid=targets.present,
                    feat_size=feat_size)
                labels.append(peaks['labels'])
                inst_ids.append(peaks['inst_ids'])
                dists.append(peaks.get('class_dist', peaks['dist']))
            labels = torch.cat(labels).to(sem_logits.device)
            inst_ids = torch.cat(inst_ids).to(sem_logits.device)
            dists = torch.cat(dists).to(sem_logits.device)
            # instance id under each (pre-association) query, -1 for bg
            grid = 2 * outs['query_xy_unaligned'][:, :, None] - 1
            query_ids = F.grid_sample(
                inst_ids[:, None].float(),
                grid.float(),
                mode='nearest',
                padding_mode='border',
                align_corners=False)[:, 0, :, 0]
            query_ids = query_ids.round().long().view(num_clips, num_frames,
                                                      -1)
        losses = dict(loss_sem=self.loss_sem(sem_logits, labels, dists))
        losses.update(self.loss_reid(outs['query_embeds'], query_ids))
        return losses

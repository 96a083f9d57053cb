# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.mot import BaseMOTModel
from mmdet.registry import MODELS
from mmdet.structures import TrackSampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from torch import Tensor

from ...utils.config_check import check_cfg_keys
from ..necks.query_selection import split_levels
from ..trackers.clip_batching import decode_clips_in_batches
from .clip_targets import build_clip_targets

#: keys of ``MDQE.train_cfg`` and of its sub-dicts that some code reads;
#: any other key is an error (a misspelled setting would otherwise be ignored)
MDQE_TRAIN_CFG_KEYS = {
    '': ('query_selection', 'track_head'),
    'query_selection': ('assigner', ),  # GridQuerySelection.train_cfg
    'track_head': ('assigner', ),  # MDQEHead.train_cfg
}
#: keys of ``MDQE.test_cfg`` read by :meth:`MDQE.build_inferencer`,
#: :meth:`MDQE.decode_clips` and passed on to the head (which reads none)
MDQE_TEST_CFG_KEYS = {
    '': ('clip_batch_size', 'clip_length', 'window_length', 'clip_stride',
         'score_aggregation', 'window_carry', 'merge_on_cpu', 'cls_thr',
         'max_num_instances', 'max_per_frame', 'inferencer', 'track_head'),
    'track_head': (),
}


def check_mdqe_cfgs(train_cfg: OptConfigType,
                    test_cfg: OptConfigType) -> None:
    """Raise :class:`~mdqe_mm.utils.ConfigKeyError` (with a "did you mean")
    for a key of ``train_cfg`` / ``test_cfg`` that MDQE does not read.

    ``test_cfg.inferencer`` is checked against the arguments of the
    inferencer class it builds (``NearOnlineInferencer`` by default).
    """
    for name, cfg, table in (('train_cfg', train_cfg, MDQE_TRAIN_CFG_KEYS),
                             ('test_cfg', test_cfg, MDQE_TEST_CFG_KEYS)):
        check_cfg_keys(cfg, table[''], f'model.{name}')
        for sub, keys in table.items():
            if sub and cfg is not None and cfg.get(sub) is not None:
                check_cfg_keys(cfg[sub], keys, f'model.{name}.{sub}')
    inferencer = (test_cfg or {}).get('inferencer')
    if inferencer:
        import inspect
        cls = MODELS.get(inferencer.get('type', 'NearOnlineInferencer'))
        if cls is not None:
            params = inspect.signature(cls.__init__).parameters
            if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
                check_cfg_keys(inferencer,
                               [k for k in params if k != 'self'] + ['type'],
                               'model.test_cfg.inferencer')


@MODELS.register_module()
class MDQE(BaseMOTModel):
    """MDQE: clip-level video instance segmentation with grid-initialised,
    temporally associated queries and an inter-instance repulsion loss.

    `MDQE: Mining Discriminative Query Embeddings to Segment Occluded
    Instances on Challenging Videos <https://arxiv.org/abs/2303.14395>`_.

    Data flow of one batch of N clips of T frames (all per-frame tensors are
    (N*T, ...) with the frame index fastest)::

        frames (N*T,3,H,W)
          -> backbone (ResNet stages 2-4: strides 8/16/32)
          -> neck (ChannelMapper: 1x1 conv + GN per level, plus a 3x3
             stride-2 conv + GN on the last map: 4 levels of C channels)
          -> + sine positional encoding + level embedding
          -> encoder (per-frame deformable attention) -> memory (N*T,S,C)
             |-> track_head.mask_proto -> prototypes (N*T,P,H/4,W/4)
          -> query_selection (GridQuerySelection: semantic map, one peak
             per 14x14 grid cell, association to the centre frame)
          -> track_head (two-stream decoder + class/box/mask heads)
          -> losses (dynamic-k assignment per decoder step)

    Everything up to the memory and the prototypes is computed per frame
    and independently of the other frames (:meth:`extract_frame_feats`), so
    near-online inference computes it once per frame and decodes every
    overlapping clip from the cache (:meth:`decode_clips`).

    Args:
        backbone (dict): backbone config (ResNet, out_indices=(1, 2, 3)).
        neck (dict): input projection (``ChannelMapper`` with
            ``num_outs=4``).
        encoder (dict): ``MDQEDeformableEncoder`` config.
        query_selection (dict): ``GridQuerySelection`` config.
        track_head (dict): ``MDQEHead`` config.
        positional_encoding (dict): ``SinePositionalEncoding`` arguments;
            ``num_feats`` defaults to C/2. Defaults to
            ``dict(normalize=True)``.
        num_frames (int): training clip length T. Defaults to 4.
        train_cfg (dict, optional): ``query_selection`` and ``track_head``
            sub-dicts, passed to those modules as their ``train_cfg``.
        test_cfg (dict, optional): ``clip_batch_size`` (max clips decoded
            together by :meth:`decode_clips`; None = all clips of equal
            length at once) plus keys for the inference code.
        data_preprocessor (dict, optional): ``TrackDataPreprocessor`` config.
        init_cfg (dict or list[dict], optional): Initialization config.
    """

    #: the prototypes and the padded input must agree on stride 4; the
    #: stride-64 extra level needs inputs padded to a multiple of 32.
    size_divisor = 32

    def __init__(self,
                 backbone: ConfigType,
                 neck: ConfigType,
                 encoder: ConfigType,
                 query_selection: ConfigType,
                 track_head: ConfigType,
                 positional_encoding: ConfigType = dict(normalize=True),
                 num_frames: int = 4,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if num_frames < 1:
            raise ValueError(f'num_frames must be >= 1, got {num_frames}')
        self.num_frames = num_frames
        check_mdqe_cfgs(train_cfg, test_cfg)
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = dict(test_cfg or {})

        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck)
        self.encoder = MODELS.build(encoder)
        embed_dims = self.encoder.embed_dims
        self.embed_dims = embed_dims
        # levels the encoder attends to; the neck must produce as many
        self.num_levels = self.encoder.layers[0].self_attn.num_levels
        pos_cfg = dict(positional_encoding)
        pos_cfg.setdefault('type', 'SinePositionalEncoding')
        pos_cfg.setdefault('num_feats', embed_dims // 2)
        if 2 * pos_cfg['num_feats'] != embed_dims:
            raise ValueError('positional_encoding.num_feats must be '
                             f'embed_dims / 2 = {embed_dims / 2}, got '
                             f'{pos_cfg["num_feats"]}')
        self.positional_encoding = MODELS.build(pos_cfg)
        self.level_embed = nn.Parameter(
            torch.empty(self.num_levels, embed_dims).normal_())

        query_selection = dict(query_selection)
        query_selection.setdefault('embed_dims', embed_dims)
        if 'query_selection' in self.train_cfg:
            query_selection.setdefault('train_cfg',
                                       self.train_cfg['query_selection'])
        self.query_selection = MODELS.build(query_selection)
        track_head = dict(track_head)
        track_head.setdefault('embed_dims', embed_dims)
        track_head.setdefault('num_frames', num_frames)
        if track_head['num_frames'] != num_frames:
            raise ValueError(
                f'track_head.num_frames={track_head["num_frames"]}'
                f' differs from num_frames={num_frames}')
        if 'track_head' in self.train_cfg:
            track_head.setdefault('train_cfg', self.train_cfg['track_head'])
        track_head.setdefault('test_cfg', self.test_cfg.get('track_head'))
        self.track_head = MODELS.build(track_head)
        if self.query_selection.num_classes != self.track_head.num_classes:
            raise ValueError(
                'query_selection and track_head disagree on num_classes: '
                f'{self.query_selection.num_classes} vs '
                f'{self.track_head.num_classes}')
        self.num_classes = self.track_head.num_classes

    def init_weights(self) -> None:
        """Initialise the sub-modules, then the level embedding N(0, 1)."""
        super().init_weights()
        nn.init.normal_(self.level_embed)

    # ------------------------------------------------------------------
    # per-frame features (cacheable at inference)
    # ------------------------------------------------------------------
    def _padding_mask(
            self, frames: Tensor,
            img_shapes: Optional[Sequence[Tuple[int, int]]]) -> Tensor:
        """True at padded pixels, shape (M, H, W)."""
        num_frames, _, height, width = frames.shape
        mask = torch.zeros((num_frames, height, width),
                           dtype=torch.bool,
                           device=frames.device)
        if img_shapes is None:
            return mask
        if len(img_shapes) != num_frames:
            raise ValueError(f'got {len(img_shapes)} img_shapes for '
                             f'{num_frames} frames')
        mask[:] = True
        for idx, shape in enumerate(img_shapes):
            img_h, img_w = int(shape[0]), int(shape[1])
            if img_h > height or img_w > width or img_h < 1 or img_w < 1:
                raise ValueError(f'frame {idx}: img_shape {tuple(shape)} '
                                 f'does not fit the input {height}x{width}')
            mask[idx, :img_h, :img_w] = False
        return mask

    def extract_frame_feats(
        self,
        frames: Tensor,
        img_shapes: Optional[Sequence[Tuple[int, int]]] = None
    ) -> Dict[str, Tensor]:
        """Backbone, input projection, encoder and prototypes per frame.

        The result of a frame depends on that frame only (frozen BN
        statistics, GroupNorm, per-frame attention), so the features of a
        window of frames can be computed once and sliced for every clip
        that reads them (``feats[key][frame_inds]``).

        Args:
            frames (Tensor): normalised, padded frames, shape (M, 3, H, W),
                H and W multiples of 32.
            img_shapes (Sequence[tuple[int, int]], optional): the unpadded
                (h, w) of every frame; None means no padding.

        Returns:
            dict[str, Tensor]:

            - ``memory``: (M, S, C) encoder output.
            - ``padding_mask``: (M, S) bool, True at padded tokens.
            - ``spatial_shapes``: (L, 2) long, (H_l, W_l) per level.
            - ``level_start_index``: (L,) long.
            - ``level_shapes``: the (H_l, W_l) as a tuple of Python int
              pairs (not per frame; read instead of ``spatial_shapes`` on
              the host, so that no GPU synchronisation is needed).
            - ``protos``: (M, P, H/4, W/4) mask prototypes, >= 0.
        """
        if frames.dim() != 4:
            raise ValueError('frames must be (M, 3, H, W), got '
                             f'{tuple(frames.shape)}')
        height, width = frames.shape[-2:]
        if height % self.size_divisor or width % self.size_divisor:
            raise ValueError(
                f'frames of {height}x{width} must be padded to a multiple of '
                f'{self.size_divisor} (TrackDataPreprocessor('
                f'pad_size_divisor={self.size_divisor}))')
        img_mask = self._padding_mask(frames, img_shapes)
        backbone_feats = self.backbone(frames)
        mlvl_feats = self.neck(backbone_feats)
        if len(mlvl_feats) != self.num_levels:
            raise ValueError(f'neck gave {len(mlvl_feats)} levels, expected '
                             f'{self.num_levels}')
        tokens, positions, masks, masks_2d, shapes = [], [], [], [], []
        for level, feat in enumerate(mlvl_feats):
            if feat.shape[1] != self.embed_dims:
                raise ValueError(f'neck level {level} has {feat.shape[1]} '
                                 f'channels, the encoder {self.embed_dims}')
            # backbone levels: the image mask at that size; extra levels
            # (strided convs of the last map): the previous level's mask,
            # as in the reference (it differs for odd H/32 with padding)
            source_mask = img_mask if level < len(backbone_feats) \
                else masks_2d[-1]
            level_mask = F.interpolate(
                source_mask[None].float(), size=feat.shape[-2:])[0].bool()
            masks_2d.append(level_mask)
            pos = self.positional_encoding(level_mask)
            tokens.append(feat.flatten(2).transpose(1, 2))
            positions.append(
                pos.flatten(2).transpose(1, 2) + self.level_embed[level])
            masks.append(level_mask.flatten(1))
            shapes.append((int(feat.shape[-2]), int(feat.shape[-1])))
        level_shapes = tuple(shapes)
        spatial_shapes, level_start_index = self._shape_tensors(
            level_shapes, frames.device)
        padding_mask = torch.cat(masks, 1)
        memory = self.encoder(
            query=torch.cat(tokens, 1),
            query_pos=torch.cat(positions, 1),
            key_padding_mask=padding_mask,
            spatial_shapes=spatial_shapes,
            level_start_index=level_start_index)
        protos = self.track_head.get_prototypes(
            split_levels(memory, spatial_shapes, level_start_index,
                         level_shapes))
        return dict(
            memory=memory,
            padding_mask=padding_mask,
            spatial_shapes=spatial_shapes,
            level_start_index=level_start_index,
            level_shapes=level_shapes,
            protos=protos)

    def _shape_tensors(self, level_shapes: Tuple[Tuple[int, int], ...],
                       device: torch.device) -> Tuple[Tensor, Tensor]:
        """``spatial_shapes`` and ``level_start_index`` of the levels,
        cached per size and device: building them from Python ints copies
        them to the device, which on a GPU waits for all queued work, so it
        happens once per input size instead of once per window."""
        cache = self.__dict__.setdefault('_shape_tensor_cache', {})
        key = (level_shapes, str(device))
        if key not in cache:
            starts = [0]
            for height, width in level_shapes[:-1]:
                starts.append(starts[-1] + height * width)
            cache[key] = (torch.tensor(
                level_shapes, dtype=torch.long, device=device),
                          torch.tensor(
                              starts, dtype=torch.long, device=device))
        return cache[key]

    # ------------------------------------------------------------------
    # clip decoding
    # ------------------------------------------------------------------
    def _decode(
        self, feats: Dict[str, Tensor], frame_inds: Tensor, num_frames: int,
        window: Optional[float]
    ) -> Tuple[Dict[str, Tensor], Dict[str, Tensor], Tensor]:
        """Query selection + decoder on the gathered frames of N clips."""
        memory = feats['memory'][frame_inds]
        padding_mask = feats['padding_mask'][frame_inds]
        selection = self.query_selection(
            memory,
            feats['spatial_shapes'],
            feats['level_start_index'],
            num_frames=num_frames,
            window=window,
            level_shapes=feats.get('level_shapes'))
        outs = self.track_head(
            selection['query'],
            selection['query_xy'],
            memory,
            padding_mask,
            feats['spatial_shapes'],
            feats['level_start_index'],
            num_frames=num_frames)
        protos = self.track_head.clip_prototypes(feats['protos'][frame_inds],
                                                 num_frames)
        return selection, outs, protos

    def decode_clips(
            self,
            feats: Dict[str, Tensor],
            clip_frame_inds: Sequence[Sequence[int]],
            clip_batch_size: Optional[int] = None) -> List[Dict[str, Tensor]]:
        """Decode clips from cached per-frame features.

        Clips of equal length are batched together (at most
        ``clip_batch_size`` per forward). Query association uses the test
        window (``query_selection.test_window``, w/2) whatever the module
        mode; the temporal attention of a clip of T' != T frames reads the
        frames chosen by the decoder's ``get_tca_frame_inds``. Gradients
        are not disabled here; call under ``torch.no_grad()`` at inference.

        Args:
            feats (dict): output of :meth:`extract_frame_feats` for M frames.
            clip_frame_inds (Sequence[Sequence[int]]): for every clip, the
                rows of ``feats`` it spans, in temporal order (T' >= 1).
            clip_batch_size (int, optional): defaults to
                ``test_cfg['clip_batch_size']`` (None = no limit).

        Returns:
            list[dict[str, Tensor]]: one dict per clip, in input order:

            - ``scores``: (Q, K) sigmoid class scores.
            - ``mask_logits``: (Q, T', H/4, W/4) stride-4 mask logits.
            - ``clip_embeds``: (Q, C) raw last-step clip queries (the 256-d
              embeddings used to link clips).
            - ``frame_boxes``: (Q, T', 4) boxes, xyxy normalised by the
              padded size.
            - ``frame_inds``: (T',) long, the input rows of the clip.
        """
        if clip_batch_size is None:
            clip_batch_size = self.test_cfg.get('clip_batch_size')

        def decode_batch(frame_inds, num_clips, clip_len):
            _, outs, protos = self._decode(feats, frame_inds, clip_len,
                                           self.query_selection.test_window)
            return self.track_head.predict_clips(outs, protos)

        return decode_clips_in_batches(
            clip_frame_inds,
            feats['memory'].shape[0],
            feats['memory'].device,
            decode_batch,
            clip_batch_size,
            owner='MDQE.decode_clips')

    # ------------------------------------------------------------------
    def loss(self, inputs: Tensor, data_samples: TrackSampleList,
             **kwargs) -> Dict[str, Tensor]:
        """Training forward of N clips and all MDQE losses.

        Args:
            inputs (Tensor): normalised padded clips, shape (N, T, 3, H, W).
            data_samples (list[:obj:`TrackDataSample`]): N clips; every
                frame's ``gt_instances`` has ``labels``, ``bboxes``,
                ``masks`` and ``instances_ids``; ``img_shape`` in the frame
                metainfo gives the unpadded size.

        Returns:
            dict[str, Tensor]: ``loss_sem``, ``loss_reid_ctt``,
            ``loss_reid_aux`` (query initialisation) and the decoder losses
            ``loss_cls/bbox/iou/mask/dice`` plus ``d{i}.``-prefixed copies
            for the earlier decoder steps; all weighted.
        """
        if inputs.dim() != 5:
            raise ValueError('MDQE.loss expects clips (N, T, 3, H, W), got '
                             f'{tuple(inputs.shape)}')
        num_clips, num_frames = inputs.shape[:2]
        if num_frames != self.num_frames:
            raise ValueError(f'clips have {num_frames} frames but the model '
                             f'is built for num_frames={self.num_frames}')
        if len(data_samples) != num_clips:
            raise ValueError(f'{len(data_samples)} data samples for '
                             f'{num_clips} clips')
        pad_shape = tuple(inputs.shape[-2:])
        img_shapes = []
        for video in data_samples:
            if len(video) != num_frames:
                raise ValueError(f'a data sample has {len(video)} frames, '
                                 f'inputs have {num_frames}')
            for frame in video:
                img_shapes.append(
                    tuple(frame.metainfo.get('img_shape', pad_shape))[:2])
        feats = self.extract_frame_feats(inputs.flatten(0, 1), img_shapes)
        clip_targets = build_clip_targets(
            data_samples,
            pad_shape,
            device=inputs.device,
            mask_stride=4,
            num_classes=self.track_head.num_classes)
        selection, outs, protos = self._decode(
            feats,
            torch.arange(num_clips * num_frames, device=inputs.device),
            num_frames,
            window=None)
        losses = self.query_selection.loss(selection, clip_targets)
        losses.update(self.track_head.loss(outs, protos, clip_targets))
        return losses

    def build_inferencer(self) -> nn.Module:
        """Build the near-online inferencer from ``test_cfg``.

        ``test_cfg`` keys (MDQE_SPEC section 5): ``clip_length`` (T' of a
        test clip), ``window_length`` (frames whose features are computed
        together), ``cls_thr``, ``max_per_frame`` (detections kept per
        clip), ``max_num_instances`` (track slots), ``clip_batch_size``
        (clips decoded together; None = all clips of a window),
        ``merge_on_cpu`` (track on the CPU), ``score_aggregation``
        (``'window'``, the reference's, or ``'clip'``), ``window_carry``
        (the reference's carry-over at window boundaries), plus an optional
        ``inferencer`` dict that overrides any of them.
        """
        cfg = self.test_cfg
        if cfg.get('clip_stride', 1) != 1:
            raise ValueError(
                'MDQE test_cfg.clip_stride must be 1 (a clip starts at every '
                f'frame, as in every reference config), got '
                f"{cfg.get('clip_stride')}")
        tracker = dict(
            type='ClipTracker',
            max_num_instances=cfg.get('max_num_instances', 120))
        inferencer = dict(
            type='NearOnlineInferencer',
            num_frames=cfg.get('clip_length', self.num_frames),
            window_size=cfg.get('window_length', 30),
            cls_thr=cfg.get('cls_thr', 0.1),
            max_dets=cfg.get('max_per_frame', 15),
            decode_batch_size=cfg.get('clip_batch_size'),
            merge_on_cpu=cfg.get('merge_on_cpu', False),
            score_aggregation=cfg.get('score_aggregation', 'window'),
            window_carry=cfg.get('window_carry', True),
            tracker=tracker)
        inferencer.update(cfg.get('inferencer', {}))
        return MODELS.build(inferencer)

    def predict(self, inputs, data_samples: TrackSampleList,
                **kwargs) -> TrackSampleList:
        """Near-online inference on whole videos, streamed clip by clip.

        Backbone, encoder and prototypes run once per frame, in windows of
        ``test_cfg.window_length`` frames; every clip of T' frames (stride
        1) is decoded from that cache, post-processed, linked into tracks by
        ``ClipTracker``, and each frame's masks are RLE-encoded as soon as
        no later clip covers it, so memory stays flat in video length.

        Args:
            inputs (Tensor | list[Tensor]): the videos. With
                ``VideoStreamDataPreprocessor``: a list of N uint8 CPU
                tensors (L, 3, H, W), normalised window by window. With
                ``TrackDataPreprocessor``: (N, L, 3, H, W), already
                normalised and padded.
            data_samples (list[TrackDataSample]): one per video.

        Returns:
            list[TrackDataSample]: per-frame ``pred_track_instances``
            (``masks`` as RLE dicts, ``scores``, ``labels``,
            ``instances_id``).
        """
        if len(inputs) != len(data_samples):
            raise ValueError(f'MDQE.predict: {len(inputs)} videos but '
                             f'{len(data_samples)} data samples')
        if not hasattr(self, '_inferencer'):
            self._inferencer = self.build_inferencer()
        prepare_window = getattr(self.data_preprocessor, 'prepare_window',
                                 None)
        streamed = isinstance(inputs, (list, tuple))
        results = []
        with torch.no_grad():
            for video, sample in zip(inputs, data_samples):
                img_shape = tuple(sample[0].metainfo.get(
                    'img_shape', video.shape[-2:]))[:2]

                def extract(frames: Tensor, _shape=img_shape) -> dict:
                    return self.extract_frame_feats(frames,
                                                    [_shape] * len(frames))

                results.append(
                    self._inferencer.predict(
                        video,
                        extract,
                        self.decode_clips,
                        sample,
                        prepare_window=prepare_window if streamed else None))
        return results

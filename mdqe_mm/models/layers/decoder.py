# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn.bricks.transformer import FFN
from mmdet.models.layers.transformer.utils import inverse_sigmoid
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_xyxy_to_cxcywh
from mmdet.utils import OptMultiConfig
from mmengine.model import BaseModule, ModuleList
from torch import Tensor

from .msda import MDQEMSDeformAttn
from .utils import fp32_region

# reference boxes of the warm-up step: (x_sel, y_sel, 0.1, 0.1)
INITIAL_BOX_SIZE = 0.1


def circumscribed_clip_box(frame_boxes: Tensor, centre_frame: int,
                           num_frames: int) -> Tensor:
    """Box around one query's per-frame boxes over a window of the clip.

    The window is frames ``[max(ct - (T - 1) // 2, 0), ct + T)`` with ``ct``
    the centre frame and ``T`` the build-time clip length (spec §1.7), i.e.
    the whole clip in training. Boxes are clamped to [0, 1] in xyxy, then
    the min corner / max corner is taken over the frames.

    Args:
        frame_boxes (Tensor): cxcywh boxes, shape (N, T', Q, 4).
        centre_frame (int): ``ct``, usually ``(T' - 1) // 2``.
        num_frames (int): Build-time clip length ``T``.

    Returns:
        Tensor: cxcywh clip boxes, shape (N, Q, 4).
    """
    if frame_boxes.dim() != 4 or frame_boxes.shape[-1] != 4:
        raise ValueError('frame_boxes must be (N, T, Q, 4), got '
                         f'{tuple(frame_boxes.shape)}')
    clip_len = frame_boxes.shape[1]
    if not 0 <= centre_frame < clip_len:
        raise ValueError(f'centre_frame {centre_frame} outside a clip of '
                         f'{clip_len} frames')
    start = max(centre_frame - (num_frames - 1) // 2, 0)
    end = centre_frame + num_frames
    corners = bbox_cxcywh_to_xyxy(frame_boxes[:, start:end]).clamp(0, 1)
    clip_box = torch.cat(
        [corners[..., :2].amin(dim=1), corners[..., 2:].amax(dim=1)], -1)
    return bbox_xyxy_to_cxcywh(clip_box)


def get_tca_frame_inds(clip_len: int, num_frames: int) -> List[int]:
    """Frames that the temporal cross-attention reads (spec §1.7 step 4).

    The temporal attention is built for ``num_frames`` frames. For a clip of
    ``clip_len`` frames it takes ``num_frames`` frames with stride
    ``max(clip_len // num_frames, 1)`` centred on ``ct = (clip_len - 1) //
    2`` (``ct`` at slot ``(num_frames - 1) // 2``); indices outside the clip
    are dropped and the last kept frame is repeated to refill. With
    ``clip_len == num_frames`` this is every frame in order.

    Args:
        clip_len (int): Frames in the clip, T'.
        num_frames (int): Frames the temporal attention takes, T.

    Returns:
        list[int]: ``num_frames`` frame indices in [0, clip_len).
    """
    if clip_len <= 0 or num_frames <= 0:
        raise ValueError(f'clip_len ({clip_len}) and num_frames '
                         f'({num_frames}) must be positive')
    centre = (clip_len - 1) // 2
    stride = max(clip_len // num_frames, 1)
    centre_slot = (num_frames - 1) // 2
    inds = [
        centre + stride * (slot - centre_slot) for slot in range(num_frames)
    ]
    inds = [ind for ind in inds if 0 <= ind < clip_len]
    return inds + [inds[-1]] * (num_frames - len(inds))


def select_frames(clips: Tensor, frame_inds: Sequence[int]) -> Tensor:
    """``clips[:, frame_inds]`` built from slices of runs of consecutive
    frames, so that no index tensor is copied to the device (on a GPU, such
    a copy waits for all queued work).

    Args:
        clips (Tensor): shape (N, T', ...).
        frame_inds (Sequence[int]): Python ints in [0, T').

    Returns:
        Tensor: shape (N, len(frame_inds), ...).
    """
    inds = [int(i) for i in frame_inds]
    if not inds:
        raise ValueError('select_frames: no frame indices')
    runs = [[inds[0], inds[0] + 1]]
    for ind in inds[1:]:
        if ind == runs[-1][1]:
            runs[-1][1] += 1
        else:
            runs.append([ind, ind + 1])
    parts = [clips[:, start:end] for start, end in runs]
    return parts[0] if len(parts) == 1 else torch.cat(parts, 1)


class MDQETwoStreamDecoderLayer(BaseModule):
    """One decoder layer with a frame stream and a clip stream (spec §1.7).

    Frame stream (per frame, B = N*T): box cross-attention, self-attention,
    FFN. Clip stream (B = N): softmax-over-time fusion of the frame queries
    after cross-attention, temporal cross-attention on the circumscribed
    clip box, self-attention, FFN. All post-norm, dropout 0.

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Heads.
        num_levels (int): Feature levels.
        num_points (int): Points per head and level (or frame).
        ffn_ratio (float): FFN hidden channels / C.
        num_frames (int): Frames of the temporal cross-attention.
        use_temporal_attn (bool): If False the fused frame queries are
            added to the clip queries directly (reference
            ``DEC_TEMPORAL=False``).
        init_cfg (dict or list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 num_levels: int,
                 num_points: int,
                 ffn_ratio: float,
                 num_frames: int,
                 use_temporal_attn: bool = True,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        ffn_channels = int(embed_dims * ffn_ratio)
        self.use_temporal_attn = use_temporal_attn
        # frame stream
        self.frame_cross_attn = MDQEMSDeformAttn(
            embed_dims, num_heads, num_levels, num_points, mode='box')
        self.frame_cross_attn_norm = nn.LayerNorm(embed_dims)
        self.frame_self_attn = nn.MultiheadAttention(
            embed_dims, num_heads, batch_first=True)
        self.frame_self_attn_norm = nn.LayerNorm(embed_dims)
        self.frame_ffn = FFN(
            embed_dims, ffn_channels, act_cfg=dict(type='GELU'))
        self.frame_ffn_norm = nn.LayerNorm(embed_dims)
        # clip stream
        self.time_weight_proj = nn.Linear(embed_dims, 1)
        if use_temporal_attn:
            self.clip_temporal_attn = MDQEMSDeformAttn(
                embed_dims,
                num_heads,
                num_levels,
                num_points,
                mode='temporal',
                num_frames=num_frames)
        self.clip_temporal_attn_norm = nn.LayerNorm(embed_dims)
        self.clip_self_attn = nn.MultiheadAttention(
            embed_dims, num_heads, batch_first=True)
        self.clip_self_attn_norm = nn.LayerNorm(embed_dims)
        self.clip_ffn = FFN(
            embed_dims, ffn_channels, act_cfg=dict(type='GELU'))
        self.clip_ffn_norm = nn.LayerNorm(embed_dims)

    def forward(self, frame_queries: Tensor, frame_pos: Tensor,
                frame_ref_boxes: Tensor, clip_queries: Tensor,
                clip_pos: Tensor, clip_ref_boxes: Tensor, memory: Tensor,
                memory_padding_mask: Optional[Tensor], tca_memory: Tensor,
                tca_padding_mask: Optional[Tensor], spatial_shapes: Tensor,
                level_start_index: Tensor) -> Tuple[Tensor, Tensor]:
        """Forward one layer.

        Args:
            frame_queries (Tensor): shape (N*T', Q, C).
            frame_pos (Tensor): shape (N*T', Q, C).
            frame_ref_boxes (Tensor): cxcywh, shape (N*T', Q, 4).
            clip_queries (Tensor): shape (N, Q, C).
            clip_pos (Tensor): shape (N, Q, C).
            clip_ref_boxes (Tensor): cxcywh, shape (N, Q, 4).
            memory (Tensor): shape (N*T', S, C).
            memory_padding_mask (Tensor, optional): shape (N*T', S).
            tca_memory (Tensor): Frames for the temporal attention, shape
                (N, T, S, C).
            tca_padding_mask (Tensor, optional): shape (N, T, S).
            spatial_shapes (Tensor): shape (L, 2).
            level_start_index (Tensor): shape (L,).

        Returns:
            tuple[Tensor, Tensor]: frame queries (N*T', Q, C) and clip
            queries (N, Q, C).
        """
        num_clips = clip_queries.shape[0]
        x = frame_queries
        attn = self.frame_cross_attn(x + frame_pos, frame_ref_boxes, memory,
                                     spatial_shapes, level_start_index,
                                     memory_padding_mask)
        x = self.frame_cross_attn_norm(x + attn)
        after_cross_attn = x
        qk = x + frame_pos
        x = self.frame_self_attn_norm(
            x + self.frame_self_attn(qk, qk, x, need_weights=False)[0])
        x = self.frame_ffn_norm(self.frame_ffn(x))

        # time weights come from the final frame states, the fused values
        # from the states right after cross-attention (reference quirk)
        time_logits = self.time_weight_proj(x).unflatten(0, (num_clips, -1))
        fused = (time_logits.softmax(dim=1) *
                 after_cross_attn.unflatten(0, (num_clips, -1))).sum(dim=1)
        if self.use_temporal_attn:
            fused = self.clip_temporal_attn(fused + clip_pos, clip_ref_boxes,
                                            tca_memory, spatial_shapes,
                                            level_start_index,
                                            tca_padding_mask)
        c = self.clip_temporal_attn_norm(clip_queries + fused)
        qk = c + clip_pos
        c = self.clip_self_attn_norm(
            c + self.clip_self_attn(qk, qk, c, need_weights=False)[0])
        c = self.clip_ffn_norm(self.clip_ffn(c))
        return x, c


@MODELS.register_module()
class MDQETwoStreamDecoder(BaseModule):
    """MDQE's two-stream decoder with box refinement (spec §1.7).

    Frame queries (one set per frame, aligned across frames) are refined
    with box-anchored deformable cross-attention; clip queries start as the
    centre frame's queries and read the clip through temporal deformable
    attention on the circumscribed clip box. A warm-up box refinement runs
    before the first layer, so there are ``num_layers + 1`` outputs.

    ``reg_branch`` (the box MLP, owned by the head and shared by all steps)
    is applied to ``self.norm(frame_queries)``:
    ``boxes = sigmoid(reg_branch(norm(x)) + inverse_sigmoid(ref))``; the
    reference for the next step is ``boxes.detach()`` and the positional
    embedding is ``point2pos_proj(boxes[..., :2])`` (not detached).

    Reference key -> key here (reference prefix
    ``transformer_dec.decoder.``; ``transformer_dec.decoder_norm`` and
    ``transformer_dec.point2pos_proj`` are the same modules as ``norm`` and
    ``point2pos_proj`` here): in ``layers.i``,
    ``cross_attn`` -> ``frame_cross_attn``, ``norm2`` ->
    ``frame_cross_attn_norm``, ``self_attn`` -> ``frame_self_attn``,
    ``norm1`` -> ``frame_self_attn_norm``, ``linear1`` ->
    ``frame_ffn.layers.0.0``, ``linear2`` -> ``frame_ffn.layers.1``,
    ``norm3`` -> ``frame_ffn_norm``, ``time_weights`` ->
    ``time_weight_proj``, ``temp_attn_inst`` -> ``clip_temporal_attn``,
    ``norm2_inst`` -> ``clip_temporal_attn_norm``, ``self_attn_inst`` ->
    ``clip_self_attn``, ``norm1_inst`` -> ``clip_self_attn_norm``,
    ``linear1_inst`` -> ``clip_ffn.layers.0.0``, ``linear2_inst`` ->
    ``clip_ffn.layers.1``, ``norm3_inst`` -> ``clip_ffn_norm``.

    Args:
        num_layers (int): Decoder layers. Defaults to 6.
        embed_dims (int): Channels C. Defaults to 256.
        num_heads (int): Heads. Defaults to 8.
        num_levels (int): Feature levels. Defaults to 4.
        num_points (int): Points per head and level. Defaults to 4.
        ffn_ratio (float): FFN hidden channels / C. Defaults to 4.
        num_frames (int): Build-time clip length T (frames of the temporal
            attention and window of the circumscribed box). Defaults to 4.
        use_temporal_attn (bool): Temporal cross-attention on the clip
            stream. Defaults to True (reference ``DEC_TEMPORAL``).
        init_cfg (dict or list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 num_layers: int = 6,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 num_levels: int = 4,
                 num_points: int = 4,
                 ffn_ratio: float = 4,
                 num_frames: int = 4,
                 use_temporal_attn: bool = True,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        for name, val in (('num_layers', num_layers), ('num_frames',
                                                       num_frames)):
            if not isinstance(val, int) or val <= 0:
                raise ValueError(f'{name} must be a positive int, got {val!r}')
        if ffn_ratio <= 0:
            raise ValueError(f'ffn_ratio must be > 0, got {ffn_ratio}')
        self.num_layers = num_layers
        self.embed_dims = embed_dims
        self.num_frames = num_frames
        self.layers = ModuleList([
            MDQETwoStreamDecoderLayer(embed_dims, num_heads, num_levels,
                                      num_points, ffn_ratio, num_frames,
                                      use_temporal_attn)
            for _ in range(num_layers)
        ])
        # shared with the head, which applies it before every prediction MLP
        self.norm = nn.LayerNorm(embed_dims)
        self.point2pos_proj = nn.Linear(2, embed_dims)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier on every matrix, then the deformable attention's own
        initialisation (as the reference's ``Transformer_Dec``)."""
        for param in self.parameters():
            if param.dim() > 1:
                nn.init.xavier_uniform_(param)
        for module in self.modules():
            if isinstance(module, MDQEMSDeformAttn):
                module.reset_parameters()

    def init_weights(self) -> None:
        """Reference initialisation, then ``init_cfg`` if one is given."""
        self.reset_parameters()
        super().init_weights()

    def _refine_boxes(self, frame_queries: Tensor, ref_boxes: Tensor,
                      reg_branch: nn.Module) -> Tuple[Tensor, Tensor, Tensor]:
        """Box refinement: returns (boxes, detached boxes, positions)."""
        boxes = (reg_branch(self.norm(frame_queries)) +
                 inverse_sigmoid(ref_boxes)).sigmoid()
        return boxes, boxes.detach(), self.point2pos_proj(boxes[..., :2])

    def _clip_reference(self, ref_boxes: Tensor, num_clips: int,
                        centre: int) -> Tuple[Tensor, Tensor]:
        clip_boxes = circumscribed_clip_box(
            ref_boxes.unflatten(0, (num_clips, -1)), centre, self.num_frames)
        return clip_boxes, self.point2pos_proj(clip_boxes[..., :2])

    def _check_inputs(self, query: Tensor, query_xy: Tensor, memory: Tensor,
                      memory_padding_mask: Optional[Tensor], num_frames: int,
                      tca_frame_inds: Optional[List[int]]) -> None:
        if query.dim() != 3 or query.shape[-1] != self.embed_dims:
            raise ValueError(f'query must be (N*T, Q, {self.embed_dims}), '
                             f'got {tuple(query.shape)}')
        if not isinstance(num_frames, int) or num_frames <= 0 \
                or query.shape[0] % num_frames != 0:
            raise ValueError(f'num_frames={num_frames!r} must be a positive '
                             f'int dividing the {query.shape[0]} query rows')
        if query_xy.shape != query.shape[:2] + (2, ):
            raise ValueError(f'query_xy must be {tuple(query.shape[:2])} + '
                             f'(2,), got {tuple(query_xy.shape)}')
        if memory.dim() != 3 or memory.shape[0] != query.shape[0] \
                or memory.shape[-1] != self.embed_dims:
            raise ValueError(f'memory must be ({query.shape[0]}, S, '
                             f'{self.embed_dims}), got {tuple(memory.shape)}')
        if memory_padding_mask is not None \
                and memory_padding_mask.shape != memory.shape[:2]:
            raise ValueError(f'memory_padding_mask must be '
                             f'{tuple(memory.shape[:2])}, got '
                             f'{tuple(memory_padding_mask.shape)}')
        if tca_frame_inds is not None and (
                len(tca_frame_inds) != self.num_frames
                or not all(0 <= int(i) < num_frames for i in tca_frame_inds)):
            raise ValueError(f'tca_frame_inds must hold {self.num_frames} '
                             f'frame indices in [0, {num_frames}), got '
                             f'{list(tca_frame_inds)}')

    def forward(
            self,
            query: Tensor,
            query_xy: Tensor,
            memory: Tensor,
            memory_padding_mask: Optional[Tensor],
            spatial_shapes: Tensor,
            level_start_index: Tensor,
            num_frames: int,
            reg_branch: nn.Module,
            tca_frame_inds: Optional[List[int]] = None) -> Dict[str, Tensor]:
        """Decode the aligned frame queries of N clips of T' frames.

        Args:
            query (Tensor): Aligned frame queries, shape (N*T', Q, C),
                frame index fastest.
            query_xy (Tensor): Their reference centres in [0, 1], shape
                (N*T', Q, 2).
            memory (Tensor): Encoder output, shape (N*T', S, C).
            memory_padding_mask (Tensor, optional): True at padded tokens,
                shape (N*T', S) bool.
            spatial_shapes (Tensor): shape (L, 2) long.
            level_start_index (Tensor): shape (L,) long.
            num_frames (int): Clip length T' (may differ from the
                build-time ``self.num_frames`` at test time).
            reg_branch (nn.Module): Box MLP, C -> 4.
            tca_frame_inds (list[int], optional): ``self.num_frames`` frame
                indices the temporal attention reads. Defaults to
                :func:`get_tca_frame_inds` (all frames when T' == T).

        Returns:
            dict[str, Tensor]: with L_dec = num_layers + 1 steps:

            - frame_queries: shape (L_dec, N*T', Q, C), raw (before norm).
            - clip_queries: shape (L_dec, N, Q, C), raw (before norm).
            - frame_boxes: cxcywh in [0, 1], shape (L_dec, N*T', Q, 4).
            - clip_boxes: circumscribed cxcywh (detached), shape
              (L_dec, N, Q, 4).
        """
        self._check_inputs(query, query_xy, memory, memory_padding_mask,
                           num_frames, tca_frame_inds)
        num_clips = query.shape[0] // num_frames
        centre = (num_frames - 1) // 2
        if tca_frame_inds is None:
            tca_frame_inds = get_tca_frame_inds(num_frames, self.num_frames)

        with fp32_region(query.device.type):
            query = query.float()
            memory = memory.float()
            tca_memory = select_frames(
                memory.unflatten(0, (num_clips, -1)), tca_frame_inds)
            tca_padding_mask = None
            if memory_padding_mask is not None:
                tca_padding_mask = select_frames(
                    memory_padding_mask.unflatten(0, (num_clips, -1)),
                    tca_frame_inds)

            ref_boxes = torch.cat([
                query_xy.float(),
                torch.full_like(query_xy, INITIAL_BOX_SIZE, dtype=torch.float)
            ], -1)
            clip_queries = query.unflatten(0, (num_clips, -1))[:, centre]
            frame_queries = query
            outputs = dict(
                frame_queries=[],
                clip_queries=[],
                frame_boxes=[],
                clip_boxes=[])
            for layer in [None, *self.layers]:
                if layer is not None:
                    frame_queries, clip_queries = layer(
                        frame_queries, frame_pos, ref_boxes, clip_queries,
                        clip_pos, clip_boxes, memory, memory_padding_mask,
                        tca_memory, tca_padding_mask, spatial_shapes,
                        level_start_index)
                boxes, ref_boxes, frame_pos = self._refine_boxes(
                    frame_queries, ref_boxes, reg_branch)
                clip_boxes, clip_pos = self._clip_reference(
                    ref_boxes, num_clips, centre)
                outputs['frame_queries'].append(frame_queries)
                outputs['clip_queries'].append(clip_queries)
                outputs['frame_boxes'].append(boxes)
                outputs['clip_boxes'].append(clip_boxes)
            return {key: torch.stack(val) for key, val in outputs.items()}

# Copyright (c) OpenMMLab. All rights reserved.
import math
import warnings
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor

from .utils import fp32_region

SAMPLING_MODES = ('point', 'box', 'temporal')


def build_direction_grid(num_heads: int,
                         num_levels: int,
                         num_points: int,
                         scale: float = 8.0) -> Tensor:
    """Fixed sampling rays G of MDQE's deformable attention.

    Head h looks along the direction of angle 2*pi*h/num_heads, normalised
    so that its larger component is 1 (the ray ends on the unit square).
    Point k of a ray sits at (k+1)/num_points of it, times ``scale``:
    ``G[h, l, k] = dir_h * (k + 1) / num_points * scale`` (same for every
    level l).

    Args:
        num_heads (int): Number of attention heads H.
        num_levels (int): Number of (kernel) levels L.
        num_points (int): Number of points K per head and level.
        scale (float): Constant multiplier. Defaults to 8.

    Returns:
        Tensor: shape (H, L, K, 2), (x, y) last.
    """
    thetas = torch.arange(
        num_heads, dtype=torch.float32) * (2.0 * math.pi / num_heads)
    directions = torch.stack([thetas.cos(), thetas.sin()], dim=-1)
    directions = directions / directions.abs().max(-1, keepdim=True)[0]
    ray_fractions = torch.arange(
        1, num_points + 1, dtype=torch.float32) / num_points
    grid = directions[:, None, None, :] * ray_fractions[None, None, :, None]
    return grid.expand(num_heads, num_levels, num_points, 2) * scale


def compute_sampling_locations(mode: str,
                               reference: Tensor,
                               offsets: Tensor,
                               direction_grid: Optional[Tensor] = None,
                               scale: float = 8.0) -> Tensor:
    """Sampling locations of MDQE's deformable attention (spec §1.4).

    * ``'point'`` (encoder): ``loc = ref_xy + offsets / scale``; the
      offsets are in normalised image units, not divided by the level size.
    * ``'box'`` / ``'temporal'`` (decoder): with ``ref = (cx, cy, w, h)``,
      ``loc = ref_xy + (G * 0.5 * ref_wh + clamp(offsets, -scale * ref_wh,
      scale * ref_wh)) / scale``, i.e. fixed rays reaching (k+1)/K of the
      half box plus a learned shift bounded by the box size. For
      ``'temporal'`` the levels L are the frames of the clip.

    Args:
        mode (str): One of ``'point'``, ``'box'``, ``'temporal'``.
        reference (Tensor): shape (B, Nq, 2) xy or (B, Nq, 4) cxcywh, in
            [0, 1]. ``'box'`` and ``'temporal'`` need the 4-vector.
        offsets (Tensor): Raw offsets predicted from the query, shape
            (B, Nq, H, L, K, 2).
        direction_grid (Tensor, optional): The fixed grid G, shape
            (H, L, K, 2) or (1, 1, H, L, K, 2). Required except for
            ``'point'``.
        scale (float): The constant scale. Defaults to 8.

    Returns:
        Tensor: shape (B, Nq, H, L, K, 2), (x, y) in [0, 1] image units.
    """
    if mode not in SAMPLING_MODES:
        raise ValueError(f'mode must be one of {SAMPLING_MODES}, got {mode!r}')
    if offsets.dim() != 6 or offsets.shape[-1] != 2:
        raise ValueError('offsets must have shape (B, Nq, H, L, K, 2), got '
                         f'{tuple(offsets.shape)}')
    ref_xy = reference[..., None, None, None, :2]
    if mode == 'point':
        return ref_xy + offsets / scale
    if reference.shape[-1] != 4:
        raise ValueError(f'mode {mode!r} needs (cx, cy, w, h) reference '
                         f'boxes, got last dim {reference.shape[-1]}')
    if direction_grid is None:
        raise ValueError(f'mode {mode!r} needs the direction grid')
    ref_wh = reference[..., None, None, None, 2:]
    grid = direction_grid.reshape(offsets.shape[2:]).to(offsets)
    bound = ref_wh * scale
    learned = torch.minimum(torch.maximum(offsets, -bound), bound)
    return ref_xy + (grid * 0.5 * ref_wh + learned) / scale


def level_shapes(spatial_shapes: Tensor) -> List[Tuple[int, int]]:
    """(h, w) of every level as Python ints, for the pure-PyTorch path.

    This is one host read of ``spatial_shapes``. The PyTorch path runs where
    mmcv has no kernel (CPU tensors), where such a read costs nothing; on
    CUDA mmcv's kernel takes the tensor as it is and this is never called by
    :class:`MDQEMSDeformAttn`. It is the only place where the attention
    reads a tensor on the host (the host-sync test allows it by name).

    Args:
        spatial_shapes (Tensor): shape (L, 2), (h, w) per level.

    Returns:
        list[tuple[int, int]]: L pairs (h, w).
    """
    return [(int(h), int(w)) for h, w in spatial_shapes.tolist()]


def sample_value_maps(value_maps: Sequence[Tensor],
                      map_levels: Sequence[int],
                      sampling_locations: Tensor,
                      attention_weights: Tensor,
                      weight_divisor: Optional[float] = None) -> Tensor:
    """Bilinear sampling of channel-first value maps, weighted sum per head.

    The pure-PyTorch core of the deformable attention. Unlike mmcv's
    ``multi_scale_deformable_attn_pytorch`` it never stacks the samples of
    all levels: each map is sampled (one ``grid_sample``), weighted and
    summed over its points at once, and the result is added to one output
    buffer, so the largest temporary is one map's samples. The maps are
    taken as given (channel-first, one per kernel level), so no transpose
    of the whole value tensor is needed when the caller produces them in
    that layout (as :class:`MDQEMSDeformAttn` does). Sampling is bilinear
    with ``align_corners=False`` and zero padding, as in mmcv.

    Args:
        value_maps (Sequence[Tensor]): M maps, each (B*H, C/H, h_m, w_m),
            batch-major then head.
        map_levels (Sequence[int]): For each map, the index along the L
            axis of the locations and weights it is sampled with (several
            maps may share one index, e.g. the levels of one frame).
        sampling_locations (Tensor): shape (B, Nq, H, L, K, 2), (x, y) in
            [0, 1].
        attention_weights (Tensor): shape (B, Nq, H, L, K).
        weight_divisor (float, optional): Divide the weights by this.

    Returns:
        Tensor: shape (B, Nq, H * C/H).
    """
    batch, num_query, num_heads, num_levels, num_points, _ = \
        sampling_locations.shape
    if len(value_maps) != len(map_levels) or not value_maps:
        raise ValueError(f'got {len(value_maps)} value maps and '
                         f'{len(map_levels)} map levels')
    head_dims = value_maps[0].shape[1]
    # (L, B*H, Nq, K, 2): each level's grid is one contiguous block
    grids = (2 * sampling_locations - 1).permute(3, 0, 2, 1, 4, 5).reshape(
        num_levels, batch * num_heads, num_query, num_points, 2)
    weights = attention_weights.permute(3, 0, 2, 1, 4).reshape(
        num_levels, batch * num_heads, 1, num_query, num_points)
    if weight_divisor is not None:
        weights = weights / weight_divisor
    output = None
    for value_map, level in zip(value_maps, map_levels):
        # (B*H, C/H, Nq, K), weighted and summed over the K points
        sampled = F.grid_sample(
            value_map,
            grids[level],
            mode='bilinear',
            padding_mode='zeros',
            align_corners=False)
        part = (sampled * weights[level]).sum(-1)
        output = part if output is None else output + part
    return output.view(batch, num_heads * head_dims,
                       num_query).transpose(1, 2).contiguous()


def multi_scale_deformable_attn_fast(value: Tensor, spatial_shapes: Tensor,
                                     sampling_locations: Tensor,
                                     attention_weights: Tensor) -> Tensor:
    """Drop-in replacement of mmcv's ``multi_scale_deformable_attn_pytorch``.

    Same arguments, same result (up to the order of the float sums), but
    the levels are accumulated one by one (:func:`sample_value_maps`)
    instead of being stacked. Like mmcv's function it reads
    ``spatial_shapes`` on the host and assumes the levels are packed in
    order (``level_start_index`` is not needed).

    Args:
        value (Tensor): shape (B, S, H, C/H).
        spatial_shapes (Tensor): shape (L, 2), (h, w) per level.
        sampling_locations (Tensor): shape (B, Nq, H, L, K, 2).
        attention_weights (Tensor): shape (B, Nq, H, L, K).

    Returns:
        Tensor: shape (B, Nq, C).
    """
    batch, _, num_heads, head_dims = value.shape
    shapes = level_shapes(spatial_shapes)
    maps = [
        level.permute(0, 2, 3, 1).reshape(batch * num_heads, head_dims, h, w)
        for level, (h, w) in zip(
            value.split([h * w for h, w in shapes], dim=1), shapes)
    ]
    return sample_value_maps(maps, range(len(maps)), sampling_locations,
                             attention_weights)


def deformable_attn_core(value: Tensor,
                         spatial_shapes: Tensor,
                         level_start_index: Tensor,
                         sampling_locations: Tensor,
                         attention_weights: Tensor,
                         im2col_step: int = 64) -> Tensor:
    """Bilinear multi-scale sampling, weighted sum per head.

    Uses mmcv's CUDA kernel for CUDA tensors and
    :func:`multi_scale_deformable_attn_fast` (pure PyTorch, equal to mmcv's
    ``multi_scale_deformable_attn_pytorch``) otherwise; both sample with
    align_corners=False and zero padding.

    Args:
        value (Tensor): shape (B, S, H, C/H).
        spatial_shapes (Tensor): shape (L, 2) long, (h, w) per level.
        level_start_index (Tensor): shape (L,) long.
        sampling_locations (Tensor): shape (B, Nq, H, L, K, 2).
        attention_weights (Tensor): shape (B, Nq, H, L, K).
        im2col_step (int): CUDA kernel batch chunk. Defaults to 64.

    Returns:
        Tensor: shape (B, Nq, C).
    """
    if value.is_cuda:
        return MultiScaleDeformableAttnFunction.apply(
            value.contiguous(), spatial_shapes, level_start_index,
            sampling_locations.contiguous(), attention_weights.contiguous(),
            im2col_step)
    return multi_scale_deformable_attn_fast(value, spatial_shapes,
                                            sampling_locations,
                                            attention_weights)


@MODELS.register_module()
class MDQEMSDeformAttn(BaseModule):
    """Multi-scale deformable attention of MDQE (spec §1.4).

    The sampling kernel is the standard Deformable-DETR one, but the
    sampling locations differ from mmcv's ``MultiScaleDeformableAttention``:

    * ``mode='point'`` (encoder, reference ``pred_offsets=True``): offsets
      are predicted by ``sampling_offsets`` (a Linear) in normalised image
      units, bias initialised to ``G * 0.05 * lvl_spatial_scales``.
    * ``mode='box'`` (decoder per-frame cross-attention): fixed rays
      ``sampling_offsets`` (a buffer, shape (1, 1, H, L, K, 2)) scaled by the
      half reference box, plus offsets from ``sampling_grid_offsets`` (a
      Linear, zero init) clamped to +-8 box sizes.
    * ``mode='temporal'`` (decoder temporal cross-attention on clip
      queries): as ``'box'`` but the kernel's levels are the
      ``num_frames`` frames. The kernel runs once per feature level (over
      the T frames of that level) with the same locations and weights; the
      per-level results are averaged before ``output_proj``.

    Parameter and buffer names follow the reference implementation, so its
    checkpoints load without renaming: ``value_proj``, ``output_proj``,
    ``attention_weights``, ``sampling_offsets`` (Linear in 'point' mode,
    buffer otherwise), ``sampling_grid_offsets`` (box/temporal only), and
    the buffer ``lvl_spatial_scales`` (1..L for point/box, 2 per frame for
    temporal, int64).

    Everything runs in fp32, also under autocast.

    Args:
        embed_dims (int): Channels C. Defaults to 256.
        num_heads (int): Heads H. Defaults to 8.
        num_levels (int): Feature levels. Defaults to 4.
        num_points (int): Points K per head and kernel level. Defaults to 4.
        mode (str): ``'point'``, ``'box'`` or ``'temporal'``.
            Defaults to ``'point'``.
        num_frames (int, optional): Frames T attended by ``'temporal'``
            (required there, must be None otherwise).
        im2col_step (int): CUDA kernel batch chunk. Defaults to 64.
        init_cfg (dict, optional): Extra initialisation config.
    """

    scale = 8.0

    def __init__(self,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 num_levels: int = 4,
                 num_points: int = 4,
                 mode: str = 'point',
                 num_frames: Optional[int] = None,
                 im2col_step: int = 64,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if mode not in SAMPLING_MODES:
            raise ValueError(
                f'mode must be one of {SAMPLING_MODES}, got {mode!r}')
        for name, val in (('embed_dims', embed_dims), ('num_heads', num_heads),
                          ('num_levels', num_levels),
                          ('num_points', num_points), ('im2col_step',
                                                       im2col_step)):
            if not isinstance(val, int) or val <= 0:
                raise ValueError(f'{name} must be a positive int, got {val!r}')
        if embed_dims % num_heads != 0:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible '
                             f'by num_heads ({num_heads})')
        if mode == 'temporal':
            if not isinstance(num_frames, int) or num_frames <= 0:
                raise ValueError('mode=\'temporal\' needs num_frames as a '
                                 f'positive int, got {num_frames!r}')
        elif num_frames is not None:
            raise ValueError(f'num_frames is only used by mode=\'temporal\', '
                             f'got num_frames={num_frames} with mode={mode!r}')
        head_dims = embed_dims // num_heads
        if head_dims & (head_dims - 1) != 0:
            warnings.warn(f'embed_dims/num_heads = {head_dims} is not a '
                          'power of 2; the CUDA kernel is slower then.')

        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.num_points = num_points
        self.mode = mode
        self.num_frames = num_frames
        self.im2col_step = im2col_step
        # the kernel's "levels": feature levels, or frames for temporal
        self.num_kernel_levels = (
            num_frames if mode == 'temporal' else num_levels)

        if mode == 'temporal':
            lvl_spatial_scales = torch.full((num_frames, ),
                                            2,
                                            dtype=torch.long)
        else:
            lvl_spatial_scales = torch.arange(1, num_levels + 1)
        self.register_buffer('lvl_spatial_scales', lvl_spatial_scales)

        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        num_samples = num_heads * self.num_kernel_levels * num_points
        self.attention_weights = nn.Linear(embed_dims, num_samples)
        if mode == 'point':
            self.sampling_offsets = nn.Linear(embed_dims, num_samples * 2)
        else:
            self.sampling_grid_offsets = nn.Linear(embed_dims, num_samples * 2)
            self.register_buffer(
                'sampling_offsets',
                torch.zeros(1, 1, num_heads, self.num_kernel_levels,
                            num_points, 2))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise as the reference does (spec §1.4)."""
        grid = build_direction_grid(self.num_heads, self.num_kernel_levels,
                                    self.num_points, self.scale)
        with torch.no_grad():
            if self.mode == 'point':
                level_scale = self.lvl_spatial_scales.to(grid).view(
                    1, -1, 1, 1)
                nn.init.zeros_(self.sampling_offsets.weight)
                self.sampling_offsets.bias.copy_(
                    (grid * 0.05 * level_scale).reshape(-1))
            else:
                self.sampling_offsets.copy_(grid[None, None])
                nn.init.zeros_(self.sampling_grid_offsets.weight)
                nn.init.zeros_(self.sampling_grid_offsets.bias)
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def init_weights(self) -> None:
        """Reference initialisation, then ``init_cfg`` if one is given."""
        self.reset_parameters()
        super().init_weights()

    def get_sampling_locations(self, query: Tensor,
                               reference: Tensor) -> Tensor:
        """Sampling locations for ``query`` around ``reference``.

        Args:
            query (Tensor): shape (B, Nq, C).
            reference (Tensor): shape (B, Nq, 2) or (B, Nq, 4) for
                ``'point'``; (B, Nq, 4) cxcywh otherwise.

        Returns:
            Tensor: shape (B, Nq, H, L, K, 2) with L the kernel levels
            (frames for ``'temporal'``).
        """
        batch, num_query = query.shape[:2]
        shape = (batch, num_query, self.num_heads, self.num_kernel_levels,
                 self.num_points, 2)
        if self.mode == 'point':
            offsets = self.sampling_offsets(query).view(shape)
            return compute_sampling_locations(
                'point', reference, offsets, scale=self.scale)
        offsets = self.sampling_grid_offsets(query).view(shape)
        return compute_sampling_locations(self.mode, reference, offsets,
                                          self.sampling_offsets, self.scale)

    def get_attention_weights(self, query: Tensor) -> Tensor:
        """Softmax (over levels x points, per head) attention weights.

        Args:
            query (Tensor): shape (B, Nq, C).

        Returns:
            Tensor: shape (B, Nq, H, L, K).
        """
        batch, num_query = query.shape[:2]
        logits = self.attention_weights(query).view(batch, num_query,
                                                    self.num_heads, -1)
        return F.softmax(logits,
                         -1).view(batch, num_query, self.num_heads,
                                  self.num_kernel_levels, self.num_points)

    def _check_inputs(self, query: Tensor, reference: Tensor, value: Tensor,
                      spatial_shapes: Tensor, level_start_index: Tensor,
                      value_padding_mask: Optional[Tensor]) -> None:
        if query.dim() != 3 or query.shape[-1] != self.embed_dims:
            raise ValueError(f'query must be (B, Nq, {self.embed_dims}), '
                             f'got {tuple(query.shape)}')
        ref_dims = (2, 4) if self.mode == 'point' else (4, )
        if (reference.shape[:2] != query.shape[:2] or reference.dim() != 3
                or reference.shape[-1] not in ref_dims):
            raise ValueError(
                f'reference for mode {self.mode!r} must be (B, Nq, '
                f'{"2 or 4" if self.mode == "point" else 4}) matching the '
                f'query {tuple(query.shape)}, got {tuple(reference.shape)}')
        value_dims = 4 if self.mode == 'temporal' else 3
        if value.dim() != value_dims or value.shape[0] != query.shape[0] \
                or value.shape[-1] != self.embed_dims:
            layout = '(B, T, S, C)' if value_dims == 4 else '(B, S, C)'
            raise ValueError(f'value for mode {self.mode!r} must be '
                             f'{layout} with B={query.shape[0]}, '
                             f'C={self.embed_dims}, got {tuple(value.shape)}')
        if self.mode == 'temporal' and value.shape[1] != self.num_frames:
            raise ValueError(f'temporal attention was built for '
                             f'{self.num_frames} frames, got value with '
                             f'{value.shape[1]} frames')
        if spatial_shapes.shape != (self.num_levels, 2) \
                or level_start_index.shape != (self.num_levels, ):
            raise ValueError(
                f'expected spatial_shapes ({self.num_levels}, 2) and '
                f'level_start_index ({self.num_levels},), got '
                f'{tuple(spatial_shapes.shape)} and '
                f'{tuple(level_start_index.shape)}')
        if value_padding_mask is not None \
                and value_padding_mask.shape != value.shape[:-1]:
            raise ValueError(f'value_padding_mask must have shape '
                             f'{tuple(value.shape[:-1])}, got '
                             f'{tuple(value_padding_mask.shape)}')

    def forward(self,
                query: Tensor,
                reference: Tensor,
                value: Tensor,
                spatial_shapes: Tensor,
                level_start_index: Tensor,
                value_padding_mask: Optional[Tensor] = None) -> Tensor:
        """Deformable attention of ``query`` into ``value``.

        Args:
            query (Tensor): Query with its positional embedding added,
                shape (B, Nq, C).
            reference (Tensor): (B, Nq, 2) xy (or (B, Nq, 4), of which the
                xy is used) for ``'point'``; (B, Nq, 4) cxcywh boxes for
                ``'box'`` and ``'temporal'``. Normalised to [0, 1].
            value (Tensor): shape (B, S, C) for ``'point'``/``'box'``;
                (B, T, S, C) for ``'temporal'`` with T == num_frames.
            spatial_shapes (Tensor): shape (L, 2) long, (h, w) per level.
            level_start_index (Tensor): shape (L,) long.
            value_padding_mask (Tensor, optional): True at padded tokens,
                shape (B, S) or (B, T, S) bool.

        Returns:
            Tensor: shape (B, Nq, C), fp32.
        """
        self._check_inputs(query, reference, value, spatial_shapes,
                           level_start_index, value_padding_mask)
        with fp32_region(query.device.type):
            query = query.float()
            reference = reference.float()
            locations = self.get_sampling_locations(query, reference)
            weights = self.get_attention_weights(query)
            if not value.is_cuda:
                output = self._pytorch_attn(value.float(), spatial_shapes,
                                            locations, weights,
                                            value_padding_mask)
                return self.output_proj(output)
            value = self.value_proj(value.float())
            if value_padding_mask is not None:
                value = value.masked_fill(value_padding_mask[..., None], 0.)
            value = value.unflatten(-1, (self.num_heads, -1))
            if self.mode == 'temporal':
                output = self._temporal_attn(value, spatial_shapes,
                                             level_start_index, locations,
                                             weights)
            else:
                output = deformable_attn_core(value, spatial_shapes,
                                              level_start_index, locations,
                                              weights, self.im2col_step)
            return self.output_proj(output)

    def _pytorch_attn(self, value: Tensor, spatial_shapes: Tensor,
                      locations: Tensor, weights: Tensor,
                      value_padding_mask: Optional[Tensor]) -> Tensor:
        """The attention where mmcv has no kernel (CPU), in pure PyTorch.

        Equal to ``value_proj`` + masking + mmcv's
        ``multi_scale_deformable_attn_pytorch`` (and, for ``'temporal'``,
        the mean over levels of :meth:`_temporal_attn`), up to the order of
        float sums, but faster: ``value_proj`` is applied level by level as
        ``W @ x^T`` so that it writes channel-first maps
        (B*H, C/H, h, w) directly (no transpose copy of the value), and
        :func:`sample_value_maps` accumulates the levels without stacking
        their samples. The temporal mode samples every (frame, level) map
        with its frame's locations, without repeating them per level.

        Args:
            value (Tensor): shape (B, S, C), or (B, T, S, C) for
                ``'temporal'``; fp32, before ``value_proj``.
            spatial_shapes (Tensor): shape (L, 2).
            locations (Tensor): shape (B, Nq, H, L', K, 2).
            weights (Tensor): shape (B, Nq, H, L', K).
            value_padding_mask (Tensor, optional): (B, S) or (B, T, S).

        Returns:
            Tensor: shape (B, Nq, C), before ``output_proj``.
        """
        shapes = level_shapes(spatial_shapes)
        num_tokens = sum(h * w for h, w in shapes)
        if num_tokens != value.shape[-2]:
            raise ValueError(f'spatial_shapes give {num_tokens} tokens but '
                             f'value has {value.shape[-2]}')
        temporal = self.mode == 'temporal'
        batch = value.shape[0]
        num_frames = value.shape[1] if temporal else 1
        head_dims = self.embed_dims // self.num_heads
        # W and b broadcast over the batch: (B, C, C) and (B, C, 1) views
        weight = self.value_proj.weight.expand(batch, -1, -1)
        bias = self.value_proj.bias[None, :, None].expand(batch, -1, 1)
        maps, map_levels = [], []
        for frame in range(num_frames):
            start = 0
            for level, (height, width) in enumerate(shapes):
                end = start + height * width
                tokens = value[:, frame, start:end] if temporal \
                    else value[:, start:end]
                # (B, C, h*w), contiguous: b + W @ x^T
                projected = torch.baddbmm(bias, weight,
                                          tokens.transpose(1, 2))
                if value_padding_mask is not None:
                    level_mask = value_padding_mask[:, frame, start:end] \
                        if temporal else value_padding_mask[:, start:end]
                    projected = projected.masked_fill(level_mask[:, None],
                                                      0.)
                maps.append(
                    projected.view(batch * self.num_heads, head_dims, height,
                                   width))
                map_levels.append(frame if temporal else level)
                start = end
        return sample_value_maps(
            maps,
            map_levels,
            locations,
            weights,
            weight_divisor=len(shapes) if temporal else None)

    def _temporal_attn(self, value: Tensor, spatial_shapes: Tensor,
                       level_start_index: Tensor, locations: Tensor,
                       weights: Tensor) -> Tensor:
        """Per feature level, attend over the T frames; average levels.

        The mean over the L levels of the per-level results is computed in
        one kernel call: the kernel's levels are the T x L (frame, level)
        maps, each (frame, level) is sampled at that frame's locations, and
        the frame's weights are divided by L. This is linear, so it equals
        the per-level mean, with no host-side split of ``value``.

        Args:
            value (Tensor): shape (B, T, S, H, C/H).
            spatial_shapes (Tensor): shape (L, 2).
            level_start_index (Tensor): shape (L,).
            locations (Tensor): shape (B, Nq, H, T, K, 2).
            weights (Tensor): shape (B, Nq, H, T, K).

        Returns:
            Tensor: shape (B, Nq, C), before output_proj.
        """
        num_frames, num_tokens = value.shape[1:3]
        num_levels = spatial_shapes.shape[0]
        kernel_shapes = spatial_shapes.repeat(num_frames, 1)
        frame_starts = torch.arange(
            num_frames, device=value.device) * num_tokens
        kernel_starts = (frame_starts[:, None] +
                         level_start_index[None]).flatten()
        # (B, Nq, H, T, K, ...) -> (B, Nq, H, T * L, K, ...), frame-major
        kernel_locations = locations.unsqueeze(4).repeat(
            1, 1, 1, 1, num_levels, 1, 1).flatten(3, 4)
        kernel_weights = (weights / num_levels).unsqueeze(4).repeat(
            1, 1, 1, 1, num_levels, 1).flatten(3, 4)
        return deformable_attn_core(
            value.flatten(1, 2), kernel_shapes, kernel_starts,
            kernel_locations, kernel_weights, self.im2col_step)

    def extra_repr(self) -> str:
        return (f'mode={self.mode!r}, num_heads={self.num_heads}, '
                f'num_levels={self.num_levels}, '
                f'num_points={self.num_points}, '
                f'num_frames={self.num_frames}')

# Copyright (c) OpenMMLab. All rights reserved.
from typing import Optional

import torch
import torch.nn as nn
from mmcv.cnn.bricks.transformer import FFN
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import BaseModule, ModuleList
from torch import Tensor

from .msda import MDQEMSDeformAttn
from .utils import fp32_region


class MDQEDeformableEncoderLayer(BaseModule):
    """One post-norm encoder layer (spec §1.3).

    ``x = LN(x + MSDA_point(x + pos, ref, x))`` then
    ``x = LN(x + FFN_GELU(x))``, dropout 0.

    Args:
        embed_dims (int): Channels C. Defaults to 256.
        num_heads (int): Heads. Defaults to 8.
        num_levels (int): Feature levels. Defaults to 4.
        num_points (int): Points per head and level. Defaults to 4.
        ffn_ratio (float): FFN hidden channels / C. Defaults to 4.
        init_cfg (dict or list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 num_levels: int = 4,
                 num_points: int = 4,
                 ffn_ratio: float = 4.,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if ffn_ratio <= 0:
            raise ValueError(f'ffn_ratio must be > 0, got {ffn_ratio}')
        self.embed_dims = embed_dims
        self.self_attn = MDQEMSDeformAttn(
            embed_dims=embed_dims,
            num_heads=num_heads,
            num_levels=num_levels,
            num_points=num_points,
            mode='point')
        self.self_attn_norm = nn.LayerNorm(embed_dims)
        self.ffn = FFN(
            embed_dims=embed_dims,
            feedforward_channels=int(embed_dims * ffn_ratio),
            num_fcs=2,
            ffn_drop=0.,
            act_cfg=dict(type='GELU'),
            add_identity=True)
        self.ffn_norm = nn.LayerNorm(embed_dims)

    def forward(self, query: Tensor, query_pos: Tensor,
                reference_points: Tensor, key_padding_mask: Optional[Tensor],
                spatial_shapes: Tensor, level_start_index: Tensor) -> Tensor:
        """Forward one layer.

        Args:
            query (Tensor): shape (B, S, C).
            query_pos (Tensor): shape (B, S, C).
            reference_points (Tensor): shape (B, S, 2).
            key_padding_mask (Tensor, optional): shape (B, S) bool.
            spatial_shapes (Tensor): shape (L, 2) long.
            level_start_index (Tensor): shape (L,) long.

        Returns:
            Tensor: shape (B, S, C).
        """
        attn = self.self_attn(query + query_pos, reference_points, query,
                              spatial_shapes, level_start_index,
                              key_padding_mask)
        query = self.self_attn_norm(query + attn)
        return self.ffn_norm(self.ffn(query))


@MODELS.register_module()
class MDQEDeformableEncoder(BaseModule):
    """MDQE's per-frame deformable encoder (spec §1.3).

    Purely spatial: each frame is a batch item. ``num_layers`` post-norm
    layers with point-mode deformable attention whose reference points are
    the pixel centres of every level (the padded area included, no valid
    ratios), then a final LayerNorm. The input projection, positional and
    level embeddings are built by the detector.

    Reference key -> key here (``transformer_enc.encoder.`` prefix there):
    ``layers.i.self_attn.*`` -> ``layers.i.self_attn.*``;
    ``layers.i.norm1`` -> ``layers.i.self_attn_norm``;
    ``layers.i.linear1`` -> ``layers.i.ffn.layers.0.0``;
    ``layers.i.linear2`` -> ``layers.i.ffn.layers.1``;
    ``layers.i.norm2`` -> ``layers.i.ffn_norm``; ``norm`` -> ``norm``.
    (``transformer_enc.level_embed`` belongs to the detector.)

    Args:
        num_layers (int): Number of layers. Defaults to 6.
        layer_cfg (dict): Keyword arguments of
            :class:`MDQEDeformableEncoderLayer` (embed_dims, num_heads,
            num_levels, num_points, ffn_ratio).
        init_cfg (dict or list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 num_layers: int = 6,
                 layer_cfg: ConfigType = dict(
                     embed_dims=256,
                     num_heads=8,
                     num_levels=4,
                     num_points=4,
                     ffn_ratio=4),
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(
                f'num_layers must be a positive int, got {num_layers!r}')
        self.num_layers = num_layers
        self.layers = ModuleList([
            MDQEDeformableEncoderLayer(**layer_cfg) for _ in range(num_layers)
        ])
        self.embed_dims = self.layers[0].embed_dims
        self.norm = nn.LayerNorm(self.embed_dims)

    def init_weights(self) -> None:
        """Keep the deformable attention's own initialisation."""
        super().init_weights()
        for module in self.modules():
            if isinstance(module, MDQEMSDeformAttn):
                module.reset_parameters()

    @staticmethod
    def get_reference_points(spatial_shapes: Tensor,
                             device: Optional[torch.device] = None,
                             num_tokens: Optional[int] = None) -> Tensor:
        """Pixel centres ((j + .5) / W, (i + .5) / H) of every level.

        Computed from ``spatial_shapes`` on its device, without reading it
        on the host, when ``num_tokens`` (S) is given (the encoder passes
        its query length); otherwise S is read from ``spatial_shapes``.

        Args:
            spatial_shapes (Tensor): shape (L, 2), (h, w) per level.
            device (torch.device, optional): Output device. Defaults to
                the device of ``spatial_shapes``.
            num_tokens (int, optional): S, the sum of h * w.

        Returns:
            Tensor: shape (S, 2), (x, y), levels concatenated row-major.
        """
        shapes = spatial_shapes.to(device) if device is not None \
            else spatial_shapes
        sizes = shapes.prod(-1)
        ends = sizes.cumsum(0)
        if num_tokens is None:
            num_tokens = int(ends[-1]) if ends.numel() else 0
        token = torch.arange(num_tokens, device=shapes.device)
        # level of every token, and its index inside that level
        level = torch.bucketize(token, ends, right=True)
        level = level.clamp(max=max(shapes.shape[0] - 1, 0))
        local = token - (ends - sizes)[level]
        height, width = shapes[level, 0], shapes[level, 1]
        rows, cols = local // width, local % width
        # the same float32 operations as (arange(n) + 0.5) / n per axis
        xs = (cols.float() + 0.5) / width.clamp(min=1).float()
        ys = (rows.float() + 0.5) / height.clamp(min=1).float()
        return torch.stack([xs, ys], -1)

    def forward(self, query: Tensor, query_pos: Tensor,
                key_padding_mask: Optional[Tensor], spatial_shapes: Tensor,
                level_start_index: Tensor) -> Tensor:
        """Encode the flattened multi-level features of each frame.

        Args:
            query (Tensor): Flattened features, shape (N*T, S, C).
            query_pos (Tensor): Positional + level embedding, shape
                (N*T, S, C).
            key_padding_mask (Tensor, optional): True at padded tokens,
                shape (N*T, S) bool.
            spatial_shapes (Tensor): shape (L, 2) long.
            level_start_index (Tensor): shape (L,) long.

        Returns:
            Tensor: shape (N*T, S, C), fp32, after the final LayerNorm.
        """
        if query.dim() != 3 or query_pos.shape != query.shape:
            raise ValueError('query and query_pos must both be (N*T, S, C), '
                             f'got {tuple(query.shape)} and '
                             f'{tuple(query_pos.shape)}')
        with fp32_region(query.device.type):
            query = query.float()
            query_pos = query_pos.float()
            num_tokens = query.shape[1]
            if spatial_shapes.is_cuda:
                # checked on the device, without a host synchronisation;
                # on the CPU the attention checks it with a clear message
                torch._assert_async(
                    spatial_shapes.prod(-1).sum() == num_tokens,
                    f'spatial_shapes do not give the {num_tokens} tokens of '
                    'the query')
            reference_points = self.get_reference_points(
                spatial_shapes, query.device, num_tokens)
            reference_points = reference_points[None].expand(
                query.shape[0], -1, -1)
            for layer in self.layers:
                query = layer(query, query_pos, reference_points,
                              key_padding_mask, spatial_shapes,
                              level_start_index)
            return self.norm(query)

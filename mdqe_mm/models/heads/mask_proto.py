# Copyright (c) OpenMMLab. All rights reserved.
from typing import Optional, Sequence

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from mmdet.registry import MODELS
from mmdet.utils import OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor


def _default_proto_norm_groups(channels: int) -> int:
    """GroupNorm groups of the reference mask net: 32, else 24."""
    return 32 if channels % 32 == 0 else 24


@MODELS.register_module()
class MDQEMaskPrototypeNet(BaseModule):
    """Stride-4 mask prototypes of MDQE (YOLACT-style "Mask Net").

    The net is a small top-down FPN over the encoder output of one frame:

    - ``x = GELU(GN(conv3x3(F2)))`` on the stride-32 level;
    - ``x = GELU(GN(conv3x3(adapter1(F1) + up_nearest(x))))`` at stride 16;
    - ``x = GELU(GN(conv3x3(adapter2(F0) + up_nearest(x))))`` at stride 8;
    - ``DWSepConv5x5(C->C) + GN + ReLU``, then a depth-wise
      ``ConvTranspose2d(k=1, s=2, output_padding=1)`` (zero-interleaved x2
      upsampling to stride 4), then ``DWSepConv5x5(C->P) + GN + ReLU``.

    Every operation is a 2D op on one frame, so the prototypes of a frame do
    not depend on the other frames of the clip: they can be computed once per
    frame and reused by every overlapping clip at inference. The ReLU at the
    end makes the prototypes non-negative.

    Args:
        embed_dims (int): Channels C of the encoder output. Defaults to 256.
        num_prototypes (int, optional): Number of prototypes P. Defaults to
            ``embed_dims // 8`` (32 for R50, 24 for Swin-L) as in the paper.
        fpn_norm_groups (int): GroupNorm groups of the three 3x3 convs.
            Defaults to 8.
        out_norm_groups (int, optional): GroupNorm groups of the two
            depth-wise separable output blocks. Defaults to the reference rule
            (32 when the channels divide by 32, else 24), applied per block.
            Set it explicitly for tiny models (e.g. 4 for P=8).
        init_cfg (dict or list[dict], optional): Initialization config.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_prototypes: Optional[int] = None,
                 fpn_norm_groups: int = 8,
                 out_norm_groups: Optional[int] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_prototypes is None:
            num_prototypes = embed_dims // 8
        if num_prototypes < 1:
            raise ValueError('num_prototypes must be >= 1, got '
                             f'{num_prototypes} (embed_dims={embed_dims})')
        self.embed_dims = embed_dims
        self.num_prototypes = num_prototypes
        mid_groups = out_norm_groups or _default_proto_norm_groups(embed_dims)
        out_groups = out_norm_groups or _default_proto_norm_groups(
            num_prototypes)
        for name, channels, groups in (('fpn_norm_groups', embed_dims,
                                        fpn_norm_groups),
                                       ('out_norm_groups', embed_dims,
                                        mid_groups), ('out_norm_groups',
                                                      num_prototypes,
                                                      out_groups)):
            if channels % groups != 0:
                raise ValueError(
                    f'{name}={groups} does not divide {channels} channels; '
                    'set fpn_norm_groups/out_norm_groups explicitly for '
                    f'embed_dims={embed_dims}, '
                    f'num_prototypes={num_prototypes}')

        def fpn_conv() -> ConvModule:
            return ConvModule(
                embed_dims,
                embed_dims,
                3,
                padding=1,
                bias=True,
                norm_cfg=dict(type='GN', num_groups=fpn_norm_groups),
                act_cfg=dict(type='GELU'))

        self.lay1 = fpn_conv()
        self.lay2 = fpn_conv()
        self.lay3 = fpn_conv()
        self.adapter1 = nn.Conv2d(embed_dims, embed_dims, 1)
        self.adapter2 = nn.Conv2d(embed_dims, embed_dims, 1)
        self.out_lay1 = DepthwiseSeparableConvModule(
            embed_dims,
            embed_dims,
            5,
            padding=2,
            bias=True,
            dw_norm_cfg=None,
            dw_act_cfg=None,
            pw_norm_cfg=dict(type='GN', num_groups=mid_groups),
            pw_act_cfg=dict(type='ReLU'))
        self.out_uplay = nn.ConvTranspose2d(
            embed_dims,
            embed_dims,
            1,
            stride=2,
            output_padding=1,
            groups=embed_dims)
        self.out_lay2 = DepthwiseSeparableConvModule(
            embed_dims,
            num_prototypes,
            5,
            padding=2,
            bias=True,
            dw_norm_cfg=None,
            dw_act_cfg=None,
            pw_norm_cfg=dict(type='GN', num_groups=out_groups),
            pw_act_cfg=dict(type='ReLU'))

    def init_weights(self) -> None:
        """Default init, then zero biases on the lateral adapters.

        The reference zeroes every Conv2d bias of its mask head; the
        ConvModules already start with zero biases, the plain adapters would
        keep PyTorch's uniform default.
        """
        super().init_weights()
        for adapter in (self.adapter1, self.adapter2):
            nn.init.zeros_(adapter.bias)

    def forward(self, mlvl_feats: Sequence[Tensor]) -> Tensor:
        """Compute the prototypes of every frame independently.

        Args:
            mlvl_feats (Sequence[Tensor]): encoder maps of the frames, from
                the finest level: stride 8, 16, 32 (extra levels are
                ignored), each of shape (M, C, H_l, W_l), M frames.

        Returns:
            Tensor: prototypes, shape (M, P, 2*H_0, 2*W_0), i.e. stride 4,
            values >= 0.
        """
        if len(mlvl_feats) < 3:
            raise ValueError('MDQEMaskPrototypeNet needs the stride 8/16/32 '
                             f'levels, got {len(mlvl_feats)} level(s)')
        feat_s8, feat_s16, feat_s32 = mlvl_feats[:3]
        x = self.lay1(feat_s32)
        lateral = self.adapter1(feat_s16)
        x = self.lay2(
            lateral +
            F.interpolate(x, size=lateral.shape[-2:], mode='nearest'))
        lateral = self.adapter2(feat_s8)
        x = self.lay3(
            lateral +
            F.interpolate(x, size=lateral.shape[-2:], mode='nearest'))
        return self.out_lay2(self.out_uplay(self.out_lay1(x)))

# Copyright (c) OpenMMLab. All rights reserved.
# A tiny MDQE for CPU smoke tests and quick-start runs: ResNet-18 with 16
# base channels, C=32, 1 encoder layer, 2 decoder layers (3 supervised
# outputs), 8x8 query grid, T=2. Same code paths as the R50 model.
_base_ = './mdqe_r50.py'

mdqe_num_frames = 2
mdqe_embed_dims = 32
mdqe_num_classes = 3

model = dict(
    num_frames=mdqe_num_frames,
    backbone=dict(depth=18, base_channels=16, init_cfg=None),
    neck=dict(
        in_channels=[32, 64, 128],
        out_channels=mdqe_embed_dims,
        norm_cfg=dict(type='GN', num_groups=8)),
    positional_encoding=dict(num_feats=mdqe_embed_dims // 2),
    encoder=dict(
        num_layers=1,
        layer_cfg=dict(
            embed_dims=mdqe_embed_dims, num_heads=4, num_points=2,
            ffn_ratio=2)),
    query_selection=dict(
        num_classes=mdqe_num_classes,
        embed_dims=mdqe_embed_dims,
        num_queries=64,  # 8 x 8 grid
        embed_channels=16,
        train_window=2),
    track_head=dict(
        num_classes=mdqe_num_classes,
        embed_dims=mdqe_embed_dims,
        decoder=dict(
            num_layers=2,
            embed_dims=mdqe_embed_dims,
            num_heads=4,
            num_points=2,
            ffn_ratio=2),
        # 32 prototypes as in the R50 model (C // 8 there). With 8, the ReLU
        # prototypes and tanh coefficients of this from-scratch tiny model
        # collapse to all-negative coefficients (mask logits capped at 0,
        # every mask empty) within ~50 steps; 32 learn.
        mask_proto=dict(
            embed_dims=mdqe_embed_dims, num_prototypes=32, out_norm_groups=8)))

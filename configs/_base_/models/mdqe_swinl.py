# Copyright (c) OpenMMLab. All rights reserved.
# MDQE with a SwinV2-L backbone (MDQE_SPEC §6 "swinl_*"): mmpretrain's
# SwinTransformerV2 'large' (C=192, depths 2/2/18/2, heads 6/12/24/48),
# windows 12/12/12/6 as the reference builds them (window_size // 2 in the
# last stage; the checkpoint name's "window24_384" notwithstanding), drop
# path 0.2, no frozen stage, stages 2-4 out (strides 8/16/32, 384/768/1536
# channels) with a LayerNorm each; MDQE's hidden size C is 192.
# Needs mmpretrain (an optional dependency): see configs/mdqe/README.md.
# Configs using it import mmpretrain's models: custom_imports = dict(
# imports=['mdqe_mm', 'mmpretrain.models'], allow_failed_imports=False).
_base_ = './mdqe_r50.py'

mdqe_embed_dims = 192  # C (HIDDEN_DIM)
# ImageNet-22k SwinV2-L w12 192px, the backbone the reference starts from
# (microsoft/swinv2-large-patch4-window12-192-22k), in mmpretrain's layout
swinv2_l_in21k = 'https://download.openmmlab.com/mmclassification/v0/' \
    'swin-v2/pretrain/swinv2-large-w12_3rdparty_in21k-192px_20220803-' \
    'd9073fee.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.SwinTransformerV2',
        arch='large',
        img_size=192,
        window_size=[12, 12, 12, 6],
        drop_path_rate=0.2,
        out_indices=(1, 2, 3),
        # pad maps smaller than a window (the reference always pads)
        pad_small_map=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=swinv2_l_in21k, prefix='backbone.')),
    neck=dict(in_channels=[384, 768, 1536], out_channels=mdqe_embed_dims),
    positional_encoding=dict(num_feats=mdqe_embed_dims // 2),
    encoder=dict(layer_cfg=dict(embed_dims=mdqe_embed_dims)),
    query_selection=dict(embed_dims=mdqe_embed_dims),
    track_head=dict(
        embed_dims=mdqe_embed_dims,
        decoder=dict(embed_dims=mdqe_embed_dims),
        mask_proto=dict(
            embed_dims=mdqe_embed_dims, num_prototypes=mdqe_embed_dims // 8)))

# Copyright (c) OpenMMLab. All rights reserved.
# mmdet's stock Mask2FormerVideo (YouTube-VIS 2021 recipe) shrunk for CPU
# tests, on the synthetic occlusion videos: the base of the mixing configs
# that add one of MDQE's ideas to a tiny Mask2FormerVideo. Nothing of MDQE
# is switched on here, so a mixing config on top of it holds only its
# combination's lines, and becomes the full-size model on real data when
# its `_base_` is swapped for the stock config:
#   _base_ = 'mmdet::mask2former_vis/mask2former_r50_8xb2-8e_youtubevis2021.py'
# Against the stock config: ResNet-18 with 16 base channels (no pretrained
# weights), 32 channels, 1 pixel-decoder layer, 3 decoder layers, 10
# queries, 4 classes, 1024 sampled points; the synthetic data, VISMetric and
# the short CPU schedule of ./synthetic_vis_data.py.
_base_ = [
    'mmdet::mask2former_vis/mask2former_r50_8xb2-8e_youtubevis2021.py',
    './synthetic_vis_data.py'
]
custom_imports = dict(imports=['mdqe_mm'], allow_failed_imports=False)

num_classes = 4  # synthetic_vis_num_classes
embed_dims = 32
decoder_layer = dict(
    self_attn_cfg=dict(embed_dims=embed_dims, num_heads=4),
    cross_attn_cfg=dict(embed_dims=embed_dims, num_heads=4),
    ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=64))
model = dict(
    backbone=dict(depth=18, base_channels=16, init_cfg=None),
    track_head=dict(
        in_channels=[16, 32, 64, 128],
        feat_channels=embed_dims,
        out_channels=embed_dims,
        num_classes=num_classes,
        num_queries=10,
        pixel_decoder=dict(
            norm_cfg=dict(type='GN', num_groups=8),
            encoder=dict(
                num_layers=1,
                layer_cfg=dict(
                    self_attn_cfg=dict(
                        embed_dims=embed_dims, num_heads=4, num_points=2),
                    ffn_cfg=dict(
                        embed_dims=embed_dims, feedforward_channels=64))),
            positional_encoding=dict(num_feats=embed_dims // 2)),
        positional_encoding=dict(num_feats=embed_dims // 2),
        transformer_decoder=dict(num_layers=3, layer_cfg=decoder_layer),
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1]),
        train_cfg=dict(num_points=1024)),
    init_cfg=None)

train_dataloader = {{_base_.synthetic_vis_train_dataloader}}
val_dataloader = {{_base_.synthetic_vis_val_dataloader}}
val_evaluator = {{_base_.synthetic_vis_val_evaluator}}
# Not `test_* = val_*`: a `{{_base_.x}}` value is one object, and the first
# merge pops its `_delete_`, so a second use would merge into the stock
# test settings (dataset_version, format_only) instead of replacing them.
test_dataloader = dict(
    _delete_=True,
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset={{_base_.synthetic_vis_val_dataloader.dataset}})
test_evaluator = dict(
    _delete_=True,
    type='VISMetric',
    ann_file={{_base_.synthetic_vis_val_evaluator.ann_file}})

max_iters = 2000  # synthetic_vis_max_iters
train_cfg = {{_base_.synthetic_vis_train_cfg}}
param_scheduler = dict(end=max_iters, milestones=[int(max_iters * 0.9)])
default_hooks = dict(checkpoint=dict(interval=max_iters))

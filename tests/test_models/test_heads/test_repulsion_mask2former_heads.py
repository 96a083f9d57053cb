# Copyright (c) OpenMMLab. All rights reserved.
"""The repulsion variants of mmdet's Mask2Former heads: the losses they
compute are the repulsion loss over the matched pairs, with nearby sets
restricted to one image / clip."""
import copy

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

import mdqe_mm  # noqa: F401
from mdqe_mm.models.heads import repulsion_mask_loss
from mdqe_mm.models.losses import InterInstanceMaskRepulsionLoss

C = 32


def head_cfg(head_type, video):
    """A tiny Mask2Former (track) head config."""
    layer = dict(embed_dims=C, num_heads=4, dropout=0.0, batch_first=True)
    cfg = dict(
        type=head_type,
        in_channels=[8, 16, 32, 64],
        strides=[4, 8, 16, 32],
        feat_channels=C,
        out_channels=C,
        num_classes=3,
        num_queries=6,
        num_transformer_feat_level=3,
        pixel_decoder=dict(
            type='MSDeformAttnPixelDecoder',
            num_outs=3,
            norm_cfg=dict(type='GN', num_groups=8),
            act_cfg=dict(type='ReLU'),
            encoder=dict(
                num_layers=1,
                layer_cfg=dict(
                    self_attn_cfg=dict(
                        embed_dims=C,
                        num_heads=4,
                        num_levels=3,
                        num_points=2,
                        batch_first=True),
                    ffn_cfg=dict(embed_dims=C, feedforward_channels=64))),
            positional_encoding=dict(num_feats=C // 2, normalize=True)),
        enforce_decoder_input_project=False,
        positional_encoding=dict(num_feats=C // 2, normalize=True),
        transformer_decoder=dict(
            return_intermediate=True,
            num_layers=1,
            layer_cfg=dict(
                self_attn_cfg=layer,
                cross_attn_cfg=layer,
                ffn_cfg=dict(embed_dims=C, feedforward_channels=64)),
            init_cfg=None),
        loss_cls=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=2.0,
            reduction='mean',
            class_weight=[1.0] * 3 + [0.1]),
        loss_mask=dict(
            type='InterInstanceMaskRepulsionLoss',
            loss_weight_bce=5.0,
            loss_weight_dice=5.0),
        loss_dice=None,
        train_cfg=dict(
            num_points=50,
            oversample_ratio=3.0,
            importance_sample_ratio=0.75,
            assigner=dict(
                type='HungarianAssigner',
                match_costs=[
                    dict(type='ClassificationCost', weight=2.0),
                    dict(
                        type='CrossEntropyLossCost',
                        weight=5.0,
                        use_sigmoid=True),
                    dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0)
                ]),
            sampler=dict(type='MaskPseudoSampler')))
    if video:
        cfg['num_frames'] = 2
        cfg['positional_encoding'] = dict(
            type='SinePositionalEncoding3D', num_feats=C // 2, normalize=True)
    else:
        cfg['num_things_classes'] = cfg.pop('num_classes')
        cfg['num_stuff_classes'] = 0
    return cfg


def square(size, y0, x0, side):
    mask = torch.zeros(size)
    mask[..., y0:y0 + side, x0:x0 + side] = 1
    return mask


@pytest.fixture
def all_pixel_points(monkeypatch):
    """Make the heads sample every pixel centre instead of random points."""

    def pixel_centres(mask_preds, _, num_points, *args):
        num, _, height, width = mask_preds.shape
        ys, xs = torch.meshgrid(
            (torch.arange(height) + 0.5) / height,
            (torch.arange(width) + 0.5) / width,
            indexing='ij')
        points = torch.stack([xs.flatten(), ys.flatten()], -1)
        return points[None].expand(num, -1, -1).to(mask_preds)

    monkeypatch.setattr(repulsion_mask_loss,
                        'get_uncertain_point_coords_with_randomness',
                        pixel_centres)


@pytest.mark.parametrize('video', [False, True])
def test_head_losses_equal_dense_repulsion_loss(video, all_pixel_points):
    """With every pixel as a point, the head's mask losses are the dense
    repulsion loss over its matched pairs, each image / clip separate."""
    register_all_modules()
    head_type = ('RepulsionMask2FormerTrackHead'
                 if video else 'RepulsionMask2FormerHead')
    head = MODELS.build(ConfigDict(head_cfg(head_type, video)))
    torch.manual_seed(0)
    num_frames, size = (2 if video else 1), (12, 16)
    # image / clip 0: squares 0 and 1 overlap, square 2 is apart; image 1:
    # no pair overlaps, but its square 0 lies on image 0's square 2, so a
    # nearby set that crossed images would change the union
    layouts = [[(1, 1, 6), (3, 4, 6), (8, 12, 3)],
               [(8, 11, 4), (1, 1, 3), (1, 9, 3)]]
    truly_nearby = [{(0, 1), (1, 0)}, set()]
    gts = []
    for layout in layouts:
        masks = torch.stack([
            square((num_frames, ) + size, y, x, side) for y, x, side in layout
        ])
        if video:
            masks[1, 1] = 0  # absent in frame 1
        gt = InstanceData(labels=torch.tensor([0, 1, 2]))
        gt.masks = masks if video else masks[:, 0]
        gts.append(gt)
    num_queries = 6
    cls_scores = torch.randn(2, num_queries, 4)
    mask_shape = (2, num_queries) + ((num_frames, ) if video else ()) + size
    mask_preds = torch.randn(mask_shape, requires_grad=True)
    metas = [dict(img_shape=size, pad_shape=size)] * 2

    # the matching the head will make (same random points: reseed)
    torch.manual_seed(1)
    targets = head.get_targets([cls_scores[i] for i in range(2)],
                               [mask_preds[i] for i in range(2)], gts, metas)
    torch.manual_seed(1)
    _, loss_mask, loss_dice = head._loss_by_feat_single(
        cls_scores, mask_preds, gts, metas)

    mask_weights = torch.stack(targets[3])
    pos_preds = mask_preds[mask_weights > 0]
    pos_targets = torch.cat(targets[2]).float()
    if not video:
        pos_preds, pos_targets = pos_preds[:, None], pos_targets[:, None]
    assert pos_preds.shape[0] == 6
    # nearby by hand, from which square of which image each pair has
    corner = {
        (i, y * size[1] + x): k
        for i, layout in enumerate(layouts)
        for k, (y, x, _) in enumerate(layout)
    }
    image = [0, 0, 0, 1, 1, 1]
    square_of = [
        corner[(i, int(t.argmax()))]
        for i, t in zip(image, pos_targets.flatten(1))
    ]
    nearby = torch.tensor([[
        i == j or (image[i] == image[j] and
                   (square_of[i], square_of[j]) in truly_nearby[image[i]])
        for j in range(6)
    ] for i in range(6)])
    crossing = nearby | torch.tensor([[
        square_of[i] == 2 and image[i] == 0 and square_of[j] == 0
        and image[j] == 1 for j in range(6)
    ] for i in range(6)])
    wrong = InterInstanceMaskRepulsionLoss(5.0, 5.0)(
        pos_preds, pos_targets, avg_factor=6, nearby=crossing)
    assert not torch.allclose(wrong['loss_dice'], loss_dice)
    dense = InterInstanceMaskRepulsionLoss(5.0, 5.0)(
        pos_preds, pos_targets, avg_factor=6, nearby=nearby)
    torch.testing.assert_close(loss_mask, dense['loss_mask'])
    torch.testing.assert_close(loss_dice, dense['loss_dice'])
    (loss_mask + loss_dice).backward()
    assert mask_preds.grad.abs().sum() > 0


def test_head_config_errors():
    register_all_modules()
    cfg = ConfigDict(head_cfg('RepulsionMask2FormerHead', video=False))
    bad = copy.deepcopy(cfg)
    bad['loss_dice'] = dict(type='DiceLoss')
    with pytest.raises(ValueError, match='set loss_dice=None'):
        MODELS.build(bad)
    bad = copy.deepcopy(cfg)
    bad['loss_mask'] = dict(type='CrossEntropyLoss', use_sigmoid=True)
    with pytest.raises(TypeError, match='InterInstanceMaskRepulsionLoss'):
        MODELS.build(bad)

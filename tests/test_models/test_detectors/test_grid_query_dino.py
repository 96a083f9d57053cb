# Copyright (c) OpenMMLab. All rights reserved.
"""GridQueryDINO: DINO whose queries come from the grid selection."""
import os.path as osp

import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.structures import InstanceData

import mdqe_mm  # noqa: F401
from mdqe_mm.models.detectors.grid_query_dino import peak_tokens
from mdqe_mm.models.necks import level_start_index

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(__file__))))
CONFIG = osp.join(REPO_ROOT, 'configs', 'mixing',
                  'dino_r50_grid-query_overlap-giou_synthetic-coco.py')


def test_peak_tokens_plain():
    shapes = torch.tensor([[4, 6], [2, 3]])
    xy = torch.tensor([[[0.0, 0.0], [0.99, 0.99], [0.5, 0.26], [1.0, 0.0]]])
    # level 1 starts after 24 tokens; row = floor(y * H), col = floor(x * W)
    expected = [24 + 0 * 3 + 0, 24 + 1 * 3 + 2, 24 + 0 * 3 + 1, 24 + 0 * 3 + 2]
    assert peak_tokens(xy, shapes, 1).tolist() == [expected]
    assert level_start_index(shapes).tolist() == [0, 24]


def test_queries_are_the_grid_selection():
    register_all_modules()
    cfg = Config.fromfile(CONFIG)
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert not hasattr(model, 'query_embedding')
    assert not any('query_embedding' in k for k in model.state_dict())
    assert model.query_selection.num_queries == model.num_queries == 100
    model.eval()
    torch.manual_seed(0)
    images = torch.randn(2, 3, 96, 160)
    samples = []
    for _ in range(2):
        sample = DetDataSample(
            metainfo=dict(
                img_shape=(96, 160),
                batch_input_shape=(96, 160),
                pad_shape=(96, 160)))
        samples.append(sample)
    with torch.no_grad():
        feats = model.extract_feat(images)
        encoder_inputs, _ = model.pre_transformer(feats, samples)
        encoder_outputs = model.forward_encoder(**encoder_inputs)
        decoder_inputs, head_inputs = model.pre_decoder(**encoder_outputs)
        selection = model.query_selection(
            encoder_outputs['memory'], encoder_outputs['spatial_shapes'],
            level_start_index(encoder_outputs['spatial_shapes']), 1)
    assert head_inputs == {}
    torch.testing.assert_close(decoder_inputs['query'], selection['query'])
    assert decoder_inputs['reference_points'].shape == (2, 100, 4)
    # the reference boxes are DINO's encoder proposals at the peak tokens
    output_memory, proposals = model.gen_encoder_output_proposals(
        encoder_outputs['memory'], encoder_outputs['memory_mask'],
        encoder_outputs['spatial_shapes'])
    tokens = peak_tokens(selection['query_xy'],
                         encoder_outputs['spatial_shapes'], 0)
    branch = model.bbox_head.reg_branches[model.decoder.num_layers]
    for b in range(2):
        expected = (branch(output_memory[b, tokens[b]]) +
                    proposals[b, tokens[b]]).sigmoid()
        torch.testing.assert_close(decoder_inputs['reference_points'][b],
                                   expected)


def test_training_losses_include_the_selection():
    register_all_modules()
    cfg = Config.fromfile(CONFIG)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    torch.manual_seed(1)
    images = torch.randn(1, 3, 96, 160)
    sample = DetDataSample(
        metainfo=dict(
            img_shape=(96, 160),
            batch_input_shape=(96, 160),
            pad_shape=(96, 160)))
    gt = InstanceData()
    gt.bboxes = torch.tensor([[10., 10., 60., 50.], [40., 30., 100., 90.]])
    gt.labels = torch.tensor([0, 2])
    sample.gt_instances = gt  # boxes only: the selection draws them
    losses = model.loss(images, [sample])
    for key in ('loss_sem', 'loss_reid_ctt', 'loss_cls', 'loss_iou',
                'enc_loss_cls', 'dn_loss_bbox'):
        assert key in losses and torch.isfinite(losses[key]), key
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    grads = model.query_selection.rpn_cls_embed.layers[-1].weight.grad
    assert grads is not None and grads.abs().sum() > 0

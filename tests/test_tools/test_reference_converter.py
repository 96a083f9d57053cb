# Copyright (c) OpenMMLab. All rights reserved.
"""The reference-checkpoint converter, on a state dict laid out like the
released R50 MDQE (MinghanLi/MDQE_CVPR2023, Detectron2 names)."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config

from .conftest import REPO_ROOT

OVIS_CONFIG = osp.join(REPO_ROOT, 'configs', 'mdqe',
                       'mdqe_r50_8xb2-12k_ovis.py')
C, HEADS, LEVELS, POINTS, FRAMES, CLASSES = 256, 8, 4, 4, 4, 25


@pytest.fixture(scope='module')
def converter(load_tool):
    return load_tool('tools/model_converters/mdqe_reference_to_mmdet.py')


def reference_shapes():
    """Keys and shapes of the reference R50 OVIS model's state dict.

    Written from the reference modules: Detectron2 ResNet-50 with
    FrozenBatchNorm2d (4 buffers), ``mdqe.input_proj``, ``Transformer_Enc``,
    ``Transformer_Dec`` (whose decoder holds the shared ``bbox_embed``,
    ``norm`` and ``point2pos_proj`` a second time) and ``SetCriterion``.
    """
    shapes = {}

    def frozen_bn(prefix, channels):
        for name in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes[f'{prefix}.{name}'] = (channels, )

    def linear(prefix, cin, cout):
        shapes[f'{prefix}.weight'] = (cout, cin)
        shapes[f'{prefix}.bias'] = (cout, )

    def norm(prefix, channels=C):
        shapes[f'{prefix}.weight'] = (channels, )
        shapes[f'{prefix}.bias'] = (channels, )

    def conv(prefix, cout, cin, k, bias=True):
        shapes[f'{prefix}.weight'] = (cout, cin, k, k)
        if bias:
            shapes[f'{prefix}.bias'] = (cout, )

    def mlp(prefix, cout):
        linear(f'{prefix}.layers.0', C, C)
        linear(f'{prefix}.layers.1', C, C)
        linear(f'{prefix}.layers.2', C, cout)

    def msda(prefix, kernel_levels, scales, predicted_offsets):
        shapes[f'{prefix}.lvl_spatial_scales'] = (kernel_levels, )
        linear(f'{prefix}.value_proj', C, C)
        linear(f'{prefix}.output_proj', C, C)
        samples = HEADS * kernel_levels * POINTS
        linear(f'{prefix}.attention_weights', C, samples)
        if predicted_offsets:
            linear(f'{prefix}.sampling_offsets', C, 2 * samples)
        else:
            shapes[f'{prefix}.sampling_offsets'] = (1, 1, HEADS, kernel_levels,
                                                    POINTS, 2)
            linear(f'{prefix}.sampling_grid_offsets', C, 2 * samples)

    def mha(prefix):
        shapes[f'{prefix}.in_proj_weight'] = (3 * C, C)
        shapes[f'{prefix}.in_proj_bias'] = (3 * C, )
        linear(f'{prefix}.out_proj', C, C)

    backbone = 'detr.backbone.0.backbone'
    shapes[f'{backbone}.stem.conv1.weight'] = (64, 3, 7, 7)
    frozen_bn(f'{backbone}.stem.conv1.norm', 64)
    cin = 64
    resnet50_stages = ((3, 64), (4, 128), (6, 256), (3, 512))
    for stage, (blocks, width) in enumerate(resnet50_stages, start=2):
        cout = width * 4
        for block in range(blocks):
            prefix = f'{backbone}.res{stage}.{block}'
            if block == 0:
                conv(f'{prefix}.shortcut', cout, cin, 1, bias=False)
                frozen_bn(f'{prefix}.shortcut.norm', cout)
            block_in = cin if block == 0 else cout
            convs = ((width, block_in, 1), (width, width, 3), (cout, width, 1))
            for index, (co, ci, k) in enumerate(convs, start=1):
                conv(f'{prefix}.conv{index}', co, ci, k, bias=False)
                frozen_bn(f'{prefix}.conv{index}.norm', co)
        cin = cout
    for level, channels in enumerate((512, 1024, 2048)):
        conv(f'detr.input_proj.{level}.0', C, channels, 1)
        norm(f'detr.input_proj.{level}.1')
    conv('detr.input_proj.3.0', C, 2048, 3)
    norm('detr.input_proj.3.1')

    enc = 'detr.transformer_enc'
    shapes[f'{enc}.level_embed'] = (LEVELS, C)
    for layer in range(6):
        prefix = f'{enc}.encoder.layers.{layer}'
        msda(f'{prefix}.self_attn', LEVELS, None, True)
        norm(f'{prefix}.norm1')
        linear(f'{prefix}.linear1', C, 4 * C)
        linear(f'{prefix}.linear2', 4 * C, C)
        norm(f'{prefix}.norm2')
    norm(f'{enc}.encoder.norm')

    dec = 'detr.transformer_dec'
    for owner in (dec, f'{dec}.decoder'):
        mlp(f'{owner}.bbox_embed', 4)
        linear(f'{owner}.point2pos_proj', 2, C)
    norm(f'{dec}.decoder_norm')
    norm(f'{dec}.decoder.norm')
    for layer in range(6):
        prefix = f'{dec}.decoder.layers.{layer}'
        mha(f'{prefix}.self_attn')
        norm(f'{prefix}.norm1')
        msda(f'{prefix}.cross_attn', LEVELS, None, False)
        norm(f'{prefix}.norm2')
        linear(f'{prefix}.linear1', C, 4 * C)
        linear(f'{prefix}.linear2', 4 * C, C)
        norm(f'{prefix}.norm3')
        linear(f'{prefix}.time_weights', C, 1)
        mha(f'{prefix}.self_attn_inst')
        norm(f'{prefix}.norm1_inst')
        msda(f'{prefix}.temp_attn_inst', FRAMES, None, False)
        norm(f'{prefix}.norm2_inst')
        linear(f'{prefix}.linear1_inst', C, 4 * C)
        linear(f'{prefix}.linear2_inst', 4 * C, C)
        norm(f'{prefix}.norm3_inst')
    mlp(f'{dec}.rpn_cls_embed', CLASSES)
    mlp(f'{dec}.cls_embed', CLASSES)
    mlp(f'{dec}.track_embed', 64)
    head = f'{dec}.mask_head'
    for index in (1, 2, 3):
        conv(f'{head}.lay{index}', C, C, 3)
        norm(f'{head}.gn{index}')
    for index, cout in ((1, C), (2, C // 8)):
        conv(f'{head}.out_lay{index}.depthwise', C, 1, 5)
        conv(f'{head}.out_lay{index}.pointwise', cout, C, 1)
        norm(f'{head}.out_lay{index}.gn', cout)
    conv(f'{head}.out_uplay', C, 1, 1)
    conv(f'{head}.adapter1', C, C, 1)
    conv(f'{head}.adapter2', C, C, 1)
    mlp(f'{dec}.mask_embed', C // 8)
    shapes[f'{dec}.query_relpos_grid'] = (196, 196, 2)
    shapes['criterion.query_relpos_grid'] = (196, 196, 2)
    return shapes


def reference_relpos_grid(bins=14):
    """``query_relpos_grid`` as the reference builds it, float64-free."""
    rows, cols = np.meshgrid(np.arange(bins), np.arange(bins), indexing='ij')
    xy = np.stack([cols, rows], -1).reshape(-1, 2)
    return torch.from_numpy(np.abs(xy[:, None] - xy[None]))


def random_reference_state_dict():
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in reference_shapes().items():
        if key.endswith('lvl_spatial_scales'):
            levels = shape[0]
            state[key] = (
                torch.full((levels, ), 2)
                if 'temp_attn' in key else torch.arange(1, levels + 1))
        elif key.endswith('query_relpos_grid'):
            state[key] = reference_relpos_grid()
        else:
            state[key] = torch.randn(shape, generator=generator)
    # the shared modules are the same tensors in the reference
    dec = 'detr.transformer_dec'
    for key in list(state):
        for shared in ('bbox_embed', 'point2pos_proj'):
            if key.startswith(f'{dec}.{shared}.'):
                state[key.replace(f'{dec}.', f'{dec}.decoder.')] = state[key]
        if key.startswith(f'{dec}.decoder_norm.'):
            state[key.replace('decoder_norm', 'decoder.norm')] = state[key]
    return state


@pytest.fixture
def ovis_model():
    register_all_modules()
    cfg = Config.fromfile(OVIS_CONFIG)
    return MODELS.build(cfg.model)


def test_converted_state_dict_loads_strictly(converter, ovis_model):
    reference = random_reference_state_dict()
    converted = converter.convert_reference_state_dict(reference)
    result = ovis_model.load_state_dict(converted, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    ours = ovis_model.state_dict()
    for key, value in converted.items():
        assert ours[key].shape == value.shape, key
    # every reference float tensor lands somewhere (shared copies once)
    placed = {id(v) for v in converted.values()}
    for key, value in reference.items():
        if not key.endswith('query_relpos_grid'):
            assert id(value) in placed, key


@pytest.mark.parametrize('reference_key, our_key', [
    ('detr.backbone.0.backbone.stem.conv1.weight', 'backbone.conv1.weight'),
    ('detr.backbone.0.backbone.stem.conv1.norm.running_var',
     'backbone.bn1.running_var'),
    ('detr.backbone.0.backbone.res3.0.shortcut.norm.weight',
     'backbone.layer2.0.downsample.1.weight'),
    ('detr.backbone.0.backbone.res5.2.conv2.weight',
     'backbone.layer4.2.conv2.weight'),
    ('detr.input_proj.2.1.bias', 'neck.convs.2.gn.bias'),
    ('detr.input_proj.3.0.weight', 'neck.extra_convs.0.conv.weight'),
    ('detr.transformer_enc.level_embed', 'level_embed'),
    ('detr.transformer_enc.encoder.layers.5.linear2.weight',
     'encoder.layers.5.ffn.layers.1.weight'),
    ('detr.transformer_dec.decoder.layers.3.norm1_inst.weight',
     'track_head.decoder.layers.3.clip_self_attn_norm.weight'),
    ('detr.transformer_dec.decoder.layers.0.temp_attn_inst.'
     'sampling_grid_offsets.weight',
     'track_head.decoder.layers.0.clip_temporal_attn.sampling_grid_offsets.'
     'weight'),
    ('detr.transformer_dec.decoder.layers.1.cross_attn.sampling_offsets',
     'track_head.decoder.layers.1.frame_cross_attn.sampling_offsets'),
    ('detr.transformer_dec.decoder.layers.2.linear1_inst.bias',
     'track_head.decoder.layers.2.clip_ffn.layers.0.0.bias'),
    ('detr.transformer_dec.decoder.layers.4.time_weights.weight',
     'track_head.decoder.layers.4.time_weight_proj.weight'),
    ('detr.transformer_dec.decoder_norm.weight',
     'track_head.decoder.norm.weight'),
    ('detr.transformer_dec.rpn_cls_embed.layers.2.bias',
     'query_selection.rpn_cls_embed.layers.2.bias'),
    ('detr.transformer_dec.mask_head.gn2.weight',
     'track_head.mask_proto.lay2.gn.weight'),
    ('detr.transformer_dec.mask_head.out_lay2.pointwise.weight',
     'track_head.mask_proto.out_lay2.pointwise_conv.conv.weight'),
])
def test_keys_land_on_their_modules(converter, reference_key, our_key):
    reference = random_reference_state_dict()
    converted = converter.convert_reference_state_dict(reference)
    assert torch.equal(converted[our_key], reference[reference_key])


def test_reference_buffers_equal_ours(converter, ovis_model):
    """Buffers are not learned: ours must already equal the reference's."""
    ours = dict(ovis_model.named_buffers())
    converted = converter.convert_reference_state_dict(
        random_reference_state_dict())
    assert torch.equal(ours['query_selection.query_cell_dist'],
                       reference_relpos_grid())
    for key, value in converted.items():
        if key.endswith('lvl_spatial_scales'):
            assert torch.equal(ours[key], value), key
    # the fixed rays of box / temporal attention: direction of head h at
    # angle 2*pi*h/H, scaled to the unit square, times (k+1)/K * 8
    rays = ours['track_head.decoder.layers.0.frame_cross_attn.'
                'sampling_offsets'].double()
    for head in range(HEADS):
        theta = 2 * np.pi * head / HEADS
        direction = np.array([np.cos(theta), np.sin(theta)])
        direction = direction / np.abs(direction).max()
        for point in range(POINTS):
            expected = direction * (point + 1) / POINTS * 8.0
            for level in range(LEVELS):
                np.testing.assert_allclose(
                    rays[0, 0, head, level, point].numpy(),
                    expected,
                    atol=1e-5)  # float32 buffer


def test_unknown_and_inconsistent_keys_are_errors(converter):
    reference = random_reference_state_dict()
    reference['detr.transformer_dec.extra_head.weight'] = torch.zeros(1)
    with pytest.raises(converter.ConversionError, match='extra_head'):
        converter.convert_reference_state_dict(reference)
    reference = random_reference_state_dict()
    key = 'detr.transformer_dec.decoder.bbox_embed.layers.0.bias'
    reference[key] = reference[key] + 1
    with pytest.raises(converter.ConversionError, match='differ'):
        converter.convert_reference_state_dict(reference)
    # SwinV2 keys are converted (test_reference_converter_swinv2.py); an
    # unknown one is named
    swin = {'detr.backbone.0.backbone.layers.0.blocks.0.mlp.fc3.weight': 0}
    with pytest.raises(converter.ConversionError, match='unknown SwinV2'):
        converter.convert_reference_state_dict(swin)
    resnet = {'detr.backbone.0.backbone.res9.0.conv1.weight': 0}
    with pytest.raises(converter.ConversionError, match='ResNet'):
        converter.convert_reference_state_dict(resnet)


def test_cli_round_trip(converter, ovis_model, tmp_path, capsys):
    reference = {
        key: value.numpy()
        for key, value in random_reference_state_dict().items()
    }
    src = tmp_path / 'reference.pth'
    torch.save(dict(model=reference, iteration=12000), src)
    dst = tmp_path / 'converted.pth'
    assert converter.main([str(src), str(dst)]) == 0
    assert 'written to' in capsys.readouterr().out
    from mmengine.runner import load_checkpoint
    load_checkpoint(ovis_model, str(dst), map_location='cpu', strict=True)
    np.testing.assert_array_equal(
        ovis_model.level_embed.detach().numpy(),
        reference['detr.transformer_enc.level_embed'])
    with pytest.raises(SystemExit, match='no such file'):
        converter.main([str(tmp_path / 'missing.pth'), str(dst)])
    torch.save(dict(iteration=1), tmp_path / 'empty.pth')
    with pytest.raises(SystemExit, match='Detectron2 checkpoint'):
        converter.main([str(tmp_path / 'empty.pth'), str(dst)])

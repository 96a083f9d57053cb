# Copyright (c) OpenMMLab. All rights reserved.
"""Temporal weight inflation against a written-out formula, the reference
converter's own code (when einops is installed), and the load hook."""
import math
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner import BaseLoop
from mmengine.runner.checkpoint import load_state_dict

import mdqe_mm  # noqa: F401
from mdqe_mm.engine import (TemporalInflationHook, inflate_temporal_attn,
                            inflate_temporal_state_dict, source_frame_indices)
from mdqe_mm.models.layers import MDQEMSDeformAttn

H, K, C = 2, 3, 8  # heads, points, channels of the test attentions
TINY_CONFIG = osp.join(
    osp.dirname(__file__), '..', '..', '..', 'configs', '_base_', 'models',
    'mdqe_tiny.py')

# (T1, T2, mode) -> the source frame of each new frame, written out:
# 'reference' computes r = T2 + 1 // T1 >= T2 repeats per frame, so new
# frame j < T2 takes frame j // r = 0; 'repeat' takes j // ceil(T2 / T1)
CASES = {
    (1, 4, 'reference'): [0, 0, 0, 0],
    (1, 4, 'repeat'): [0, 0, 0, 0],
    (4, 3, 'reference'): [0, 0, 0],
    (4, 3, 'repeat'): [0, 1, 2],
    (2, 5, 'repeat'): [0, 0, 0, 1, 1],
    (3, 2, 'repeat'): [0, 1],
}


def random_attn(num_frames: int) -> MDQEMSDeformAttn:
    torch.manual_seed(num_frames)
    attn = MDQEMSDeformAttn(
        embed_dims=C,
        num_heads=H,
        num_levels=2,
        num_points=K,
        mode='temporal',
        num_frames=num_frames)
    with torch.no_grad():
        for param in attn.parameters():
            param.normal_()
    return attn


def expected_rows(src: torch.Tensor, num_src: int, sources: list,
                  depth: int) -> torch.Tensor:
    """Row ((h*T2 + j)*K + k)*depth + d of the result is row
    ((h*T1 + s(j))*K + k)*depth + d of ``src`` (float64 loops)."""
    src = src.double()
    rows = []
    for h in range(H):
        for j in range(len(sources)):
            for k in range(K):
                for d in range(depth):
                    rows.append(
                        src[((h * num_src + sources[j]) * K + k) * depth + d])
    return torch.stack(rows)


@pytest.mark.parametrize('case', sorted(CASES))
def test_source_frames(case):
    src, dst, mode = case
    assert source_frame_indices(src, dst, mode) == CASES[case]


@pytest.mark.parametrize('case', sorted(CASES))
def test_inflate_against_formula(case):
    src, dst, mode = case
    sources = CASES[case]
    state = random_attn(src).state_dict()
    inflated = dict(state)
    assert inflate_temporal_attn(inflated, '', dst, mode) == src
    for name, depth in (('attention_weights', 1), ('sampling_grid_offsets',
                                                   2)):
        for part in ('weight', 'bias'):
            key = f'{name}.{part}'
            assert inflated[key].shape[0] == H * dst * K * depth
            torch.testing.assert_close(
                inflated[key].double(),
                expected_rows(state[key], src, sources, depth),
                rtol=0,
                atol=0)
    grid = state['sampling_offsets']  # (1, 1, H, T, K, 2)
    for j, s in enumerate(sources):
        assert torch.equal(inflated['sampling_offsets'][:, :, :, j],
                           grid[:, :, :, s])
    assert inflated['lvl_spatial_scales'].tolist() == [2] * dst
    # the result is a T2 attention's state dict, strictly
    random_attn(dst).load_state_dict(inflated, strict=True)


def test_inflated_attention_is_the_mean_over_identical_frames():
    """1 -> 4 frames: with the same value in all 4 frames, the inflated
    attention gives the 1-frame attention's output (each frame's softmax
    weight is split evenly over its 4 copies)."""
    one = random_attn(1).eval()
    four = random_attn(4).eval()
    state = one.state_dict()
    inflate_temporal_attn(state, '', 4)
    four.load_state_dict(state)
    torch.manual_seed(0)
    shapes = torch.tensor([[6, 8], [3, 4]])
    starts = torch.tensor([0, 48])
    value = torch.randn(2, 1, 60, C)
    query = torch.randn(2, 5, C)
    boxes = torch.rand(2, 5, 4) * 0.5 + 0.25
    with torch.no_grad():
        out1 = one(query, boxes, value, shapes, starts)
        out4 = four(query, boxes, value.expand(-1, 4, -1, -1), shapes, starts)
    torch.testing.assert_close(out4, out1, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('src,dst', [(1, 4), (4, 3), (2, 3)])
def test_reference_mode_is_the_reference_code(src, dst):
    """The reference's convert_inflated_weights.py L51-69, verbatim."""
    einops = pytest.importorskip('einops')
    repeat = einops.repeat
    state = random_attn(src).state_dict()
    ours = dict(state)
    inflate_temporal_attn(ours, '', dst, 'reference')
    num_frames, num_pretrain_frames, n_heads, n_points = dst, src, H, K
    T = max(num_frames + 1 // num_pretrain_frames, 1)  # noqa: N806
    for name in ('attention_weights', 'sampling_grid_offsets'):
        new_v = repeat(
            state[f'{name}.bias'],
            '(H F K D) -> H (F T) K D',
            H=n_heads,
            F=num_pretrain_frames,
            T=T,
            K=n_points)
        assert torch.equal(ours[f'{name}.bias'],
                           new_v[:, :num_frames].flatten())
        new_v = repeat(
            state[f'{name}.weight'],
            '(H F K D) C -> H (F T) K D C',
            H=n_heads,
            F=num_pretrain_frames,
            T=T,
            K=n_points)
        assert torch.equal(ours[f'{name}.weight'],
                           new_v[:, :num_frames].flatten(0, -2))
    new_v = repeat(
        state['sampling_offsets'], 'H M K F D C -> H M K (F T) D C', T=T)
    assert torch.equal(ours['sampling_offsets'], new_v[:, :, :, :num_frames])


def test_bad_shapes_name_the_key():
    state = random_attn(2).state_dict()
    state['sampling_grid_offsets.bias'] = torch.zeros(5)
    with pytest.raises(ValueError, match='sampling_grid_offsets.bias'):
        inflate_temporal_attn(state, '', 4)
    with pytest.raises(ValueError, match='mode must be one of'):
        source_frame_indices(1, 4, 'nearest')
    with pytest.raises(ValueError, match='sampling_offsets'):
        inflate_temporal_attn({}, 'x.', 4)


def tiny_model(num_frames: int, num_classes: int = 3):
    init_default_scope('mmdet')
    cfg = Config.fromfile(TINY_CONFIG).model
    cfg.num_frames = num_frames
    cfg.query_selection.num_classes = num_classes
    cfg.track_head.num_classes = num_classes
    torch.manual_seed(num_frames * 10 + num_classes)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def fake_runner(model, resume=False, training=True):

    class _Loop(BaseLoop):

        def run(self):
            pass

    runner = SimpleNamespace(
        model=model,
        _resume=resume,
        logger=MMLogger.get_instance('test_temporal_inflation'))
    runner._train_loop = _Loop(runner, []) if training else dict()
    return runner


def test_hook_inflates_a_load_from_checkpoint():
    source = tiny_model(num_frames=1, num_classes=5)
    target = tiny_model(num_frames=2, num_classes=3)
    checkpoint = dict(state_dict=source.state_dict())
    hook = TemporalInflationHook()
    hook.after_load_checkpoint(fake_runner(target), checkpoint)
    prefixes = [
        f'track_head.decoder.layers.{i}.clip_temporal_attn.' for i in range(2)
    ]
    assert hook.inflated == {p: (1, 2) for p in prefixes}
    state = checkpoint['state_dict']
    expected = inflate_temporal_state_dict(source.state_dict(), 2)
    assert set(expected) == set(prefixes)
    for key, value in state.items():
        assert value.shape == target.state_dict()[key].shape or \
            'cls_embed.layers.2' in key, key
    # class heads follow the reference: the last layer of each class MLP
    # (5 classes vs 3) keeps its initialisation, the rest loads
    head_init = target.track_head.cls_embed.layers[2].bias.clone()
    load_state_dict(target, state, strict=False)
    assert torch.equal(target.track_head.cls_embed.layers[2].bias, head_init)
    assert torch.equal(target.track_head.cls_embed.layers[0].weight,
                       source.track_head.cls_embed.layers[0].weight)
    attn = target.track_head.decoder.layers[0].clip_temporal_attn
    src_attn = source.track_head.decoder.layers[0].clip_temporal_attn
    assert torch.equal(
        attn.attention_weights.bias,
        src_attn.attention_weights.bias.view(attn.num_heads, 1,
                                             -1).repeat(1, 2, 1).flatten())


def test_hook_leaves_resume_and_test_alone():
    source = tiny_model(num_frames=1)
    target = tiny_model(num_frames=2)
    for runner in (fake_runner(target, resume=True),
                   fake_runner(target, training=False)):
        checkpoint = dict(state_dict=source.state_dict())
        hook = TemporalInflationHook()
        hook.after_load_checkpoint(runner, checkpoint)
        assert hook.inflated == {}
        key = ('track_head.decoder.layers.0.clip_temporal_attn.'
               'attention_weights.weight')
        assert checkpoint['state_dict'][key].shape[0] == \
            math.prod((4, 1, 2))  # tiny: 4 heads, 1 frame, 2 points
    with pytest.raises(ValueError, match='mode must be one of'):
        TemporalInflationHook(mode='nearest')

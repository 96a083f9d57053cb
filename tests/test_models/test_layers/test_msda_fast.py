# Copyright (c) OpenMMLab. All rights reserved.
"""The fast PyTorch deformable attention equals mmcv's PyTorch function.

Reference: mmcv's ``multi_scale_deformable_attn_pytorch``, run in float64
on the same inputs; forward outputs and the gradients of a random linear
function of the output (w.r.t. value, locations, weights and the module's
parameters) must agree to 1e-5.
"""
import pytest
import torch
from mmcv.ops.multi_scale_deform_attn import \
    multi_scale_deformable_attn_pytorch

from mdqe_mm.models.layers import (MDQEMSDeformAttn, level_shapes,
                                   multi_scale_deformable_attn_fast,
                                   sample_value_maps)

TOL = dict(atol=1e-5, rtol=1e-5)
HEADS, POINTS = 8, 4


def strided_shapes(height, width):
    """MDQE's four levels (strides 8, 16, 32, 64) of a padded frame."""
    return torch.tensor([[-(-height // s), -(-width // s)]
                         for s in (8, 16, 32, 64)])


def random_inputs(batch, num_query, shapes, head_dims, seed=0):
    gen = torch.Generator().manual_seed(seed)
    num_tokens = int(shapes.prod(-1).sum())
    num_levels = shapes.shape[0]
    value = torch.randn(
        batch, num_tokens, HEADS, head_dims, generator=gen,
        dtype=torch.float64)
    # some points fall outside the map: zero padding must match
    loc = torch.rand(
        batch, num_query, HEADS, num_levels, POINTS, 2, generator=gen,
        dtype=torch.float64) * 1.4 - 0.2
    weights = torch.rand(
        batch, num_query, HEADS, num_levels, POINTS, generator=gen,
        dtype=torch.float64).softmax(-1)
    return value, loc, weights


def grads_of(fn, inputs, probe):
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*inputs)
    grads = torch.autograd.grad((out * probe).sum(), inputs)
    return out.detach(), grads


@pytest.mark.parametrize(
    'case',
    [
        # name, batch (frames), queries, frame size
        ('decoder box, R50 360p', 4, 196, (384, 640)),
        ('encoder point, small frame', 2, None, (96, 160)),
        ('decoder temporal T x L maps', 1, 196, (96, 160)),
        ('odd sizes', 3, 7, (72, 104)),
    ],
    ids=lambda c: c[0])
def test_fast_function_equals_mmcv_float64(case):
    name, batch, num_query, (height, width) = case
    shapes = strided_shapes(height, width)
    if 'temporal' in name:
        shapes = shapes.repeat(4, 1)  # 4 frames x 4 levels
    if num_query is None:
        num_query = int(shapes.prod(-1).sum())
    inputs = random_inputs(batch, num_query, shapes, head_dims=32)
    probe = torch.randn(batch, num_query, HEADS * 32, dtype=torch.float64)

    out_ref, grads_ref = grads_of(
        lambda v, loc, w: multi_scale_deformable_attn_pytorch(
            v, shapes, loc, w), inputs, probe)
    out, grads = grads_of(
        lambda v, loc, w: multi_scale_deformable_attn_fast(
            v, shapes, loc, w), inputs, probe)
    assert out.shape == out_ref.shape == (batch, num_query, HEADS * 32)
    torch.testing.assert_close(out, out_ref, **TOL)
    for grad, grad_ref, what in zip(grads, grads_ref,
                                    ('value', 'locations', 'weights')):
        assert grad_ref.abs().max() > 0, what
        torch.testing.assert_close(grad, grad_ref, **TOL, msg=what)


def test_sample_value_maps_shares_locations_between_maps():
    """Two maps on one location index: the sum of two single-map calls."""
    shapes = [(5, 7), (3, 4)]
    gen = torch.Generator().manual_seed(1)
    maps = [
        torch.randn(2 * HEADS, 4, h, w, generator=gen, dtype=torch.float64)
        for h, w in shapes
    ]
    loc = torch.rand(2, 6, HEADS, 1, POINTS, 2, generator=gen,
                     dtype=torch.float64)
    weights = torch.rand(2, 6, HEADS, 1, POINTS, generator=gen,
                         dtype=torch.float64)
    both = sample_value_maps(maps, [0, 0], loc, weights, weight_divisor=2)
    first = sample_value_maps(maps[:1], [0], loc, weights)
    second = sample_value_maps(maps[1:], [0], loc, weights)
    torch.testing.assert_close(both, (first + second) / 2)
    with pytest.raises(ValueError, match='value maps'):
        sample_value_maps(maps, [0], loc, weights)


def test_level_shapes_are_python_ints():
    shapes = level_shapes(torch.tensor([[4, 5], [2, 3]]))
    assert shapes == [(4, 5), (2, 3)]
    assert all(type(v) is int for pair in shapes for v in pair)


def legacy_module_attn(module, value, spatial_shapes, locations, weights,
                       mask):
    """The module's attention before ``output_proj``, written plainly:
    ``value_proj``, masking, then mmcv's function; for ``'temporal'`` the
    mean over the feature levels of one mmcv call per level over the T
    frames (spec §1.4)."""
    value = module.value_proj(value)
    if mask is not None:
        value = value.masked_fill(mask[..., None], 0.)
    value = value.unflatten(-1, (module.num_heads, -1))
    if module.mode != 'temporal':
        return multi_scale_deformable_attn_pytorch(value, spatial_shapes,
                                                   locations, weights)
    starts = [0] + spatial_shapes.prod(-1).cumsum(0).tolist()
    per_level = []
    for level in range(spatial_shapes.shape[0]):
        frames = value[:, :, starts[level]:starts[level + 1]]
        per_level.append(
            multi_scale_deformable_attn_pytorch(
                frames.flatten(1, 2), spatial_shapes[level:level + 1].repeat(
                    value.shape[1], 1), locations, weights))
    return torch.stack(per_level).mean(0)


@pytest.mark.parametrize('mode', ['point', 'box', 'temporal'])
def test_module_pytorch_path_equals_legacy_float64(mode):
    """``MDQEMSDeformAttn._pytorch_attn`` (channel-first ``value_proj``,
    levels accumulated) against ``value_proj`` + mmcv, incl. the gradients
    of the projection's weight and bias, float64."""
    frames = 4
    shapes = strided_shapes(96, 160)
    num_tokens = int(shapes.prod(-1).sum())
    module = MDQEMSDeformAttn(
        256, HEADS, 4, POINTS, mode=mode,
        num_frames=frames if mode == 'temporal' else None).double()
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    batch = 2
    num_query = num_tokens if mode == 'point' else 50
    kernel_levels = frames if mode == 'temporal' else 4
    value_shape = (batch, frames, num_tokens, 256) if mode == 'temporal' \
        else (batch, num_tokens, 256)
    value = torch.randn(value_shape, generator=gen, dtype=torch.float64)
    mask = torch.rand(value_shape[:-1], generator=gen) < 0.2
    loc = torch.rand(batch, num_query, HEADS, kernel_levels, POINTS, 2,
                     generator=gen, dtype=torch.float64) * 1.4 - 0.2
    weights = torch.rand(batch, num_query, HEADS, kernel_levels, POINTS,
                         generator=gen, dtype=torch.float64).softmax(-1)
    probe = torch.randn(batch, num_query, 256, generator=gen,
                        dtype=torch.float64)
    params = [module.value_proj.weight, module.value_proj.bias]

    def run(fn):
        inputs = [t.clone().requires_grad_() for t in (value, loc, weights)]
        out = fn(module, inputs[0], shapes, inputs[1], inputs[2], mask)
        grads = torch.autograd.grad((out * probe).sum(), inputs + params)
        return out.detach(), grads

    out_ref, grads_ref = run(legacy_module_attn)
    out, grads = run(lambda m, v, s, loc_, w, msk: m._pytorch_attn(
        v, s, loc_, w, msk))
    torch.testing.assert_close(out, out_ref, **TOL)
    names = ('value', 'locations', 'weights', 'value_proj.weight',
             'value_proj.bias')
    for grad, grad_ref, name in zip(grads, grads_ref, names):
        assert grad_ref.abs().max() > 0, name
        torch.testing.assert_close(grad, grad_ref, **TOL, msg=name)


def test_module_forward_uses_the_fast_path_on_cpu(monkeypatch):
    """On CPU the module never calls mmcv's stacking function."""
    import mmcv.ops.multi_scale_deform_attn as mmcv_msda

    def fail(*args, **kwargs):
        raise AssertionError('mmcv PyTorch function called')

    monkeypatch.setattr(mmcv_msda, 'multi_scale_deformable_attn_pytorch',
                        fail)
    module = MDQEMSDeformAttn(32, 4, 2, 2, mode='box')
    shapes = torch.tensor([[4, 5], [2, 3]])
    out = module(
        torch.randn(1, 3, 32), torch.rand(1, 3, 4), torch.randn(1, 26, 32),
        shapes, torch.tensor([0, 20]))
    assert out.shape == (1, 3, 32) and out.isfinite().all()

# Copyright (c) OpenMMLab. All rights reserved.
import copy
import math

import pytest
import torch

from mdqe_mm.models.layers import (MDQEMSDeformAttn, build_direction_grid,
                                   compute_sampling_locations)

SCALE = 8.0
C, HEADS, LEVELS, POINTS, FRAMES = 16, 2, 2, 2, 3
SPATIAL_SHAPES = torch.tensor([[4, 5], [2, 3]])
LEVEL_START = torch.tensor([0, 20])
NUM_TOKENS = 26


def direction_grid_reference(num_heads, num_levels, num_points):
    """G[h, l, k] = dir_h * (k + 1) / K * 8, written with math, float64."""
    grid = torch.zeros(
        num_heads, num_levels, num_points, 2, dtype=torch.float64)
    for h in range(num_heads):
        theta = 2 * math.pi * h / num_heads
        cos, sin = math.cos(theta), math.sin(theta)
        norm = max(abs(cos), abs(sin))
        for lvl in range(num_levels):
            for k in range(num_points):
                grid[h, lvl, k, 0] = cos / norm * (k + 1) / num_points * 8
                grid[h, lvl, k, 1] = sin / norm * (k + 1) / num_points * 8
    return grid


@torch.no_grad()
def linear64(linear, x):
    return x.double() @ linear.weight.double().t() + linear.bias.double()


@torch.no_grad()
def locations_reference(module, query, reference):
    """Sampling locations with explicit loops, float64 (spec §1.4)."""
    B, Q = query.shape[:2]
    H, L, K = module.num_heads, module.num_kernel_levels, module.num_points
    ref = reference.double()
    if module.mode == 'point':
        raw = linear64(module.sampling_offsets, query)
    else:
        raw = linear64(module.sampling_grid_offsets, query)
        grid = direction_grid_reference(H, L, K)
    loc = torch.zeros(B, Q, H, L, K, 2, dtype=torch.float64)
    for b in range(B):
        for q in range(Q):
            for h in range(H):
                for lvl in range(L):
                    for k in range(K):
                        for c in range(2):
                            off = raw[b, q, ((h * L + lvl) * K + k) * 2 + c]
                            if module.mode == 'point':
                                loc[b, q, h, lvl, k, c] = \
                                    ref[b, q, c] + off / SCALE
                                continue
                            size = ref[b, q, 2 + c]
                            bound = SCALE * size
                            off = min(max(off, -bound), bound)
                            fixed = grid[h, lvl, k, c] * 0.5 * size
                            loc[b, q, h, lvl, k, c] = \
                                ref[b, q, c] + (fixed + off) / SCALE
    return loc


def bilinear_reference(fmap, x, y):
    """Sample fmap (h, w, D) at normalised (x, y); align_corners=False,
    zero outside."""
    h, w = fmap.shape[:2]
    px, py = float(x) * w - 0.5, float(y) * h - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    out = torch.zeros(fmap.shape[-1], dtype=torch.float64)
    for xi, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
        for yi, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
            if 0 <= xi < w and 0 <= yi < h:
                out += wx * wy * fmap[yi, xi]
    return out


@torch.no_grad()
def attention_reference(module, query, reference, value, padding_mask):
    """Full deformable attention in float64 with explicit loops."""
    B, Q = query.shape[:2]
    H, L, K = module.num_heads, module.num_kernel_levels, module.num_points
    D = module.embed_dims // H
    loc = locations_reference(module, query, reference)
    logits = linear64(module.attention_weights, query).view(B, Q, H, L * K)
    exp = (logits - logits.max(-1, keepdim=True)[0]).exp()
    weights = (exp / exp.sum(-1, keepdim=True)).view(B, Q, H, L, K)
    proj = linear64(module.value_proj, value)
    if padding_mask is not None:
        proj = proj * (~padding_mask)[..., None].double()
    if module.mode != 'temporal':
        proj = proj[:, None]  # one "frame"
    out = torch.zeros(B, Q, module.embed_dims, dtype=torch.float64)
    shapes = SPATIAL_SHAPES.tolist()
    starts = LEVEL_START.tolist()
    for b in range(B):
        for q in range(Q):
            for h in range(H):
                acc = torch.zeros(D, dtype=torch.float64)
                # temporal: the kernel levels are frames and the kernel runs
                # once per feature level, then the levels are averaged
                feat_levels = range(LEVELS)
                for feat_lvl in feat_levels:
                    for lvl in range(L):
                        if module.mode == 'temporal':
                            frame, src_lvl = lvl, feat_lvl
                        elif lvl != feat_lvl:
                            continue
                        else:
                            frame, src_lvl = 0, lvl
                        hh, ww = shapes[src_lvl]
                        start = starts[src_lvl]
                        fmap = proj[b, frame, start:start + hh * ww,
                                    h * D:(h + 1) * D].reshape(hh, ww, D)
                        for k in range(K):
                            x, y = loc[b, q, h, lvl, k]
                            acc += weights[b, q, h, lvl, k] * \
                                bilinear_reference(fmap, x, y)
                if module.mode == 'temporal':
                    acc = acc / LEVELS
                out[b, q, h * D:(h + 1) * D] = acc
    return linear64(module.output_proj, out)


def make_module(mode, seed=0):
    torch.manual_seed(seed)
    module = MDQEMSDeformAttn(
        C,
        HEADS,
        LEVELS,
        POINTS,
        mode=mode,
        num_frames=FRAMES if mode == 'temporal' else None)
    # non-trivial weights everywhere (the init zeroes several of them)
    with torch.no_grad():
        for name, param in module.named_parameters():
            std = 0.5 if 'offsets' in name else 0.3
            param.normal_(0, std)
    return module


def make_inputs(mode, seed=1):
    g = torch.Generator().manual_seed(seed)
    B, Q = 2, 3
    query = torch.randn(B, Q, C, generator=g)
    centres = torch.rand(B, Q, 2, generator=g) * 1.2 - 0.1
    sizes = torch.rand(B, Q, 2, generator=g) * 0.3 + 0.02
    reference = torch.cat([centres, sizes], -1)
    if mode == 'point':
        reference = centres
    if mode == 'temporal':
        value = torch.randn(B, FRAMES, NUM_TOKENS, C, generator=g)
    else:
        value = torch.randn(B, NUM_TOKENS, C, generator=g)
    mask = torch.rand(value.shape[:-1], generator=g) < 0.2
    return query, reference, value, mask


def test_direction_grid():
    grid = build_direction_grid(8, 4, 4, SCALE)
    assert grid.shape == (8, 4, 4, 2)
    torch.testing.assert_close(
        grid.double(), direction_grid_reference(8, 4, 4), atol=1e-5, rtol=0)


@pytest.mark.parametrize('mode', ['point', 'box', 'temporal'])
def test_init_and_state_dict_keys(mode):
    module = MDQEMSDeformAttn(
        32, 8, 4, 4, mode=mode, num_frames=3 if mode == 'temporal' else None)
    kernel_levels = 3 if mode == 'temporal' else 4
    grid = direction_grid_reference(8, kernel_levels, 4)
    keys = set(module.state_dict())
    common = {
        'lvl_spatial_scales', 'value_proj.weight', 'value_proj.bias',
        'output_proj.weight', 'output_proj.bias', 'attention_weights.weight',
        'attention_weights.bias'
    }
    assert common <= keys
    assert not module.attention_weights.weight.any()
    assert not module.attention_weights.bias.any()
    assert not module.value_proj.bias.any()
    assert not module.output_proj.bias.any()
    bound = math.sqrt(6 / (32 + 32))  # xavier uniform
    assert module.value_proj.weight.abs().max() <= bound
    assert module.value_proj.weight.std() > bound / 4
    if mode == 'point':
        assert keys == common | {
            'sampling_offsets.weight', 'sampling_offsets.bias'
        }
        assert module.lvl_spatial_scales.tolist() == [1, 2, 3, 4]
        assert not module.sampling_offsets.weight.any()
        expected = grid.clone()
        for lvl in range(4):
            expected[:, lvl] *= 0.05 * (lvl + 1)
        torch.testing.assert_close(
            module.sampling_offsets.bias.double(),
            expected.reshape(-1),
            atol=1e-5,
            rtol=0)
    else:
        assert keys == common | {
            'sampling_offsets', 'sampling_grid_offsets.weight',
            'sampling_grid_offsets.bias'
        }
        assert isinstance(module.sampling_offsets, torch.Tensor)
        assert 'sampling_offsets' in dict(module.named_buffers())
        assert module.sampling_offsets.shape == (1, 1, 8, kernel_levels, 4, 2)
        torch.testing.assert_close(
            module.sampling_offsets[0, 0].double(), grid, atol=1e-5, rtol=0)
        assert not module.sampling_grid_offsets.weight.any()
        assert not module.sampling_grid_offsets.bias.any()
        scales = [2] * 3 if mode == 'temporal' else [1, 2, 3, 4]
        assert module.lvl_spatial_scales.tolist() == scales
        assert module.attention_weights.out_features == 8 * kernel_levels * 4


def test_point_mode_initial_radius():
    """At init, point k of head h sits at (k+1)/K * 0.05 * l along dir_h."""
    module = MDQEMSDeformAttn(32, 8, 4, 4, mode='point')
    query = torch.randn(1, 5, 32)
    ref = torch.rand(1, 5, 2)
    loc = module.get_sampling_locations(query, ref)
    radius = (loc - ref[:, :, None, None, None]).abs().amax(-1)
    for lvl in range(4):
        for k in range(4):
            torch.testing.assert_close(
                radius[..., lvl, k],
                torch.full_like(radius[..., lvl, k],
                                (k + 1) / 4 * 0.05 * (lvl + 1)))


@pytest.mark.parametrize('mode', ['point', 'box', 'temporal'])
def test_sampling_locations_against_loops(mode):
    module = make_module(mode)
    query, reference, _, _ = make_inputs(mode)
    loc = module.get_sampling_locations(query, reference)
    kernel_levels = FRAMES if mode == 'temporal' else LEVELS
    assert loc.shape == (2, 3, HEADS, kernel_levels, POINTS, 2)
    expected = locations_reference(module, query, reference)
    torch.testing.assert_close(loc.double(), expected, atol=1e-5, rtol=0)
    if mode != 'point':
        # the clamp must actually be exercised by these inputs
        raw = linear64(module.sampling_grid_offsets, query).view(loc.shape)
        bound = SCALE * reference[:, :, None, None, None, 2:].double()
        assert (raw.abs() > bound).any()
        assert (raw.abs() < bound).any()


def test_compute_sampling_locations_point_accepts_boxes():
    offsets = torch.randn(2, 3, 2, 2, 2, 2)
    boxes = torch.rand(2, 3, 4)
    loc_box = compute_sampling_locations('point', boxes, offsets)
    loc_xy = compute_sampling_locations('point', boxes[..., :2], offsets)
    torch.testing.assert_close(loc_box, loc_xy)


@pytest.mark.parametrize('mode', ['point', 'box', 'temporal'])
def test_attention_output_against_float64_reference(mode):
    module = make_module(mode)
    query, reference, value, mask = make_inputs(mode)
    out = module(query, reference, value, SPATIAL_SHAPES, LEVEL_START, mask)
    assert out.shape == (2, 3, C) and out.dtype == torch.float32
    expected = attention_reference(module, query, reference, value, mask)
    torch.testing.assert_close(out.double(), expected, atol=1e-4, rtol=1e-4)


def test_temporal_mode_averages_levels_not_sums():
    """Duplicating every level's features must not change the output scale:
    a zero level halves the result of a 2-level average."""
    module = make_module('temporal')
    query, reference, value, _ = make_inputs('temporal')
    with torch.no_grad():
        module.value_proj.bias.zero_()
        module.output_proj.bias.zero_()
    full = module(query, reference, value, SPATIAL_SHAPES, LEVEL_START)
    level0_only = value.clone()
    level0_only[:, :, LEVEL_START[1]:] = 0
    level1_only = value.clone()
    level1_only[:, :, :LEVEL_START[1]] = 0
    out0 = module(query, reference, level0_only, SPATIAL_SHAPES, LEVEL_START)
    out1 = module(query, reference, level1_only, SPATIAL_SHAPES, LEVEL_START)
    torch.testing.assert_close(out0 + out1, full, atol=1e-5, rtol=1e-5)


def test_fp32_under_autocast():
    module = make_module('box')
    query, reference, value, mask = make_inputs('box')
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = module(query.bfloat16(), reference, value.bfloat16(),
                     SPATIAL_SHAPES, LEVEL_START, mask)
    assert out.dtype == torch.float32


def test_backward_is_finite():
    for mode in ('point', 'box', 'temporal'):
        module = make_module(mode)
        query, reference, value, mask = make_inputs(mode)
        query.requires_grad_(True)
        value.requires_grad_(True)
        module(query, reference, value, SPATIAL_SHAPES, LEVEL_START,
               mask).square().sum().backward()
        for tensor in [query, value, *module.parameters()]:
            assert tensor.grad is not None and tensor.grad.isfinite().all()


def test_bad_arguments():
    with pytest.raises(ValueError, match='mode'):
        MDQEMSDeformAttn(16, 2, mode='spatial')
    with pytest.raises(ValueError, match='num_frames'):
        MDQEMSDeformAttn(16, 2, mode='temporal')
    with pytest.raises(ValueError, match='num_frames'):
        MDQEMSDeformAttn(16, 2, mode='box', num_frames=3)
    with pytest.raises(ValueError, match='divisible'):
        MDQEMSDeformAttn(18, 4)
    module = make_module('temporal')
    query, reference, value, mask = make_inputs('temporal')
    with pytest.raises(ValueError, match='3 frames'):
        module(query, reference, value[:, :2], SPATIAL_SHAPES, LEVEL_START)
    with pytest.raises(ValueError, match='tokens'):
        module(query, reference, value[:, :, :-1], SPATIAL_SHAPES, LEVEL_START)
    with pytest.raises(ValueError, match='reference'):
        module(query, reference[..., :2], value, SPATIAL_SHAPES, LEVEL_START)
    with pytest.raises(ValueError, match='padding_mask'):
        module(query, reference, value, SPATIAL_SHAPES, LEVEL_START, mask[:,
                                                                          0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason='requires CUDA')
@pytest.mark.parametrize('mode', ['point', 'box', 'temporal'])
def test_cuda_kernel_matches_cpu(mode):
    module = make_module(mode)
    inputs = make_inputs(mode)
    cpu_inputs = [
        t.clone().requires_grad_(t.is_floating_point()) for t in inputs
    ]
    cpu_out = module(*cpu_inputs[:3], SPATIAL_SHAPES, LEVEL_START,
                     cpu_inputs[3])
    cpu_out.square().sum().backward()
    cuda_module = copy.deepcopy(module).cuda()
    cuda_inputs = [
        t.clone().cuda().requires_grad_(t.is_floating_point()) for t in inputs
    ]
    cuda_out = cuda_module(*cuda_inputs[:3], SPATIAL_SHAPES.cuda(),
                           LEVEL_START.cuda(), cuda_inputs[3])
    cuda_out.square().sum().backward()
    torch.testing.assert_close(cuda_out.cpu(), cpu_out, atol=1e-4, rtol=1e-4)
    for cpu_t, cuda_t in zip(cpu_inputs[:3], cuda_inputs[:3]):
        torch.testing.assert_close(
            cuda_t.grad.cpu(), cpu_t.grad, atol=1e-3, rtol=1e-3)
    for (name, p_cpu), p_cuda in zip(module.named_parameters(),
                                     cuda_module.parameters()):
        torch.testing.assert_close(
            p_cuda.grad.cpu(), p_cpu.grad, atol=1e-3, rtol=1e-3, msg=name)

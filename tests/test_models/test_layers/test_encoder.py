# Copyright (c) OpenMMLab. All rights reserved.
import math

import pytest
import torch
from mmdet.registry import MODELS

import mdqe_mm  # noqa: F401  (registers the modules)
from mdqe_mm.models.layers import MDQEDeformableEncoder

C = 32
SPATIAL_SHAPES = torch.tensor([[6, 8], [3, 4], [2, 2], [1, 1]])
LEVEL_START = torch.cat(
    [SPATIAL_SHAPES.new_zeros(1),
     SPATIAL_SHAPES.prod(-1).cumsum(0)[:-1]])
NUM_TOKENS = int(SPATIAL_SHAPES.prod(-1).sum())


def build_encoder(num_layers=2):
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type='MDQEDeformableEncoder',
            num_layers=num_layers,
            layer_cfg=dict(
                embed_dims=C,
                num_heads=2,
                num_levels=4,
                num_points=2,
                ffn_ratio=4)))


def make_inputs(batch=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(batch, NUM_TOKENS, C, generator=g)
    pos = torch.randn(batch, NUM_TOKENS, C, generator=g)
    # the last image is padded on the right half of every level
    mask = torch.zeros(batch, NUM_TOKENS, dtype=torch.bool)
    for (h, w), start in zip(SPATIAL_SHAPES.tolist(), LEVEL_START.tolist()):
        for i in range(h):
            for j in range(w):
                if j >= math.ceil(w / 2):
                    mask[-1, start + i * w + j] = True
    return query, pos, mask


def test_reference_points_are_pixel_centres():
    points = MDQEDeformableEncoder.get_reference_points(SPATIAL_SHAPES)
    assert points.shape == (NUM_TOKENS, 2)
    row = 0
    for h, w in SPATIAL_SHAPES.tolist():
        for i in range(h):
            for j in range(w):
                assert points[row, 0].item() == pytest.approx((j + .5) / w)
                assert points[row, 1].item() == pytest.approx((i + .5) / h)
                row += 1


def test_forward_shape_norm_and_backward():
    encoder = build_encoder()
    assert len(encoder.layers) == 2
    query, pos, mask = make_inputs()
    query.requires_grad_(True)
    out = encoder(query, pos, mask, SPATIAL_SHAPES, LEVEL_START)
    assert out.shape == (4, NUM_TOKENS, C) and out.dtype == torch.float32
    # final LayerNorm (default affine): zero mean, unit variance per token
    torch.testing.assert_close(
        out.mean(-1), torch.zeros(out.shape[:2]), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        out.var(-1, unbiased=False),
        torch.ones(out.shape[:2]),
        atol=1e-3,
        rtol=0)
    out.square().sum().backward()
    assert query.grad.isfinite().all()
    for name, param in encoder.named_parameters():
        assert param.grad is not None and param.grad.isfinite().all(), name


def test_layer_is_post_norm_with_gelu_ffn():
    """One layer against LN(x + attn) then LN(x + W2 gelu(W1 x)) in
    float64 (attention output from the separately tested module)."""
    encoder = build_encoder(num_layers=1)
    layer = encoder.layers[0]
    query, pos, mask = make_inputs(batch=2)
    ref = encoder.get_reference_points(SPATIAL_SHAPES)[None].expand(2, -1, -1)
    with torch.no_grad():
        attn = layer.self_attn(query + pos, ref, query, SPATIAL_SHAPES,
                               LEVEL_START, mask).double()

        def layer_norm(x, norm):
            mu = x.mean(-1, keepdim=True)
            var = ((x - mu)**2).mean(-1, keepdim=True)
            return (x - mu) / torch.sqrt(var + norm.eps) * \
                norm.weight.double() + norm.bias.double()

        fc1, fc2 = layer.ffn.layers[0][0], layer.ffn.layers[1]
        x = layer_norm(query.double() + attn, layer.self_attn_norm)
        hidden = x @ fc1.weight.double().t() + fc1.bias.double()
        hidden = 0.5 * hidden * (1 + torch.erf(hidden / math.sqrt(2)))
        assert fc1.out_features == 4 * C
        x = layer_norm(
            x + hidden @ fc2.weight.double().t() + fc2.bias.double(),
            layer.ffn_norm)
        expected = layer_norm(x, encoder.norm)
        out = encoder(query, pos, mask, SPATIAL_SHAPES, LEVEL_START)
    torch.testing.assert_close(out.double(), expected, atol=1e-4, rtol=1e-4)


def test_padded_tokens_do_not_leak():
    encoder = build_encoder()
    query, pos, mask = make_inputs()
    changed = query.clone()
    changed[mask] += 5 * torch.randn_like(changed[mask])
    with torch.no_grad():
        out = encoder(query, pos, mask, SPATIAL_SHAPES, LEVEL_START)
        out_changed = encoder(changed, pos, mask, SPATIAL_SHAPES, LEVEL_START)
        out_no_mask = encoder(changed, pos, None, SPATIAL_SHAPES, LEVEL_START)
    valid = ~mask
    torch.testing.assert_close(
        out_changed[valid], out[valid], atol=1e-5, rtol=1e-5)
    # without the mask the padded tokens do reach the valid ones
    assert (out_no_mask[-1][valid[-1]] - out[-1][valid[-1]]).abs().max() > 1e-3


def test_errors():
    encoder = build_encoder(num_layers=1)
    query, pos, mask = make_inputs(batch=1)
    with pytest.raises(ValueError, match='tokens'):
        encoder(query[:, :-1], pos[:, :-1], None, SPATIAL_SHAPES, LEVEL_START)
    with pytest.raises(ValueError, match='query_pos'):
        encoder(query, pos[:, :-1], None, SPATIAL_SHAPES, LEVEL_START)
    with pytest.raises(ValueError, match='num_layers'):
        MDQEDeformableEncoder(num_layers=0)

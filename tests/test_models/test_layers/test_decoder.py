# Copyright (c) OpenMMLab. All rights reserved.
import math

import pytest
import torch
from mmdet.registry import MODELS

import mdqe_mm  # noqa: F401  (registers the modules)
from mdqe_mm.models.layers import (GELUMLP, circumscribed_clip_box,
                                   get_tca_frame_inds)

C, HEADS, POINTS = 32, 2, 2
SPATIAL_SHAPES = torch.tensor([[4, 6], [2, 3], [1, 2], [1, 1]])
LEVEL_START = torch.cat(
    [SPATIAL_SHAPES.new_zeros(1),
     SPATIAL_SHAPES.prod(-1).cumsum(0)[:-1]])
NUM_TOKENS = int(SPATIAL_SHAPES.prod(-1).sum())
Q = 4


def build_decoder(num_frames=3, num_layers=6):
    torch.manual_seed(0)
    decoder = MODELS.build(
        dict(
            type='MDQETwoStreamDecoder',
            num_layers=num_layers,
            embed_dims=C,
            num_heads=HEADS,
            num_levels=4,
            num_points=POINTS,
            ffn_ratio=4,
            num_frames=num_frames))
    reg_branch = GELUMLP(C, C, 4, 3)
    return decoder, reg_branch


def make_inputs(num_clips, num_frames, seed=1):
    g = torch.Generator().manual_seed(seed)
    rows = num_clips * num_frames
    query = torch.randn(rows, Q, C, generator=g)
    query_xy = torch.rand(rows, Q, 2, generator=g)
    memory = torch.randn(rows, NUM_TOKENS, C, generator=g)
    mask = torch.rand(rows, NUM_TOKENS, generator=g) < 0.1
    return query, query_xy, memory, mask


def run(decoder, reg_branch, inputs, num_frames, **kwargs):
    query, query_xy, memory, mask = inputs
    return decoder(query, query_xy, memory, mask, SPATIAL_SHAPES, LEVEL_START,
                   num_frames, reg_branch, **kwargs)


def layer_norm64(x, norm):
    x = x.double()
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu)**2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + norm.eps) * norm.weight.double() + \
        norm.bias.double()


def mlp64(mlp, x):
    x = x.double()
    for i, fc in enumerate(mlp.layers):
        x = x @ fc.weight.double().t() + fc.bias.double()
        if i < len(mlp.layers) - 1:
            x = 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
    return x


def logit64(p):
    p = p.double().clamp(1e-5, 1 - 1e-5)
    return torch.log(p / (1 - p))


def circumscribed_reference(boxes, centre, num_frames):
    """Loop version: boxes (N, T', Q, 4) cxcywh -> (N, Q, 4) cxcywh."""
    N, clip_len, num_q = boxes.shape[:3]
    out = torch.zeros(N, num_q, 4, dtype=torch.float64)
    frames = range(
        max(centre - (num_frames - 1) // 2, 0),
        min(centre + num_frames, clip_len))
    for n in range(N):
        for q in range(num_q):
            x0 = y0 = math.inf
            x1 = y1 = -math.inf
            for t in frames:
                cx, cy, w, h = boxes[n, t, q].tolist()
                x0 = min(x0, min(max(cx - w / 2, 0.), 1.))
                y0 = min(y0, min(max(cy - h / 2, 0.), 1.))
                x1 = max(x1, min(max(cx + w / 2, 0.), 1.))
                y1 = max(y1, min(max(cy + h / 2, 0.), 1.))
            out[n, q] = torch.tensor([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0,
                                      y1 - y0])
    return out


@pytest.mark.parametrize('centre,num_frames', [(2, 5), (2, 3), (0, 3), (4, 2),
                                               (3, 8)])
def test_circumscribed_clip_box(centre, num_frames):
    g = torch.Generator().manual_seed(0)
    boxes = torch.cat([
        torch.rand(2, 5, 6, 2, generator=g) * 1.2 - 0.1,
        torch.rand(2, 5, 6, 2, generator=g) * 0.6
    ], -1)
    out = circumscribed_clip_box(boxes, centre, num_frames)
    assert out.shape == (2, 6, 4)
    torch.testing.assert_close(
        out.double(),
        circumscribed_reference(boxes, centre, num_frames),
        atol=1e-6,
        rtol=0)


def test_circumscribed_clip_box_errors():
    with pytest.raises(ValueError, match='centre_frame'):
        circumscribed_clip_box(torch.rand(1, 3, 2, 4), 3, 3)
    with pytest.raises(ValueError, match='frame_boxes'):
        circumscribed_clip_box(torch.rand(3, 2, 4), 1, 3)


def test_tca_frame_inds():
    for num_frames in range(1, 7):
        # training: every frame in order
        assert get_tca_frame_inds(num_frames,
                                  num_frames) == list(range(num_frames))
        for clip_len in range(1, 4 * num_frames + 2):
            inds = get_tca_frame_inds(clip_len, num_frames)
            assert len(inds) == num_frames
            assert all(0 <= i < clip_len for i in inds)
            centre = (clip_len - 1) // 2
            stride = max(clip_len // num_frames, 1)
            if clip_len < 2 * num_frames:
                # stride 1: the reference's slice [max(ct - (T-1)//2, 0),
                # ct + T), first T frames, last frame repeated to refill
                window = list(
                    range(
                        max(centre - (num_frames - 1) // 2, 0),
                        min(centre + num_frames, clip_len)))[:num_frames]
                window += [window[-1]] * (num_frames - len(window))
                assert inds == window, (clip_len, num_frames)
            else:
                assert stride >= 2
                assert inds[(num_frames - 1) // 2] == centre
                assert all(b - a == stride for a, b in zip(inds, inds[1:]))


def test_gelu_mlp_matches_formula():
    torch.manual_seed(0)
    mlp = GELUMLP(8, 16, 3, 3)
    x = torch.randn(5, 8)
    with torch.no_grad():
        torch.testing.assert_close(
            mlp(x).double(), mlp64(mlp, x), atol=1e-5, rtol=1e-5)
    assert [k for k in mlp.state_dict()] == [
        f'layers.{i}.{p}' for i in range(3) for p in ('weight', 'bias')
    ]


def test_decoder_outputs_and_box_refinement():
    num_clips, num_frames = 2, 3
    decoder, reg_branch = build_decoder(num_frames)
    inputs = make_inputs(num_clips, num_frames)
    query, query_xy = inputs[:2]
    with torch.no_grad():
        out = run(decoder, reg_branch, inputs, num_frames)
    rows = num_clips * num_frames
    assert set(out) == {
        'frame_queries', 'clip_queries', 'frame_boxes', 'clip_boxes'
    }
    assert out['frame_queries'].shape == (7, rows, Q, C)
    assert out['clip_queries'].shape == (7, num_clips, Q, C)
    assert out['frame_boxes'].shape == (7, rows, Q, 4)
    assert out['clip_boxes'].shape == (7, num_clips, Q, 4)

    # warm-up step: queries untouched, clip queries = centre frame
    torch.testing.assert_close(out['frame_queries'][0], query)
    centre = (num_frames - 1) // 2
    torch.testing.assert_close(
        out['clip_queries'][0],
        query.view(num_clips, num_frames, Q, C)[:, centre])
    with torch.no_grad():
        ref = torch.cat(
            [query_xy.double(),
             torch.full_like(query_xy, 0.1).double()], -1)
        expected = torch.sigmoid(
            mlp64(reg_branch, layer_norm64(query, decoder.norm)) +
            logit64(ref))
    torch.testing.assert_close(
        out['frame_boxes'][0].double(), expected, atol=1e-5, rtol=0)

    for step in range(7):
        boxes = out['frame_boxes'][step]
        torch.testing.assert_close(
            out['clip_boxes'][step].double(),
            circumscribed_reference(
                boxes.view(num_clips, num_frames, Q, 4), centre, num_frames),
            atol=1e-6,
            rtol=0)
        if step == 0:
            continue
        # later steps refine the previous step's boxes
        with torch.no_grad():
            expected = torch.sigmoid(
                mlp64(reg_branch,
                      layer_norm64(out['frame_queries'][step], decoder.norm)) +
                logit64(out['frame_boxes'][step - 1]))
        torch.testing.assert_close(boxes.double(), expected, atol=1e-5, rtol=0)
        assert not torch.allclose(out['frame_queries'][step],
                                  out['frame_queries'][step - 1])


def test_time_weighted_fusion_feeds_temporal_attention():
    """x~ = sum_t softmax_t(Linear(shortcut_w)) * shortcut_x is what the
    temporal attention receives (plus the clip position)."""
    num_clips, num_frames = 2, 3
    decoder, reg_branch = build_decoder(num_frames, num_layers=1)
    layer = decoder.layers[0]
    captured = {}

    def keep(name):

        def hook(module, args, output):
            captured[name] = (args, output)

        return hook

    layer.frame_cross_attn_norm.register_forward_hook(keep('after_ca'))
    layer.frame_ffn_norm.register_forward_hook(keep('after_ffn'))
    layer.clip_temporal_attn.register_forward_hook(keep('tca'))
    inputs = make_inputs(num_clips, num_frames)
    with torch.no_grad():
        out = run(decoder, reg_branch, inputs, num_frames)
        shortcut_x = captured['after_ca'][1].double().view(
            num_clips, num_frames, Q, C)
        shortcut_w = captured['after_ffn'][1].double().view(
            num_clips, num_frames, Q, C)
        proj = decoder.layers[0].time_weight_proj
        logits = shortcut_w @ proj.weight.double().t() + proj.bias.double()
        weights = logits.exp() / logits.exp().sum(1, keepdim=True)
        fused = (weights * shortcut_x).sum(1)
        pos_proj = decoder.point2pos_proj
        clip_pos = out['clip_boxes'][0][..., :2].double() @ \
            pos_proj.weight.double().t() + pos_proj.bias.double()
        tca_args = captured['tca'][0]
    torch.testing.assert_close(
        tca_args[0].double(), fused + clip_pos, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tca_args[1], out['clip_boxes'][0])
    # training clip length: the temporal attention reads every frame
    memory = inputs[2]
    torch.testing.assert_close(
        tca_args[2], memory.view(num_clips, num_frames, NUM_TOKENS, C))


def test_backward_is_finite():
    num_clips, num_frames = 2, 3
    decoder, reg_branch = build_decoder(num_frames, num_layers=2)
    query, query_xy, memory, mask = make_inputs(num_clips, num_frames)
    query.requires_grad_(True)
    memory.requires_grad_(True)
    out = run(decoder, reg_branch, (query, query_xy, memory, mask), num_frames)
    loss = out['frame_boxes'].sum() + out['clip_queries'].square().mean() \
        + out['frame_queries'].square().mean()
    loss.backward()
    assert not out['clip_boxes'].requires_grad
    for tensor in (query, memory):
        assert tensor.grad.isfinite().all() and tensor.grad.abs().sum() > 0
    for name, param in [
            *decoder.named_parameters(), *reg_branch.named_parameters()
    ]:
        assert param.grad is not None, name
        assert param.grad.isfinite().all(), name


@pytest.mark.parametrize('clip_len', [2, 5, 7])
def test_test_time_clip_length(clip_len):
    decoder, reg_branch = build_decoder(num_frames=3, num_layers=2)
    decoder.eval()
    inputs = make_inputs(1, clip_len)
    captured = []
    decoder.layers[1].clip_temporal_attn.register_forward_pre_hook(
        lambda module, args: captured.append(args[2]))
    with torch.no_grad():
        out = run(decoder, reg_branch, inputs, clip_len)
        inds = get_tca_frame_inds(clip_len, 3)
        out_explicit = run(
            decoder, reg_branch, inputs, clip_len, tca_frame_inds=inds)
    assert out['frame_boxes'].shape == (3, clip_len, Q, 4)
    assert out['clip_queries'].shape == (3, 1, Q, C)
    for key in out:
        torch.testing.assert_close(out[key], out_explicit[key])
    memory = inputs[2]
    torch.testing.assert_close(captured[0], memory[inds][None])
    centre = (clip_len - 1) // 2
    torch.testing.assert_close(
        out['clip_boxes'][-1].double(),
        circumscribed_reference(out['frame_boxes'][-1][None], centre, 3),
        atol=1e-6,
        rtol=0)


def test_errors():
    decoder, reg_branch = build_decoder(num_frames=3, num_layers=1)
    inputs = make_inputs(2, 3)
    with pytest.raises(ValueError, match='num_frames'):
        run(decoder, reg_branch, inputs, 4)
    with pytest.raises(ValueError, match='tca_frame_inds'):
        run(decoder, reg_branch, inputs, 3, tca_frame_inds=[0, 1])
    with pytest.raises(ValueError, match='tca_frame_inds'):
        run(decoder, reg_branch, inputs, 3, tca_frame_inds=[0, 1, 3])
    query, query_xy, memory, mask = inputs
    with pytest.raises(ValueError, match='memory'):
        run(decoder, reg_branch, (query, query_xy, memory[:-1], mask), 3)
    with pytest.raises(ValueError, match='query_xy'):
        run(decoder, reg_branch, (query, query_xy[..., :1], memory, mask), 3)

# Copyright (c) OpenMMLab. All rights reserved.
"""The reference's SwinV2 backbone keys (Swin-L checkpoints) convert to
mmpretrain's SwinTransformerV2, patch merging included."""
import torch
import torch.nn.functional as F

CONVERTER = 'tools/model_converters/mdqe_reference_to_mmdet.py'
PREFIX = 'detr.backbone.0.backbone.'
# a small SwinV2 with the reference's layout (Swin-L: 192, 2/2/18/2, 6..48)
EMBED, DEPTHS, HEADS, WINDOWS = 16, (2, 1, 2, 1), (1, 2, 2, 4), (4, 4, 4, 2)


def reference_swinv2_state_dict() -> dict:
    """Keys and shapes of the reference SwinTransformerV2 (mdqe/backbone/
    swin_transformer_v2.py) with out_features stage3-5, random values."""
    torch.manual_seed(0)
    state = {
        'patch_embed.proj.weight': (EMBED, 3, 4, 4),
        'patch_embed.proj.bias': (EMBED, ),
        'patch_embed.norm.weight': (EMBED, ),
        'patch_embed.norm.bias': (EMBED, ),
    }
    for i, (depth, heads, window) in enumerate(zip(DEPTHS, HEADS, WINDOWS)):
        dim = EMBED * 2**i
        for j in range(depth):
            block = f'layers.{i}.blocks.{j}.'
            state.update({
                block + 'attn.logit_scale': (heads, 1, 1),
                block + 'attn.q_bias': (dim, ),
                block + 'attn.v_bias': (dim, ),
                block + 'attn.cpb_mlp.0.weight': (512, 2),
                block + 'attn.cpb_mlp.0.bias': (512, ),
                block + 'attn.cpb_mlp.2.weight': (heads, 512),
                block + 'attn.qkv.weight': (3 * dim, dim),
                block + 'attn.proj.weight': (dim, dim),
                block + 'attn.proj.bias': (dim, ),
                block + 'norm1.weight': (dim, ),
                block + 'norm1.bias': (dim, ),
                block + 'mlp.fc1.weight': (4 * dim, dim),
                block + 'mlp.fc1.bias': (4 * dim, ),
                block + 'mlp.fc2.weight': (dim, 4 * dim),
                block + 'mlp.fc2.bias': (dim, ),
                block + 'norm2.weight': (dim, ),
                block + 'norm2.bias': (dim, ),
            })
        if i < 3:
            state.update({
                f'layers.{i}.downsample.reduction.weight': (2 * dim, 4 * dim),
                f'layers.{i}.downsample.norm.weight': (2 * dim, ),
                f'layers.{i}.downsample.norm.bias': (2 * dim, ),
            })
        if i > 0:
            state.update({
                f'norm{i}.weight': (dim, ),
                f'norm{i}.bias': (dim, )
            })
    return {PREFIX + k: torch.randn(shape) for k, shape in state.items()}


def test_swinv2_backbone_converts_and_merges_patches_alike(
        load_tool, mmpretrain_models):
    from mmpretrain.models import SwinTransformerV2
    converter = load_tool(CONVERTER)
    reference = reference_swinv2_state_dict()
    converted = {
        converter.rename_reference_key(k): v
        for k, v in reference.items()
    }
    for key in list(converted):
        if converter.SWINV2_REDUCTION.fullmatch(key):
            converted[key] = converter.swinv2_unfold_order(converted[key])
    model = SwinTransformerV2(
        arch=dict(
            embed_dims=EMBED,
            depths=list(DEPTHS),
            num_heads=list(HEADS),
            extra_norm_every_n_blocks=0),
        window_size=list(WINDOWS),
        out_indices=(1, 2, 3),
        pad_small_map=True)
    state = {k[len('backbone.'):]: v for k, v in converted.items()}
    own = model.state_dict()
    buffers = {
        k
        for k in own
        if k.endswith(('relative_coords_table', 'relative_position_index'))
    }
    # every parameter of the model, nothing else (buffers are rebuilt)
    assert set(state) == set(own) - buffers
    for key, value in state.items():
        assert value.shape == own[key].shape, key
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert set(missing) <= buffers and not unexpected

    # patch merging: the reference's concat of x0..x3 through its reduction
    # and norm equals mmpretrain's unfold merging with converted weights
    x = torch.randn(2, 6, 10, EMBED, dtype=torch.float64)  # B, H, W, C
    merged = torch.cat([
        x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]
    ], -1)
    weight = reference[PREFIX + 'layers.0.downsample.reduction.weight']
    norm_w = reference[PREFIX + 'layers.0.downsample.norm.weight']
    norm_b = reference[PREFIX + 'layers.0.downsample.norm.bias']
    expected = F.layer_norm(merged @ weight.double().t(), (2 * EMBED, ),
                            norm_w.double(), norm_b.double())
    downsample = model.stages[1].downsample.double()
    out, shape = downsample(x.flatten(1, 2), (6, 10))
    assert tuple(shape) == (3, 5)
    torch.testing.assert_close(
        out, expected.flatten(1, 2), rtol=1e-10, atol=1e-10)

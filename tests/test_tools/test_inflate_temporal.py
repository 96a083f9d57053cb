# Copyright (c) OpenMMLab. All rights reserved.
"""tools/model_converters/inflate_temporal.py on mdqe_mm-style checkpoints."""
import pytest
import torch

from mdqe_mm.engine import inflate_temporal_attn
from mdqe_mm.models.layers import MDQEMSDeformAttn

TOOL = 'tools/model_converters/inflate_temporal.py'
PREFIX = 'track_head.decoder.layers.{}.clip_temporal_attn.'


@pytest.fixture
def inflate(load_tool):
    return load_tool(TOOL)


def checkpoint_with_temporal_attn(num_frames: int) -> dict:
    torch.manual_seed(0)
    state = {'backbone.conv1.weight': torch.randn(4, 3, 1, 1)}
    for layer in range(2):
        attn = MDQEMSDeformAttn(
            embed_dims=16,
            num_heads=2,
            num_levels=2,
            num_points=2,
            mode='temporal',
            num_frames=num_frames)
        for name, value in attn.state_dict().items():
            state[PREFIX.format(layer) + name] = value.clone().normal_() \
                if value.is_floating_point() else value
    return dict(state_dict=state, meta=dict(iter=2))


@pytest.mark.parametrize('mode', ['reference', 'repeat'])
def test_writes_the_inflated_checkpoint(inflate, tmp_path, capsys, mode):
    src = tmp_path / 'src.pth'
    dst = tmp_path / 'dst.pth'
    original = checkpoint_with_temporal_attn(4)
    torch.save(original, src)
    assert inflate.main(
        [str(src), str(dst), '--num-frames', '3', '--mode', mode]) == 0
    out = capsys.readouterr().out
    sources = [0, 0, 0] if mode == 'reference' else [0, 1, 2]
    assert f'2 temporal attention layers: 4 -> 3 frames, source frames ' \
        f'{sources}' in out
    written = torch.load(dst, weights_only=False)
    expected = dict(original['state_dict'])
    for layer in range(2):
        inflate_temporal_attn(expected, PREFIX.format(layer), 3, mode)
    assert written['state_dict'].keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(written['state_dict'][key], value), key
    assert written['meta']['iter'] == 2
    assert written['meta']['temporal_inflation']['num_frames'] == 3
    # the input is untouched
    assert torch.equal(
        torch.load(
            src, weights_only=False)['state_dict'][PREFIX.format(0) +
                                                   'attention_weights.weight'],
        original['state_dict'][PREFIX.format(0) + 'attention_weights.weight'])


def test_clear_errors(inflate, tmp_path):
    src = tmp_path / 'src.pth'
    torch.save(checkpoint_with_temporal_attn(1), src)
    with pytest.raises(SystemExit, match='is the input checkpoint'):
        inflate.main([str(src), str(src), '--num-frames', '2'])
    with pytest.raises(SystemExit, match='no such file'):
        inflate.main(
            [str(tmp_path / 'nope.pth'), 'x.pth', '--num-frames', '2'])
    plain = tmp_path / 'plain.pth'
    torch.save(dict(state_dict={'a.weight': torch.zeros(2)}), plain)
    with pytest.raises(SystemExit, match='has no temporal attention'):
        inflate.main(
            [str(plain),
             str(tmp_path / 'o.pth'), '--num-frames', '2'])
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint')
    with pytest.raises(SystemExit, match='cannot read .* as a PyTorch'):
        inflate.main([str(text), str(tmp_path / 'o.pth'), '--num-frames', '2'])
    with pytest.raises(SystemExit):
        inflate.main([str(src), str(tmp_path / 'o.pth'), '--num-frames', '0'])

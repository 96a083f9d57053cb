# Copyright (c) OpenMMLab. All rights reserved.
"""The host-side fast paths give the same results as the plain ones."""
import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
import torch.nn.functional as F
from mmdet.models.utils import aligned_bilinear

from mdqe_mm.models.trackers import VideoResultAggregator


def full_frame_masks(logits, stride, img_shape, ori_shape, thr=0.5):
    """The previous implementation: upsample whole frames."""
    up = aligned_bilinear(logits[:, None].float(), stride)
    probs = up[..., :img_shape[0], :img_shape[1]].sigmoid()
    probs = F.interpolate(probs, size=ori_shape, mode='nearest')
    return (probs[:, 0] > thr).numpy()


def blob_logits(num, height, width, seed):
    """Objects of random size and place (some on the border), smooth
    logits, one empty mask."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(
        torch.arange(height).float(), torch.arange(width).float(),
        indexing='ij')
    maps = []
    for i in range(num):
        cy, cx = torch.rand(2, generator=gen) * torch.tensor(
            [height, width])
        ry, rx = 1 + torch.rand(2, generator=gen) * torch.tensor(
            [height / 3, width / 3])
        dist = ((yy - cy) / ry)**2 + ((xx - cx) / rx)**2
        logits = 4 * (1 - dist) + torch.randn(
            height, width, generator=gen) * 0.5
        if i == num - 1:
            logits = logits.clamp(max=-0.5)  # empty
        maps.append(logits)
    maps.append(torch.full((height, width), 3.0))  # covers the frame
    return torch.stack(maps)


@pytest.mark.parametrize(
    'stride,lowres,img_shape,ori_shape',
    [
        (4, (24, 40), (96, 160), (96, 160)),  # no resize
        (4, (23, 40), (90, 160), (180, 320)),  # up x2, padded input
        (4, (24, 40), (93, 157), (61, 97)),  # down, odd sizes
        (2, (13, 9), (25, 17), (25, 17)),
        (1, (6, 8), (5, 7), (11, 13)),
    ])
def test_masks_to_rles_equals_full_frame_upsampling(stride, lowres,
                                                    img_shape, ori_shape):
    logits = blob_logits(6, *lowres, seed=stride)
    agg = VideoResultAggregator(mask_stride=stride)
    agg.start_video(1, img_shape, ori_shape)
    rles = agg.masks_to_rles(logits)
    expected = full_frame_masks(logits, stride, img_shape, ori_shape)
    got = mask_util.decode(rles).transpose(2, 0, 1).astype(bool)
    assert got.shape == expected.shape
    assert np.array_equal(got, expected)
    assert got[-2].sum() == 0 and got[-1].all()
    assert sum(int(m.sum() > 0) for m in got[:-2]) >= 3


def test_masks_to_rles_other_threshold():
    logits = blob_logits(3, 20, 30, seed=7)
    agg = VideoResultAggregator(mask_stride=4, mask_thr=0.8)
    agg.start_video(1, (80, 120), (80, 120))
    got = mask_util.decode(agg.masks_to_rles(logits)).transpose(2, 0, 1)
    expected = full_frame_masks(logits, 4, (80, 120), (80, 120), thr=0.8)
    assert np.array_equal(got.astype(bool), expected)


@pytest.mark.parametrize('time_stages', [False, True])
def test_inferencer_under_autocast_and_stage_timing(time_stages):
    """Post-processing and tracking run in float32 under the caller's
    autocast (bf16 matmuls used to break the tracker's index-put), and the
    stage timings cover every stage when asked for."""
    from mdqe_mm.models.trackers import NearOnlineInferencer
    gen = torch.Generator().manual_seed(0)
    embeds = torch.randn(3, 16, generator=gen)

    def extract(frames):
        return dict(index=torch.arange(frames.shape[0]))

    def decode(feats, clips):
        outs = []
        for clip in clips:
            masks = torch.full((5, len(clip), 6, 8), -4.)
            masks[:3, :, 1:4, 2:6] = 4.
            masks[1, :, :, :4] = -4.
            scores = torch.full((5, 2), 0.02)
            scores[:3, 1] = 0.9
            outs.append(
                dict(
                    scores=scores,
                    mask_logits=masks,
                    clip_embeds=torch.cat(
                        [embeds, torch.randn(2, 16, generator=gen)])))
        return outs

    inferencer = NearOnlineInferencer(
        num_frames=2, window_size=3, time_stages=time_stages)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        result = inferencer.predict(torch.zeros(7, 3, 24, 32), extract,
                                    decode)
    assert inferencer.tracker.num_tracks >= 1
    assert len(result[6].pred_track_instances.masks) > 0
    if time_stages:
        assert set(inferencer.last_timings) == {
            'extract', 'decode', 'postprocess', 'track', 'rle'
        }
        assert all(v >= 0 for v in inferencer.last_timings.values())
    else:
        assert inferencer.last_timings == {}

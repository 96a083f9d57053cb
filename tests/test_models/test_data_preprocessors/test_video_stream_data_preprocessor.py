# Copyright (c) OpenMMLab. All rights reserved.
import copy

import numpy as np
import pytest
import torch
from mmdet.models.data_preprocessors import TrackDataPreprocessor
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, TrackDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData

from mdqe_mm.models.data_preprocessors import VideoStreamDataPreprocessor

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]
CFG = dict(
    mean=MEAN, std=STD, bgr_to_rgb=True, pad_size_divisor=32, pad_mask=True)


def make_batch(sizes, num_frames=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for h, w in sizes:
        inputs.append(
            torch.randint(
                0,
                256, (num_frames, 3, h, w),
                generator=gen,
                dtype=torch.uint8))
        frames = []
        for f in range(num_frames):
            det = DetDataSample(
                metainfo=dict(frame_id=f, img_shape=(h, w), ori_shape=(h, w)))
            gt = InstanceData()
            gt.masks = BitmapMasks(np.ones((1, h, w), dtype=np.uint8), h, w)
            gt.labels = torch.tensor([0])
            det.gt_instances = gt
            frames.append(det)
        samples.append(TrackDataSample(video_data_samples=frames))
    return dict(inputs=inputs, data_samples=samples)


def ref_window(frames_uint8, pad_hw):
    """Channel flip, normalise, zero-pad, all in float64."""
    x = frames_uint8.double()[:, [2, 1, 0]]
    mean = torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
    x = (x - mean) / std
    out = torch.zeros(x.shape[:2] + pad_hw, dtype=torch.float64)
    out[..., :x.shape[-2], :x.shape[-1]] = x
    return out


def test_training_mode_is_track_data_preprocessor():
    ours = MODELS.build(dict(type='VideoStreamDataPreprocessor', **CFG))
    theirs = TrackDataPreprocessor(**CFG)
    batch = make_batch([(40, 50), (36, 70)])
    out = ours(copy.deepcopy(batch), training=True)
    ref = theirs(copy.deepcopy(batch), training=True)
    assert out['inputs'].dtype == torch.float32
    assert out['inputs'].shape == (2, 3, 3, 64, 96)
    torch.testing.assert_close(out['inputs'], ref['inputs'])
    for video, ref_video in zip(out['data_samples'], ref['data_samples']):
        for frame, ref_frame in zip(video, ref_video):
            assert frame.metainfo == ref_frame.metainfo
            assert frame.gt_instances.masks.masks.shape == (1, 64, 96)


def test_predict_mode_keeps_uint8_on_cpu():
    pre = VideoStreamDataPreprocessor(**CFG)
    batch = make_batch([(40, 50)], num_frames=5)
    video = batch['inputs'][0]
    out = pre(batch, training=False)
    assert isinstance(out['inputs'], list)
    assert out['inputs'][0] is video  # not copied, cast or moved
    assert out['inputs'][0].dtype == torch.uint8
    for frame in out['data_samples'][0]:
        assert frame.metainfo['pad_shape'] == (64, 64)
        assert frame.metainfo['batch_input_shape'] == (64, 64)
        # gt masks are not padded in predict mode (as mmdet)
        assert frame.gt_instances.masks.masks.shape == (1, 40, 50)


def test_prepare_window_matches_float64_reference_and_mmdet():
    pre = VideoStreamDataPreprocessor(**CFG)
    batch = make_batch([(40, 50)], num_frames=6, seed=1)
    video = batch['inputs'][0]
    window = pre.prepare_window(video[2:5])
    assert window.dtype == torch.float32 and window.shape == (3, 3, 64, 64)
    torch.testing.assert_close(
        window.double(),
        ref_window(video[2:5], (64, 64)),
        rtol=1e-5,
        atol=1e-5)
    # the same as TrackDataPreprocessor's output for those frames
    full = TrackDataPreprocessor(**CFG)(
        copy.deepcopy(batch), training=False)['inputs'][0]
    torch.testing.assert_close(window, full[2:5])


def test_stacked_tensor_and_bad_inputs():
    pre = VideoStreamDataPreprocessor(**CFG)
    stacked = torch.zeros((1, 2, 3, 32, 32), dtype=torch.uint8)
    out = pre(dict(inputs=stacked, data_samples=None), training=False)
    assert len(out['inputs']) == 1 and out['inputs'][0].shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match='video 0'):
        pre(dict(inputs=[torch.zeros((3, 32, 32))], data_samples=None))
    with pytest.raises(ValueError, match='prepare_window'):
        pre.prepare_window(torch.zeros((3, 32, 32)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_prepare_window_moves_only_the_window_to_cuda():
    pre = VideoStreamDataPreprocessor(**CFG).cuda()
    video = torch.randint(0, 256, (8, 3, 40, 50), dtype=torch.uint8)
    out = pre(dict(inputs=[video], data_samples=None), training=False)
    assert out['inputs'][0].device.type == 'cpu'
    window = pre.prepare_window(out['inputs'][0][:2])
    assert window.is_cuda and window.shape == (2, 3, 64, 64)

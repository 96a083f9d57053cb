# Copyright (c) OpenMMLab. All rights reserved.
"""Frame size checks: image headers, and every frame at inference."""
import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample, TrackDataSample
from PIL import Image

from mdqe_mm.models.trackers import NearOnlineInferencer
from mdqe_mm.utils import (FrameSizeError, check_frame_sizes,
                           check_inference_frames, read_image_size)


def test_read_image_size_from_the_header(tmp_path):
    Image.new('RGB', (40, 30)).save(tmp_path / 'a.jpg')
    Image.new('L', (7, 5)).save(tmp_path / 'b.png')
    assert read_image_size(str(tmp_path / 'a.jpg')) == (30, 40)
    assert read_image_size(str(tmp_path / 'b.png')) == (5, 7)
    # EXIF orientation 6 (rotate 90): decoders return the transposed frame
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new('RGB', (40, 30)).save(tmp_path / 'r.jpg', exif=exif)
    assert read_image_size(str(tmp_path / 'r.jpg')) == (40, 30)
    (tmp_path / 'bad.jpg').write_bytes(b'not an image')
    with pytest.raises(OSError, match='bad.jpg is not an image file'):
        read_image_size(str(tmp_path / 'bad.jpg'))
    with pytest.raises(OSError, match='cannot read image .*nope.jpg'):
        read_image_size(str(tmp_path / 'nope.jpg'))


def test_check_frame_sizes_names_the_frame():
    check_frame_sizes([(4, 6), (4, 6)], 'video 3')
    check_frame_sizes([], 'video 3')
    with pytest.raises(
            FrameSizeError,
            match=r'video 3: b.jpg has size 5x6 \(h x w\) but '
            'a.jpg has 4x6'):
        check_frame_sizes([(4, 6), (4, 6), (5, 6)], 'video 3',
                          ['a.jpg', 'x.jpg', 'b.jpg'])


def samples(shapes, key='ori_shape'):
    frames = []
    for index, shape in enumerate(shapes):
        frames.append(
            DetDataSample(metainfo={
                'video_id': 7,
                'img_path': f'v/{index:05d}.jpg',
                key: shape
            }))
    return TrackDataSample(video_data_samples=frames)


def test_check_inference_frames():
    same = [torch.zeros(3, 8, 12) for _ in range(3)]
    check_inference_frames(same, samples([(16, 24)] * 3))
    check_inference_frames(torch.zeros(3, 3, 8, 12))
    other = same[:2] + [torch.zeros(3, 9, 12)]
    with pytest.raises(
            FrameSizeError,
            match=r'video 7: frame 2 \(v/00002.jpg\) has input '
            r'size 9x12 \(h x w\) but frame 0 \(v/00000.jpg\) has '
            '8x12'):
        check_inference_frames(other, samples([(16, 24)] * 3))
    with pytest.raises(FrameSizeError, match='the video: frame 2 has input'):
        check_inference_frames(other)
    # frames resized to one size but of different original sizes
    with pytest.raises(
            FrameSizeError,
            match=r'frame 1 \(v/00001.jpg\) has original size '
            '20x24'):
        check_inference_frames(
            torch.zeros(3, 3, 8, 12), samples([(16, 24), (20, 24), (16, 24)]))
    with pytest.raises(FrameSizeError, match='has resized size'):
        check_inference_frames(
            torch.zeros(2, 3, 8, 12),
            samples([(8, 12), (8, 11)], key='img_shape'))


def test_inferencer_checks_frames_before_any_work():
    inferencer = NearOnlineInferencer(num_frames=2, window_size=2)
    calls = []

    def extract(frames):
        calls.append(len(frames))
        raise AssertionError('must not be reached')

    frames = [torch.zeros(3, 8, 12, dtype=torch.uint8)] * 2 + [
        torch.zeros(3, 8, 16, dtype=torch.uint8)
    ]
    with pytest.raises(FrameSizeError, match='frame 2 has input size 8x16'):
        inferencer.predict(frames, extract, None)
    with pytest.raises(FrameSizeError, match='original size'):
        inferencer.predict(
            torch.from_numpy(np.zeros((3, 3, 8, 12), np.uint8)), extract, None,
            samples([(8, 12), (8, 12), (9, 12)]))
    assert calls == []


class LazyFrames:
    """A streamed video: frames are made on access and counted."""

    def __init__(self, shapes):
        self.shapes = shapes
        self.reads = []

    def __len__(self):
        return len(self.shapes)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        self.reads.append(index)
        return torch.zeros((3, ) + self.shapes[index], dtype=torch.uint8)


def test_lazy_frames_are_read_once_and_checked_per_window():
    """A lazy video is not read up front for the check: each frame is read
    once, and a frame of another size stops the window that holds it."""
    inferencer = NearOnlineInferencer(num_frames=2, window_size=2)
    extracted = []

    def extract(frames):
        extracted.append(len(frames))
        raise RuntimeError('stop after the first window')

    frames = LazyFrames([(8, 12)] * 4)
    with pytest.raises(RuntimeError, match='stop after the first window'):
        inferencer.predict(frames, extract, None)
    assert frames.reads == [0, 0, 1] and extracted == [2]  # frame 0: shape

    frames = LazyFrames([(8, 12), (8, 16), (8, 12), (8, 12)])
    extracted.clear()
    with pytest.raises(FrameSizeError,
                       match='video 7: frame 1 \\(v/00001.jpg\\) has input '
                       r'size 8x16 \(h x w\) but frame 0 \(v/00000.jpg\)'):
        inferencer.predict(frames, extract, None, samples([(16, 24)] * 4))
    assert extracted == [] and frames.reads == [0, 0, 1]

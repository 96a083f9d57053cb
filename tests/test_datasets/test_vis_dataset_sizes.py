# Copyright (c) OpenMMLab. All rights reserved.
"""VISDataset compares declared, RLE and actual frame sizes."""
import json

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope

from mdqe_mm.datasets import VISDataset
from mdqe_mm.utils import FrameSizeError

init_default_scope('mmdet')
ANN = 'vis_tiny_ytvis2019.json'  # two videos of 24x32 frames


def build(root, ann=ANN, **kwargs):
    kwargs.setdefault('pipeline', [])
    return VISDataset(
        data_root=str(root),
        ann_file=ann,
        data_prefix=dict(img_path='frames'),
        preset='youtube_vis_2019',
        **kwargs)


def edit(root, change):
    path = root / ANN
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_declared_size_is_checked_on_the_first_frame(tiny_vis_root):
    assert len(build(tiny_vis_root)) == 2

    def taller(data):
        data['videos'][1]['height'] = 25

    edit(tiny_vis_root, taller)
    with pytest.raises(
            FrameSizeError,
            match=r'video 2 \(vid_b\) declares height x width '
            r'25x32 but its first frame .*frames/vid_b/00000.jpg '
            'is 24x32'):
        build(tiny_vis_root)
    # the check reads files, so it goes with check_image_files
    assert len(build(tiny_vis_root, check_image_files=False)) == 2
    # an unreadable first frame is named as well
    edit(tiny_vis_root, lambda d: d['videos'][1].update(height=24))
    (tiny_vis_root / 'frames' / 'vid_b' / '00000.jpg').write_bytes(b'x')
    with pytest.raises(
            FrameSizeError, match='video 2: .*vid_b/00000.jpg is '
            'not an image'):
        build(tiny_vis_root)


def test_rle_size_must_be_the_video_size(tiny_vis_root):

    def wrong_rle(data):
        data['annotations'][0]['segmentations'][0]['size'] = [32, 24]

    edit(tiny_vis_root, wrong_rle)
    with pytest.raises(
            FrameSizeError,
            match=r'annotation 11 of video 1 \(vid_a\), frame 0: '
            r'RLE size \[32, 24\] differs from the video size '
            r'\[24, 32\]'):
        build(tiny_vis_root)

    def string_size(data):
        data['annotations'][0]['segmentations'][0]['size'] = ['24', '32']

    edit(tiny_vis_root, string_size)
    with pytest.raises(FrameSizeError, match=r"RLE size \['24', '32'\]"):
        build(tiny_vis_root)


def test_frames_of_another_size_are_named_at_test_time(tiny_vis_root):
    odd = tiny_vis_root / 'frames' / 'vid_a' / '00010.jpg'
    cv2.imwrite(str(odd), np.zeros((20, 32, 3), np.uint8))
    pipeline = [
        dict(
            type='TransformBroadcaster',
            transforms=[dict(type='LoadImageFromFile')]),
        dict(type='PackTrackInputs')
    ]
    ds = build(tiny_vis_root, pipeline=pipeline, test_mode=True)
    assert ds[1]['inputs'].shape[-2:] == (24, 32)  # other video is fine
    with pytest.raises(
            FrameSizeError,
            match=r'video 1 \(vid_a\): frame .*vid_a/00010.jpg '
            r'is 20x32 \(h x w\) but frame .*vid_a/00000.jpg is '
            '24x32'):
        ds[0]

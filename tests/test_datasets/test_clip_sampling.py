# Copyright (c) OpenMMLab. All rights reserved.
from collections import Counter

import numpy as np
import pytest

from mdqe_mm.datasets.transforms import ClipFrameSample


def video_info(length, video_id=5):
    images = [
        dict(
            img_id=100 + i,
            frame_id=i,
            img_path=f'v/{i:05d}.jpg',
            instances=[dict(instance_id=1, bbox_label=0)])
        for i in range(length)
    ]
    return dict(video_id=video_id, video_length=length, images=images)


def test_clip_frames_lie_in_window_and_are_sorted():
    np.random.seed(0)
    sampler = ClipFrameSample(num_frames=4, frame_range=3)
    for _ in range(300):
        out = sampler(video_info(20))
        frame_ids = out['frame_id']
        assert len(frame_ids) == 4
        assert frame_ids == sorted(frame_ids)
        ref = frame_ids[out['key_frame_flags'].index(True)]
        assert all(abs(f - ref) <= 3 for f in frame_ids)
        # enough candidates (>= 3 in any window of a 20-frame video):
        # drawn without replacement
        assert len(set(frame_ids)) == 4
        assert out['clip_frame_index'] == [0, 1, 2, 3]
        assert out['video_length'] == [4] * 4
        assert out['ori_video_length'] == [20] * 4
        assert out['video_id'] == [5] * 4
        assert out['img_id'] == [100 + f for f in frame_ids]


def test_reference_frame_is_uniform_and_offsets_follow_window():
    np.random.seed(1)
    length, frame_range, draws = 12, 2, 6000
    sampler = ClipFrameSample(num_frames=3, frame_range=frame_range)
    refs = Counter()
    offsets = Counter()
    for _ in range(draws):
        out = sampler(video_info(length))
        ref = out['frame_id'][out['key_frame_flags'].index(True)]
        refs[ref] += 1
        for f, is_key in zip(out['frame_id'], out['key_frame_flags']):
            if not is_key:
                offsets[f - ref] += 1
    # reference: uniform over the frames (binomial 4-sigma band)
    p = 1 / length
    sigma = np.sqrt(draws * p * (1 - p))
    for frame in range(length):
        assert abs(refs[frame] - draws * p) < 4 * sigma
    # expected offset frequencies from the window rule, computed directly:
    # for a reference r the 2 others are a uniform 2-subset of the window
    expected = Counter()
    for r in range(length):
        window = [
            o for o in range(-frame_range, frame_range + 1)
            if o != 0 and 0 <= r + o < length
        ]
        for o in window:
            # P(o chosen | r) = 2 / |window| (without replacement)
            expected[o] += (1 / length) * 2 / len(window)
    total = sum(offsets.values())
    assert total == 2 * draws
    for o, prob in expected.items():
        p_o = prob / 2
        sigma = np.sqrt(total * p_o * (1 - p_o))
        assert abs(offsets[o] - total * p_o) < 4 * sigma, o
    assert set(offsets) == set(expected)


def test_short_video_samples_with_replacement():
    np.random.seed(2)
    sampler = ClipFrameSample(num_frames=5, frame_range=10)
    seen_repeat = False
    for _ in range(50):
        frame_ids = sampler(video_info(3))['frame_id']
        assert len(frame_ids) == 5 and frame_ids == sorted(frame_ids)
        assert set(frame_ids) <= {0, 1, 2}
        seen_repeat |= len(set(frame_ids)) < 5
    assert seen_repeat
    # a one-frame video repeats its frame
    out = sampler(video_info(1))
    assert out['frame_id'] == [0] * 5
    assert sum(out['key_frame_flags']) == 1


def test_always_replace_repeats_frames_in_long_videos():
    np.random.seed(3)
    sampler = ClipFrameSample(num_frames=4, frame_range=2, always_replace=True)
    repeats = sum(
        len(set(sampler(video_info(30))['frame_id'])) < 4 for _ in range(200))
    assert repeats > 0


def test_key_frame_id_and_whole_video():
    sampler = ClipFrameSample(num_frames=3, frame_range=1)
    info = video_info(10)
    info['key_frame_id'] = 0
    out = sampler(info)
    assert out['frame_id'] == [0, 1, 1]
    whole = ClipFrameSample(whole_video=True)(video_info(7))
    assert whole['frame_id'] == list(range(7))
    assert whole['clip_frame_index'] == list(range(7))
    assert whole['video_length'] == [7] * 7
    bad = video_info(4)
    bad['key_frame_id'] = 4
    with pytest.raises(ValueError, match='outside video 5'):
        sampler(bad)


def test_duplicated_frames_do_not_share_state():
    np.random.seed(4)
    out = ClipFrameSample(num_frames=4, frame_range=5)(video_info(1))
    out['instances'][0].append('x')
    assert out['instances'][1] == [dict(instance_id=1, bbox_label=0)]


def test_bad_arguments():
    with pytest.raises(ValueError):
        ClipFrameSample(num_frames=0)
    with pytest.raises(ValueError):
        ClipFrameSample(frame_range=-1)
    with pytest.raises(ValueError):
        ClipFrameSample(num_frames=3, frame_range=0)
    assert 'num_frames=4' in repr(ClipFrameSample())

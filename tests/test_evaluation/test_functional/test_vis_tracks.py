# Copyright (c) OpenMMLab. All rights reserved.
import copy
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mdqe_mm.evaluation.functional import (VISFormatError, evaluate_vis,
                                           load_vis_ground_truth,
                                           load_vis_results)


@pytest.fixture
def small_set(vis_builders):
    box, ann = vis_builders['box_rle'], vis_builders['make_annotation']
    g1 = [box(10, 10, 30, 20, 64, 96), None, box(12, 10, 30, 20, 64, 96)]
    g2 = [box(50, 30, 20, 20, 64, 96)] * 2
    gt = dict(
        videos=[
            dict(id=1, height=64, width=96, length=3),
            dict(id=2, height=64, width=96, file_names=['a.jpg', 'b.jpg'])
        ],
        annotations=[
            vis_builders['make_annotation'](5, 1, 1, g1),
            ann(6, 2, 2, g2)
        ],
        categories=[dict(id=1, name='a'), dict(id=2, name='b')])
    results = [
        dict(video_id=1, category_id=1, score=0.9, segmentations=g1),
        dict(video_id=2, category_id=2, score=0.8, segmentations=g2)
    ]
    return gt, results


def _broken(results, index, **changes):
    broken = copy.deepcopy(results)
    broken[index].update(changes)
    return broken


def test_parsed_tracks(small_set):
    gt, results = small_set
    parsed = load_vis_ground_truth(gt)
    assert list(parsed.videos) == [1, 2] and parsed.videos[2].length == 2
    tracks = parsed.tracks[1]
    np.testing.assert_array_equal(tracks.present, [[True, False, True]])
    np.testing.assert_array_equal(tracks.frame_areas, [[600, 0, 600]])
    assert tracks.avg_areas[0] == 600.0
    preds = load_vis_results(results, parsed)
    assert list(preds) == [1, 2]
    np.testing.assert_array_equal(preds[2].track_ids, [1])


@pytest.mark.parametrize('change, message', [
    (dict(video_id=99), r'result #1 \(video_id=99.*not in the ground truth'),
    (dict(category_id=7), r'result #1 .*unknown category_id'),
    (dict(score=float('nan')), r'result #1 .*score must be a finite'),
    (dict(segmentations=[None]), r'result #1 .*2 frames, got 1'),
])
def test_bad_result_fields(small_set, change, message):
    gt, results = small_set
    parsed = load_vis_ground_truth(gt)
    with pytest.raises(VISFormatError, match=message):
        load_vis_results(_broken(results, 1, **change), parsed)


def test_malformed_rles_are_named(small_set):
    gt, results = small_set
    parsed = load_vis_ground_truth(gt)
    good = results[1]['segmentations'][0]
    other = mask_utils.encode(np.asfortranarray(np.ones((32, 96),
                                                        np.uint8)))
    cases = {
        # truncated inside a run
        'not a valid compressed RLE': dict(size=[64, 96],
                                           counts=good['counts'][:-1] + 'X'),
        'foreign': dict(size=[64, 96], counts=good['counts'] + '~'),
        # a valid string of a 32x96 mask declared as 64x96
        'cover 3072 pixels': dict(
            size=[64, 96], counts=other['counts'].decode()),
        'differs from the video size': dict(
            size=[32, 96], counts=other['counts'].decode()),
        'needs both': dict(size=[64, 96]),
        'must be an RLE dict': 'abc',
    }
    for message, seg in cases.items():
        broken = copy.deepcopy(results)
        broken[1]['segmentations'][1] = seg
        with pytest.raises(VISFormatError) as err:
            load_vis_results(broken, parsed)
        text = str(err.value)
        assert 'result #1 (video_id=2, category_id=2), frame 1' in text, text
        assert message in text or message.lower() in text.lower(), text


def test_uncompressed_rle_is_accepted(small_set):
    gt, results = small_set
    parsed = load_vis_ground_truth(gt)
    dense = mask_utils.decode(results[1]['segmentations'][0])
    flat = dense.ravel(order='F')
    change = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.r_[0, change, flat.size]).tolist()
    if flat[0]:
        runs = [0] + runs
    converted = copy.deepcopy(results)
    converted[1]['segmentations'][0] = dict(size=[64, 96], counts=runs)
    assert evaluate_vis(gt, converted).stats == evaluate_vis(gt,
                                                             results).stats
    converted[1]['segmentations'][0]['counts'] = runs[:-1]
    with pytest.raises(VISFormatError, match='frame 0: uncompressed RLE'):
        load_vis_results(converted, parsed)


def test_results_file_and_empty_list(small_set, tmp_path):
    gt, results = small_set
    parsed = load_vis_ground_truth(gt)
    path = tmp_path / 'results.json'
    path.write_text(json.dumps(results))
    from_file = load_vis_results(str(path), parsed)
    assert sorted(from_file) == [1, 2]
    assert load_vis_results([], parsed) == {}
    with pytest.raises(VISFormatError, match='must be a list'):
        load_vis_results(dict(a=1), parsed)


def test_bad_ground_truth(small_set):
    gt, _ = small_set
    cases = [
        (dict(video_id=3), r'annotation id=6 \(video_id=3\): unknown video'),
        (dict(category_id=9), 'annotation id=6 .*unknown category_id 9'),
        (dict(segmentations=[None]), 'the video has 2 frames, got 1'),
        (dict(occlusion=['no_occlusion', 'hidden']),
         "frame 1: unknown occlusion label 'hidden'"),
    ]
    for change, message in cases:
        broken = copy.deepcopy(gt)
        broken['annotations'][1].update(change)
        if 'occlusion' in change:
            broken['annotations'][0]['occlusion'] = ['no_occlusion'] * 3
        with pytest.raises(VISFormatError, match=message):
            load_vis_ground_truth(broken)
    # occlusion labels on some annotations only
    partial = copy.deepcopy(gt)
    partial['annotations'][0]['occlusion'] = ['no_occlusion'] * 3
    with pytest.raises(VISFormatError, match='id=6 has no "occlusion"'):
        load_vis_ground_truth(partial)
    length_mismatch = copy.deepcopy(gt)
    length_mismatch['videos'][1]['length'] = 3
    with pytest.raises(VISFormatError, match='video 2 has length 3'):
        load_vis_ground_truth(length_mismatch)


def test_hidden_ground_truth_and_polygons(small_set):
    gt, results = small_set
    hidden = copy.deepcopy(gt)
    hidden['annotations'] = None
    parsed = load_vis_ground_truth(hidden)
    assert not parsed.has_annotations and parsed.tracks == {}
    # predictions can still be checked against the videos
    assert sorted(load_vis_results(results, parsed)) == [1, 2]
    with pytest.raises(ValueError, match='annotations": null'):
        evaluate_vis(parsed, results)

    poly = copy.deepcopy(gt)
    square = [[50.0, 30.0, 70.0, 30.0, 70.0, 50.0, 50.0, 50.0]]
    poly['annotations'][1]['segmentations'] = [square, square]
    del poly['annotations'][1]['areas']
    tracks = load_vis_ground_truth(poly).tracks[2]
    expected = mask_utils.merge(mask_utils.frPyObjects(square, 64, 96))
    assert tracks.frame_areas[0, 0] == mask_utils.area(expected)
    assert tracks.avg_areas[0] == mask_utils.area(expected)

# Copyright (c) OpenMMLab. All rights reserved.
"""Up-front checks of RLE sizes, polygons and JSON files (the evaluator's
numerics are covered by test_vis_eval.py)."""
import copy
import json

import pytest

from mdqe_mm.evaluation.functional import (VISFormatError, evaluate_vis,
                                           load_vis_ground_truth)


def first_mask(entry):
    index = next(i for i, s in enumerate(entry['segmentations']) if s)
    return index, entry['segmentations'][index]


@pytest.fixture
def data(vis_builders):
    gt, results = vis_builders['random_vis_dataset'](4, height=60, width=80)
    return gt, [r for r in results if any(r['segmentations'])]


@pytest.mark.parametrize(
    'size', [['60', '80'], [60.0, 80.0], [True, 80], [60], '60x80', None])
def test_rle_size_must_be_two_integers(data, size):
    gt, results = data
    results = copy.deepcopy(results)
    frame, mask = first_mask(results[0])
    mask['size'] = size
    where = (f'result #0 (video_id={results[0]["video_id"]}, category_id='
             f'{results[0]["category_id"]}), frame {frame}')
    with pytest.raises(VISFormatError) as info:
        evaluate_vis(gt, results)
    assert where in str(info.value)
    assert 'RLE "size" must be [height, width] as two integers, got ' \
        f'{size!r}' in str(info.value)


def test_string_rle_size_in_ground_truth(data):
    gt, results = data
    gt = copy.deepcopy(gt)
    ann = next(a for a in gt['annotations'] if any(a['segmentations']))
    frame, mask = first_mask(ann)
    mask['size'] = [str(s) for s in mask['size']]
    with pytest.raises(
            VISFormatError,
            match=rf'annotation id={ann["id"]} \(video_id='
            rf'{ann["video_id"]}\), frame {frame}: RLE "size" '
            'must be'):
        load_vis_ground_truth(gt)


@pytest.mark.parametrize('polygon, message', [
    ([[1, 1, 10, 1]], 'polygon 0 has 4 numbers; a polygon needs an even '
     'count of at least 6'),
    ([[1, 1, 10, 1, 10, 10], [1, 1, 10]], 'polygon 1 has 3 numbers'),
    ([[1, 1, 10, 1, 10]], 'polygon 0 has 5 numbers'),
    ([[1, 1, 10, float('nan'), 10, 10]], 'polygon 0 holds a NaN or '
     'infinite coordinate'),
])
def test_bad_polygons_are_named(data, polygon, message):
    gt, results = data
    results = copy.deepcopy(results)
    frame, _ = first_mask(results[1])
    results[1]['segmentations'][frame] = polygon
    with pytest.raises(VISFormatError) as info:
        evaluate_vis(gt, results)
    assert f'result #1 (video_id={results[1]["video_id"]}' in str(info.value)
    assert f'frame {frame}: {message}' in str(info.value)


def test_valid_polygons_evaluate_as_their_rles(data):
    from pycocotools import mask as mask_utils
    gt, results = data
    polygon = [[1, 1, 30, 1, 30, 25, 1, 25]]
    rle = mask_utils.merge(mask_utils.frPyObjects(polygon, 60, 80))
    rle = dict(size=[60, 80], counts=rle['counts'].decode())
    length = len(results[0]['segmentations'])

    def with_track(segmentation):
        extra = dict(
            video_id=results[0]['video_id'],
            category_id=results[0]['category_id'],
            score=0.6,
            segmentations=[segmentation] * length)
        return evaluate_vis(gt, results + [extra]).to_dict()

    assert with_track(polygon) == with_track(rle)


def test_json_errors_name_the_file(tmp_path, data):
    gt, _ = data
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(gt)[:-20])
    with pytest.raises(
            VISFormatError,
            match=rf'{path}: not valid JSON: .* at line 1, column'):
        load_vis_ground_truth(str(path))
    path.write_text('')
    with pytest.raises(VISFormatError, match=rf'{path}: the file is empty'):
        load_vis_ground_truth(str(path))
    path.write_bytes(b'\x80\x02garbage')
    with pytest.raises(VISFormatError, match='not a JSON text file'):
        load_vis_ground_truth(str(path))

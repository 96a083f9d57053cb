# Copyright (c) OpenMMLab. All rights reserved.
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mdqe_mm.evaluation.functional import (VISFormatError,
                                           compressed_counts_stats,
                                           describe_bad_counts, normalize_rle)


def _random_masks(rng, height, width, num):
    masks = []
    for i in range(num):
        mask = np.zeros((height, width), np.uint8)
        y, x = rng.integers(0, height), rng.integers(0, width)
        mask[y:y + rng.integers(1, height + 1),
             x:x + rng.integers(1, width + 1)] = 1
        if i % 3 == 0:
            mask |= (rng.random((height, width)) < 0.02).astype(np.uint8)
        if i % 7 == 0:
            mask[:] = 0
        if i % 11 == 0:
            mask[:] = 1
        masks.append(mask)
    return np.asfortranarray(np.stack(masks, -1))


@pytest.mark.parametrize('height, width', [(1, 1), (3, 4), (97, 131),
                                           (480, 1200)])
def test_stats_match_pycocotools(height, width):
    rng = np.random.default_rng(height * width)
    rles = mask_utils.encode(_random_masks(rng, height, width, 40))
    expected_areas = np.array([mask_utils.area(r) for r in rles])
    for counts in ([r['counts'] for r in rles],
                   [r['counts'].decode() for r in rles]):
        areas, totals, bad = compressed_counts_stats(counts)
        assert not bad.any()
        np.testing.assert_array_equal(areas, expected_areas)
        np.testing.assert_array_equal(totals, height * width)


def test_multi_chunk_and_negative_deltas():
    # long runs (several 5-bit chunks) and shrinking runs (negative deltas)
    mask = np.zeros((1000, 3), np.uint8, order='F')
    mask[100:900, 0] = 1
    mask[400:410, 1] = 1
    mask[0:999, 2] = 1
    rle = mask_utils.encode(mask[:, :, None].copy(order='F'))[0]
    areas, totals, bad = compressed_counts_stats([rle['counts']])
    assert not bad[0]
    assert areas[0] == 800 + 10 + 999 and totals[0] == 3000


def test_bad_strings_are_flagged():
    good = mask_utils.encode(np.asfortranarray(np.eye(8, dtype=np.uint8)))
    good = good['counts'].decode()
    cases = ['', good + '~', good + ' ', good[:-1] + 'o', 'o' * 9 + '1',
             'é', None]
    for bad_counts in cases:
        _, _, bad = compressed_counts_stats([good, bad_counts, good])
        np.testing.assert_array_equal(bad, [False, True, False])
        assert describe_bad_counts(bad_counts, 8, 8)
    # a well-formed string of a different frame size: valid encoding, but
    # the runs do not add up to the frame
    _, totals, bad = compressed_counts_stats([good])
    assert not bad[0] and totals[0] == 64
    assert 'cover 64 pixels' in describe_bad_counts(good, 8, 9)


def test_normalize_rle():
    square = [[1.0, 1.0, 6.0, 1.0, 6.0, 6.0, 1.0, 6.0]]
    rle = normalize_rle(square, 8, 9)
    expected = mask_utils.merge(mask_utils.frPyObjects(square, 8, 9))
    assert rle == expected
    compressed = dict(size=[8, 9], counts='abc')
    assert normalize_rle(compressed, 8, 9) is compressed
    unc = normalize_rle(dict(size=[8, 9], counts=[3, 2, 67]), 8, 9)
    assert mask_utils.area(unc) == 2
    with pytest.raises(VISFormatError, match='cover 70 pixels'):
        normalize_rle(dict(size=[8, 9], counts=[3, 67]), 8, 9)
    with pytest.raises(VISFormatError, match='differs from the video size'):
        normalize_rle(dict(size=[9, 8], counts='abc'), 8, 9)
    with pytest.raises(VISFormatError, match='polygon'):
        normalize_rle([['x', 1]], 8, 9)

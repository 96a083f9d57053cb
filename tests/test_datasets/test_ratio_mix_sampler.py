# Copyright (c) OpenMMLab. All rights reserved.
import itertools
from collections import Counter

import numpy as np
import pytest
from mmdet.registry import DATA_SAMPLERS
from mmengine.dataset import BaseDataset, ConcatDataset

from mdqe_mm.datasets.samplers import RatioMixSampler


class ListDataset(BaseDataset):

    def __init__(self, size, classes):
        self.size = size
        super().__init__(metainfo=dict(classes=classes), lazy_init=True)

    def load_data_list(self):
        return [dict(i=i) for i in range(self.size)]


def mixed(sizes=(7, 13)):
    return ConcatDataset(
        [ListDataset(sizes[0], ('a', )),
         ListDataset(sizes[1], ('b', 'c'))],
        ignore_keys=['classes'])


def test_ratio_and_coverage():
    dataset = mixed()
    sampler = RatioMixSampler(dataset, ratios=[1.0, 0.75], seed=3)
    draws = list(itertools.islice(iter(sampler), 14000))
    first = sum(i < 7 for i in draws)
    p = 1.0 / 1.75
    sigma = np.sqrt(len(draws) * p * (1 - p))
    assert abs(first - len(draws) * p) < 4 * sigma
    counts = Counter(draws)
    assert set(counts) == set(range(20))
    # each dataset is visited in reshuffled cycles: counts of one dataset
    # differ by at most one
    for lo, hi in ((0, 7), (7, 20)):
        values = [counts[i] for i in range(lo, hi)]
        assert max(values) - min(values) <= 1
    # deterministic for a seed
    again = list(itertools.islice(iter(sampler), 100))
    assert again == draws[:100]


def test_zero_ratio_and_bad_arguments():
    dataset = mixed()
    sampler = RatioMixSampler(dataset, ratios=[0.0, 1.0], seed=0)
    assert all(i >= 7 for i in itertools.islice(iter(sampler), 500))
    with pytest.raises(ValueError):
        RatioMixSampler(dataset, ratios=[1.0])
    with pytest.raises(ValueError):
        RatioMixSampler(dataset, ratios=[-1.0, 1.0])
    with pytest.raises(TypeError):
        RatioMixSampler(ListDataset(3, ('a', )), ratios=[1.0])
    built = DATA_SAMPLERS.build(
        dict(type='RatioMixSampler', dataset=dataset, ratios=[1, 1], seed=1))
    assert isinstance(built, RatioMixSampler) and len(built) == 20

# Copyright (c) OpenMMLab. All rights reserved.
import itertools
from typing import Iterator, Optional, Sequence

import numpy as np
from mmdet.registry import DATA_SAMPLERS
from mmengine.dataset import ConcatDataset
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler


@DATA_SAMPLERS.register_module()
class RatioMixSampler(Sampler):
    """Infinite sampler that mixes the datasets of a ``ConcatDataset`` at
    fixed ratios, one draw per sample.

    Each sample first picks dataset ``k`` with probability
    ``ratios[k] / sum(ratios)`` and then the next index of that dataset's
    own reshuffled cycle, so every item of a dataset is visited once before
    any repeats. MDQE mixes COCO pseudo-videos and VIS videos at
    ``[0.75, 1.0]`` (about 43% pseudo-clips). Ranks draw disjoint slices of
    one shared stream, like :class:`mmengine.dataset.InfiniteSampler`; use it
    with an iteration-based loop.

    Args:
        dataset (ConcatDataset): The datasets to mix, in ``ratios`` order.
        ratios (Sequence[float]): Non-negative weight of each dataset.
        shuffle (bool): Shuffle within each dataset. Defaults to True.
        seed (int, optional): Random seed, synchronised over ranks when None.
    """

    def __init__(self,
                 dataset: ConcatDataset,
                 ratios: Sequence[float],
                 shuffle: bool = True,
                 seed: Optional[int] = None) -> None:
        sizes = self._dataset_sizes(dataset)
        if len(ratios) != len(sizes):
            raise ValueError(f'got {len(ratios)} ratios for {len(sizes)} '
                             'datasets')
        ratios = np.asarray(ratios, dtype=np.float64)
        if (ratios < 0).any() or ratios.sum() <= 0:
            raise ValueError(
                f'ratios must be non-negative with a positive sum: {ratios}')
        for size, ratio in zip(sizes, ratios):
            if size == 0 and ratio > 0:
                raise ValueError('a dataset with a positive ratio is empty')
        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        self.sizes = sizes
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.probs = ratios / ratios.sum()
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else seed

    @staticmethod
    def _dataset_sizes(dataset) -> list:
        if not hasattr(dataset, 'datasets'):
            raise TypeError('RatioMixSampler needs a ConcatDataset (with '
                            f'.datasets), got {type(dataset).__name__}')
        return [len(d) for d in dataset.datasets]

    def _infinite_indices(self) -> Iterator[int]:
        rng = np.random.default_rng(self.seed)
        cycles = [self._cycle(rng, size) for size in self.sizes]
        while True:
            k = int(rng.choice(len(self.sizes), p=self.probs))
            yield int(self.offsets[k] + next(cycles[k]))

    def _cycle(self, rng: np.random.Generator, size: int) -> Iterator[int]:
        while True:
            order = rng.permutation(size) if self.shuffle else range(size)
            yield from (int(i) for i in order)

    def __iter__(self) -> Iterator[int]:
        yield from itertools.islice(self._infinite_indices(), self.rank, None,
                                    self.world_size)

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        """Not used: the stream is infinite."""

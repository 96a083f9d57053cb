# Copyright (c) OpenMMLab. All rights reserved.
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS


@TRANSFORMS.register_module()
class FilterEmptyClip(BaseTransform):
    """Reject a training clip that has too few annotated objects.

    Place it after the ``TransformBroadcaster`` of a clip pipeline. A clip is
    kept when at least ``min_num_instances`` distinct non-crowd instance ids
    appear in at least one of its frames; otherwise it returns None and the
    dataset draws another sample (training mode only). Crops and rotations
    can push every object out of a clip, and MDQE trains only on clips with
    targets.

    Args:
        min_num_instances (int): Least number of distinct instances.
            Defaults to 1.
    """

    def __init__(self, min_num_instances: int = 1) -> None:
        if min_num_instances < 1:
            raise ValueError('min_num_instances must be >= 1, got '
                             f'{min_num_instances}')
        self.min_num_instances = min_num_instances

    def transform(self, results: dict) -> Optional[dict]:
        """Return the clip or None."""
        ids_per_frame = results.get('gt_instances_ids')
        if ids_per_frame is None:
            raise KeyError('FilterEmptyClip needs gt_instances_ids; load '
                           'annotations with LoadTrackAnnotations first')
        flags_per_frame = results.get('gt_ignore_flags',
                                      [None] * len(ids_per_frame))
        ids = set()
        for frame_ids, flags in zip(ids_per_frame, flags_per_frame):
            frame_ids = np.asarray(frame_ids)
            if flags is not None:
                frame_ids = frame_ids[~np.asarray(flags, dtype=bool)]
            ids.update(frame_ids.tolist())
        if len(ids) < self.min_num_instances:
            return None
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'min_num_instances={self.min_num_instances})')

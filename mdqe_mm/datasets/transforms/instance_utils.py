# Copyright (c) OpenMMLab. All rights reserved.
"""Helpers shared by the clip transforms: keep per-frame instance arrays in
sync and derive boxes from masks."""
import numpy as np
from mmdet.structures.bbox import HorizontalBoxes

INSTANCE_KEYS = ('gt_bboxes', 'gt_bboxes_labels', 'gt_masks',
                 'gt_ignore_flags', 'gt_instances_ids')


def select_instances(results: dict, keep: np.ndarray) -> None:
    """Keep only the instances flagged in ``keep`` in every instance key.

    Args:
        results (dict): One frame's results.
        keep (np.ndarray): Bool array, shape (N,).
    """
    keep_inds = np.flatnonzero(keep)
    for key in INSTANCE_KEYS:
        value = results.get(key)
        if value is None:
            continue
        results[key] = value[keep_inds]


def boxes_from_masks(results: dict) -> None:
    """Set ``gt_bboxes`` to the tight xyxy boxes of ``gt_masks``, then drop
    instances whose mask is empty.

    A box is ``[x_min, y_min, x_max + 1, y_max + 1]`` of the mask pixels,
    i.e. pixel-edge coordinates as in :meth:`BitmapMasks.get_bboxes`.
    """
    masks = results.get('gt_masks')
    if masks is None:
        return
    bboxes = HorizontalBoxes.from_instance_masks(masks)
    if not isinstance(results.get('gt_bboxes'), HorizontalBoxes):
        bboxes = bboxes.numpy()
    results['gt_bboxes'] = bboxes
    select_instances(results, masks.areas > 0)

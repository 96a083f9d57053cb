# Copyright (c) OpenMMLab. All rights reserved.
from typing import Tuple

import cv2
import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes

from .clip_drift_crop import check_shared_randomness, clip_position
from .instance_utils import boxes_from_masks, select_instances


@TRANSFORMS.register_module()
class ClipMonotoneRotate(BaseTransform):
    """Rotate the frames of a clip by angles that change monotonically.

    Used to turn a still image into a pseudo-video (MDQE's
    ``RandomRotationClip``): per clip, ``T`` angles are drawn uniformly from
    ``[-max_angle, max_angle]`` and sorted (and reversed with probability
    ``reverse_prob``), and one rotation centre is drawn uniformly in
    ``center_range`` (a fraction of the width and height). Frame ``i`` is
    rotated by the ``i``-th angle about that centre, keeping the image size
    (no expansion). Positive angles rotate clockwise, as in
    :func:`mmcv.imrotate`. Masks are rotated with nearest interpolation,
    boxes are recomputed from them (boxes without masks get the box around
    their rotated corners), and instances rotated out of the image are removed
    from that frame. The angle used is stored in ``rotate_angle``.

    Run it inside ``TransformBroadcaster(share_random_params=True)`` after
    :class:`ImageToPseudoVideo` (or :class:`ClipFrameSample`).

    Args:
        max_angle (float): Largest absolute angle in degrees. Defaults to 15.
        center_range (tuple[float, float]): Range of the centre, as a fraction
            of the image size. Defaults to (0.4, 0.6).
        reverse_prob (float): Probability of decreasing angles. Defaults to
            0.5.
        img_border_value (int): Fill value of the image outside the source.
            Defaults to 0.
    """

    def __init__(self,
                 max_angle: float = 15.0,
                 center_range: Tuple[float, float] = (0.4, 0.6),
                 reverse_prob: float = 0.5,
                 img_border_value: int = 0) -> None:
        if not 0 <= max_angle <= 180:
            raise ValueError(f'max_angle must be in [0, 180], got {max_angle}')
        if not (len(center_range) == 2
                and 0 <= center_range[0] <= center_range[1] <= 1):
            raise ValueError('center_range must be (low, high) within [0, 1],'
                             f' got {center_range}')
        if not 0 <= reverse_prob <= 1:
            raise ValueError(
                f'reverse_prob must be in [0, 1], got {reverse_prob}')
        self.max_angle = float(max_angle)
        self.center_range = tuple(center_range)
        self.reverse_prob = reverse_prob
        self.img_border_value = img_border_value

    @cache_randomness
    def _sample_clip_params(self,
                            num_frames: int) -> Tuple[np.ndarray, np.ndarray]:
        """Sorted angles, shape (T,), and centre fractions (x, y)."""
        angles = np.sort(
            np.random.uniform(-self.max_angle, self.max_angle, num_frames))
        if np.random.rand() < self.reverse_prob:
            angles = angles[::-1].copy()
        center = np.random.uniform(self.center_range[0], self.center_range[1],
                                   2)
        return angles, center

    def transform(self, results: dict) -> dict:
        """Rotate one frame of a clip.

        Args:
            results (dict): One frame's results.

        Returns:
            dict: The rotated frame.
        """
        index, length = clip_position(results, self.__class__.__name__)
        check_shared_randomness(self, length)
        angles, center_frac = self._sample_clip_params(length)
        angle = float(angles[index])
        img = results['img']
        img_h, img_w = img.shape[:2]
        center = (float(center_frac[0] * (img_w - 1)),
                  float(center_frac[1] * (img_h - 1)))
        results['img'] = mmcv.imrotate(
            img, angle, center=center, border_value=self.img_border_value)
        results['rotate_angle'] = angle

        if results.get('gt_masks') is not None:
            results['gt_masks'] = results['gt_masks'].rotate(
                (img_h, img_w),
                angle,
                center=center,
                border_value=0,
                interpolation='nearest')
            boxes_from_masks(results)
        elif results.get('gt_bboxes') is not None:
            bboxes = results['gt_bboxes']
            is_box_obj = isinstance(bboxes, HorizontalBoxes)
            if not is_box_obj:
                bboxes = HorizontalBoxes(bboxes)
            matrix = np.concatenate([
                mmcv_rotation_matrix(center, angle),
                np.array([[0, 0, 1]], dtype=np.float32)
            ])
            bboxes.project_(matrix)
            bboxes.clip_((img_h, img_w))
            keep = ((bboxes.widths > 0) & (bboxes.heights > 0)).numpy()
            results['gt_bboxes'] = bboxes if is_box_obj else bboxes.numpy()
            select_instances(results, keep)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(max_angle={self.max_angle}, '
                f'center_range={self.center_range}, '
                f'reverse_prob={self.reverse_prob}, '
                f'img_border_value={self.img_border_value})')


def mmcv_rotation_matrix(center: Tuple[float, float],
                         angle: float) -> np.ndarray:
    """The 2x3 affine matrix that :func:`mmcv.imrotate` applies (clockwise
    for positive ``angle``, about ``center`` = (x, y))."""
    return cv2.getRotationMatrix2D(center, -angle, 1.0).astype(np.float32)

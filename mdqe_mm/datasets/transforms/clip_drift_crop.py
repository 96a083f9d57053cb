# Copyright (c) OpenMMLab. All rights reserved.
from typing import Optional, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes

from .instance_utils import boxes_from_masks, select_instances

CROP_TYPES = ('absolute', 'absolute_range', 'relative', 'relative_range')


def clip_position(results: dict, transform_name: str) -> Tuple[int, int]:
    """(position of this frame in its clip, clip length T).

    Raises:
        KeyError: if the frame sampler did not write ``clip_frame_index``.
    """
    if 'clip_frame_index' not in results:
        raise KeyError(
            f'{transform_name} needs the per-frame key "clip_frame_index"; '
            'sample clips with ClipFrameSample (or ImageToPseudoVideo) and '
            'run this transform inside TransformBroadcaster.')
    index = int(results['clip_frame_index'])
    length = int(results.get('video_length', index + 1))
    if not 0 <= index < length:
        raise ValueError(f'{transform_name}: clip_frame_index {index} is '
                         f'outside a clip of video_length {length}')
    return index, length


def check_shared_randomness(transform: BaseTransform,
                            clip_length: int) -> None:
    """Refuse to give each frame of a clip its own random parameters."""
    if clip_length > 1 and not getattr(transform, '_cache_enabled', False):
        raise RuntimeError(
            f'{transform.__class__.__name__} must run inside '
            'TransformBroadcaster(share_random_params=True) so that all the '
            'frames of a clip share its random parameters.')


@TRANSFORMS.register_module()
class ClipDriftCrop(BaseTransform):
    """Crop a clip with a fixed-size window that drifts across the frames.

    One crop size and two random top-left corners (start and end) are drawn
    per clip; frame ``i`` of a ``T``-frame clip is cropped at the corner
    ``start + (end - start) * i / (T - 1)`` (rounded), which simulates a
    camera panning at constant speed. Masks are cropped, boxes are recomputed
    as the tight boxes of the cropped masks (or clipped, without masks), and
    instances that leave the window are removed from that frame only.

    Run it inside ``TransformBroadcaster(share_random_params=True)`` after
    :class:`ClipFrameSample`; wrap it in ``RandomApply`` for MDQE's p=0.5.

    Required keys: ``img``, ``clip_frame_index``, ``video_length``; optional
    ``gt_bboxes``, ``gt_masks``, ``gt_bboxes_labels``, ``gt_ignore_flags``,
    ``gt_instances_ids``. Modified keys: those plus ``img_shape``.

    Args:
        crop_size (tuple): As in :class:`mmdet.datasets.transforms.RandomCrop`:
            ``(w, h)`` for ``'absolute'``/``'relative'``, ``(min, max)`` for
            ``'absolute_range'`` and ``(min_w, min_h)`` ratios for
            ``'relative_range'``.
        crop_type (str): One of ``'absolute'``, ``'absolute_range'``,
            ``'relative'``, ``'relative_range'``. Defaults to
            ``'absolute_range'`` (MDQE's COCO setting is (384, 600)).
    """

    def __init__(self,
                 crop_size: Tuple[Union[int, float], Union[int, float]],
                 crop_type: str = 'absolute_range') -> None:
        if crop_type not in CROP_TYPES:
            raise ValueError(
                f'crop_type must be one of {CROP_TYPES}, got {crop_type!r}')
        if len(crop_size) != 2:
            raise ValueError(f'crop_size must have 2 values, got {crop_size}')
        if crop_type.startswith('absolute'):
            if not all(isinstance(v, int) and v > 0 for v in crop_size):
                raise ValueError('absolute crop sizes must be positive ints, '
                                 f'got {crop_size}')
            if crop_type == 'absolute_range' and crop_size[0] > crop_size[1]:
                raise ValueError(f'crop range {crop_size} is not (min, max)')
        elif not all(0 < v <= 1 for v in crop_size):
            raise ValueError(
                f'relative crop sizes must be in (0, 1], got {crop_size}')
        self.crop_size = tuple(crop_size)
        self.crop_type = crop_type

    def _crop_hw(self, img_h: int, img_w: int) -> Tuple[int, int]:
        if self.crop_type == 'absolute':
            return min(self.crop_size[1], img_h), min(self.crop_size[0], img_w)
        if self.crop_type == 'absolute_range':
            low, high = self.crop_size
            return (np.random.randint(min(img_h, low),
                                      min(img_h, high) + 1),
                    np.random.randint(min(img_w, low),
                                      min(img_w, high) + 1))
        if self.crop_type == 'relative':
            rel_w, rel_h = self.crop_size
        else:
            rel_w, rel_h = np.asarray(self.crop_size) + np.random.rand(2) * (
                1 - np.asarray(self.crop_size))
        return (max(1,
                    int(img_h * rel_h + 0.5)), max(1,
                                                   int(img_w * rel_w + 0.5)))

    @cache_randomness
    def _sample_clip_params(
        self, img_shape: Tuple[int, int]
    ) -> Tuple[Tuple[int, int], np.ndarray, np.ndarray]:
        """Crop (h, w), start and end top-left corners (y, x) of a clip."""
        img_h, img_w = img_shape
        crop_h, crop_w = self._crop_hw(img_h, img_w)
        margin = np.array([img_h - crop_h, img_w - crop_w])
        start = np.array([np.random.randint(m + 1) for m in margin])
        end = np.array([np.random.randint(m + 1) for m in margin])
        return (crop_h, crop_w), start, end

    def frame_offset(self, start: np.ndarray, end: np.ndarray, index: int,
                     length: int) -> Tuple[int, int]:
        """Top-left corner (y, x) of the window in frame ``index``."""
        alpha = index / (length - 1) if length > 1 else 0.0
        offset = np.rint(start + (end - start) * alpha).astype(np.int64)
        return int(offset[0]), int(offset[1])

    def transform(self, results: dict) -> Optional[dict]:
        """Crop one frame of a clip.

        Args:
            results (dict): One frame's results.

        Returns:
            dict: The cropped frame.
        """
        index, length = clip_position(results, self.__class__.__name__)
        check_shared_randomness(self, length)
        img = results['img']
        (crop_h, crop_w), start, end = self._sample_clip_params(img.shape[:2])
        y0, x0 = self.frame_offset(start, end, index, length)
        if y0 + crop_h > img.shape[0] or x0 + crop_w > img.shape[1]:
            raise ValueError(
                f'frames of one clip differ in size ({img.shape[:2]}) in '
                f'{results.get("img_path")}; a clip must share one size')
        results['img'] = img[y0:y0 + crop_h, x0:x0 + crop_w]
        results['img_shape'] = (crop_h, crop_w)

        bboxes = results.get('gt_bboxes')
        if results.get('gt_masks') is not None:
            results['gt_masks'] = results['gt_masks'].crop(
                np.array([x0, y0, x0 + crop_w, y0 + crop_h]))
            boxes_from_masks(results)
        elif bboxes is not None:
            if not isinstance(bboxes, HorizontalBoxes):
                bboxes = HorizontalBoxes(bboxes)
            bboxes.translate_([-x0, -y0])
            bboxes.clip_((crop_h, crop_w))
            keep = ((bboxes.widths > 0) & (bboxes.heights > 0)).numpy()
            results['gt_bboxes'] = bboxes if isinstance(
                results['gt_bboxes'], HorizontalBoxes) else bboxes.numpy()
            select_instances(results, keep)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(crop_size={self.crop_size}, '
                f"crop_type='{self.crop_type}')")

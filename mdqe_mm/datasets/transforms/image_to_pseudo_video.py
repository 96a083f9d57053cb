# Copyright (c) OpenMMLab. All rights reserved.
import copy
from typing import Dict, Optional, Sequence, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.datasets import CocoDataset
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import BaseBoxes

from ..vis_classes import COCO_TO_VIS_PRESETS, VIS_CLASS_PRESETS
from .instance_utils import select_instances


@TRANSFORMS.register_module()
class ImageToPseudoVideo(BaseTransform):
    """Turn one annotated image into a T-frame pseudo-video clip.

    Place it after ``LoadImageFromFile`` and ``LoadAnnotations(with_bbox=True,
    with_mask=True)`` of an image dataset such as
    :class:`mmdet.datasets.CocoDataset`, and before a
    ``TransformBroadcaster(share_random_params=True)`` that holds
    :class:`ClipMonotoneRotate`, :class:`ClipDriftCrop`, resizing and
    flipping: those give the copies the motion of a short video.

    Labels are mapped from the source classes to the target (VIS) classes by
    name; instances of unmapped classes are dropped. Every instance gets
    ``gt_instances_ids`` = its index, shared by all frames. Every key becomes
    a list of T per-frame values (copies), with ``frame_id`` and
    ``clip_frame_index`` = 0..T-1, ``video_id`` = ``img_id``,
    ``video_length`` = ``ori_video_length`` = T and ``key_frame_flags``
    (frame 0). Boxes become (N, 4) float32 arrays, as
    ``LoadTrackAnnotations`` makes them for videos. The raw ``instances`` key
    is removed, as its labels are the source ones.

    Args:
        num_frames (int): Clip length T. Defaults to 4.
        label_map (str | dict | None): A preset (``'ovis'``,
            ``'youtube_vis_2019'``, ``'youtube_vis_2021'``), a dict from
            source to target class names, or None to keep the source
            classes (target_classes then defaults to source_classes).
            Defaults to ``'ovis'``.
        target_classes (Sequence[str], optional): Target class list; needed
            when ``label_map`` is a dict, defaults to the preset's list.
        source_classes (Sequence[str], optional): Class list of the image
            dataset; ``gt_bboxes_labels`` index it. Defaults to the 80 COCO
            classes, which is what :class:`CocoDataset` labels index when
            the annotation file lists all 80 categories (as the official
            files do).
        skip_empty (bool): Return None (so that the dataset draws another
            sample in training) when no mapped, non-crowd instance is left.
            Defaults to True.
    """

    def __init__(self,
                 num_frames: int = 4,
                 label_map: Union[str, Dict[str, str], None] = 'ovis',
                 target_classes: Optional[Sequence[str]] = None,
                 source_classes: Optional[Sequence[str]] = None,
                 skip_empty: bool = True) -> None:
        if not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(
                f'num_frames must be a positive int, got {num_frames!r}')
        if isinstance(label_map, str):
            if label_map not in COCO_TO_VIS_PRESETS:
                raise ValueError(
                    f'Unknown label_map preset {label_map!r}; choose one of '
                    f'{sorted(COCO_TO_VIS_PRESETS)} or pass a dict')
            if target_classes is None:
                target_classes = VIS_CLASS_PRESETS[label_map]
            name_map = COCO_TO_VIS_PRESETS[label_map]
        elif label_map is None:
            name_map = None  # identity on the source classes, set below
        elif isinstance(label_map, dict):
            if target_classes is None:
                raise ValueError('target_classes is required when label_map '
                                 'is a dict')
            name_map = dict(label_map)
        else:
            raise TypeError(
                f'label_map must be a str or dict, got {type(label_map)}')
        source_classes = tuple(source_classes
                               or CocoDataset.METAINFO['classes'])
        if name_map is None:
            target_classes = tuple(target_classes or source_classes)
            name_map = {c: c for c in source_classes if c in target_classes}
        target_classes = tuple(target_classes)
        lookup = np.full(len(source_classes), -1, dtype=np.int64)
        for source, target in name_map.items():
            if source not in source_classes:
                raise ValueError(f'label_map source class {source!r} is not '
                                 'in source_classes')
            if target not in target_classes:
                raise ValueError(f'label_map target class {target!r} is not '
                                 'in target_classes')
            lookup[source_classes.index(source)] = target_classes.index(target)
        self.num_frames = num_frames
        self.label_map = label_map
        self.name_map = name_map
        self.source_classes = source_classes
        self.target_classes = target_classes
        self.label_lookup = lookup
        self.skip_empty = skip_empty

    def transform(self, results: dict) -> Optional[dict]:
        """Replicate one image into T frames with mapped labels.

        Args:
            results (dict): One image's results with ``img``,
                ``gt_bboxes_labels`` and the other ``gt_*`` keys.

        Returns:
            dict | None: Per-frame lists, or None when nothing is left and
            ``skip_empty``.
        """
        if isinstance(results.get('img'), list):
            raise TypeError('ImageToPseudoVideo expects a single image, got '
                            'a list of frames (is it after a frame sampler?)')
        labels = np.asarray(
            results.get('gt_bboxes_labels', []), dtype=np.int64)
        if labels.size and labels.max() >= len(self.label_lookup):
            raise ValueError(
                f'label {labels.max()} of {results.get("img_path")} is '
                f'outside the {len(self.label_lookup)} source classes')
        mapped = self.label_lookup[labels] if labels.size else labels
        keep = mapped >= 0
        select_instances(results, keep)
        results['gt_bboxes_labels'] = mapped[keep]
        results['gt_instances_ids'] = np.arange(keep.sum(), dtype=np.int32)
        if self.skip_empty:
            ignore = results.get('gt_ignore_flags')
            num_valid = int(keep.sum()) if ignore is None else int(
                (~np.asarray(ignore, dtype=bool)).sum())
            if num_valid == 0:
                return None
        results.pop('instances', None)
        # video pipelines keep boxes as (N, 4) arrays (LoadTrackAnnotations);
        # PackTrackInputs cannot pack box objects
        if isinstance(results.get('gt_bboxes'), BaseBoxes):
            results['gt_bboxes'] = results['gt_bboxes'].numpy().astype(
                np.float32)

        num_frames = self.num_frames
        video = {
            key:
            [value] + [copy.deepcopy(value) for _ in range(num_frames - 1)]
            for key, value in results.items()
        }
        video_id = results.get('img_id', results.get('sample_idx', 0))
        video['video_id'] = [video_id] * num_frames
        video['frame_id'] = list(range(num_frames))
        video['clip_frame_index'] = list(range(num_frames))
        video['video_length'] = [num_frames] * num_frames
        video['ori_video_length'] = [num_frames] * num_frames
        video['key_frame_flags'] = [True] + [False] * (num_frames - 1)
        return video

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_frames={self.num_frames}, '
                f'label_map={self.label_map!r}, '
                f'num_target_classes={len(self.target_classes)}, '
                f'skip_empty={self.skip_empty})')

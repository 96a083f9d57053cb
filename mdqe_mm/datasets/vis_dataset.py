# Copyright (c) OpenMMLab. All rights reserved.
import os
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import pycocotools.mask as mask_utils
from mmdet.datasets import BaseVideoDataset
from mmdet.registry import DATASETS
from mmengine.fileio import get_local_path, load
from mmengine.logging import print_log

from ..utils.size_check import FrameSizeError, read_image_size
from .vis_classes import VIS_CLASS_PRESETS

__all__ = ['VISDataset']


@DATASETS.register_module()
class VISDataset(BaseVideoDataset):
    """YouTube-VIS 2019/2021, OVIS or custom video instance segmentation data
    read directly from the official JSON (no conversion step).

    The annotation file has the YouTube-VIS schema::

        videos:      [{id, width, height, length, file_names: [T paths]}]
        annotations: [{id, video_id, category_id, iscrowd,
                       segmentations: [T x (RLE | polygon | null)],
                       bboxes: [T x ([x, y, w, h] | null)],
                       areas: [T x (float | null)],
                       occlusion: [T x (str | null)]  # OVIS only}]
                     or null (official val/test files)
        categories:  [{id, name}]

    Each item of the data list is one video,
    ``dict(video_id, video_name, video_length, width, height, images)``, and
    ``images`` holds one dict per frame with ``img_id`` (unique over the
    dataset), ``img_path``, ``frame_id``, ``height``, ``width`` and
    ``instances``. An instance is
    ``dict(bbox=[x1, y1, x2, y2], bbox_label, mask, instance_id, ignore_flag)``
    plus ``occlusion`` where the file has it; ``instance_id`` is the JSON
    annotation id, so it identifies the track across the frames of a video.
    Frames where an object is absent carry no instance for it. ``iscrowd``
    objects get ``ignore_flag=1`` and end up in ``ignored_instances`` after
    ``PackTrackInputs``. This is the format that mmdet's frame samplers,
    ``LoadTrackAnnotations``, ``TransformBroadcaster`` and ``PackTrackInputs``
    consume; in test mode ``prepare_data`` yields the whole video.

    The classes come, in order of priority, from ``metainfo['classes']``,
    from ``preset`` (``'ovis'``, ``'youtube_vis_2019'``,
    ``'youtube_vis_2021'``, ``'synthetic_vis'``), or, if neither is given,
    from the file's ``categories`` sorted by id. Categories are matched to
    classes by name; annotations of categories outside the class list are
    skipped.

    Args:
        preset (str, optional): Name of a class-list preset. Defaults to None.
        check_image_files (bool): Check at load time that every frame file
            exists, listing each video folder once, and that the first frame
            of each video has the declared ``height`` and ``width`` (only
            its header is read). Turn it off for remote storage. Defaults to
            True.
        filter_cfg (dict, optional): In training, ``filter_empty_gt`` (default
            True) drops videos without any non-crowd instance, and
            ``min_size`` (default 0) drops videos whose frames are smaller.
            Frames are never dropped, so clips keep their true spacing.
        *args, **kwargs: Passed to :class:`mmdet.datasets.BaseVideoDataset`.

    Raises:
        ValueError: When a video's frame count disagrees with its ``length``,
            when an annotation's per-frame lists have the wrong length or
            refer to an unknown video or category, when ``annotations`` is
            null outside test mode, or when no category of the file is in the
            class list.
        FileNotFoundError: When a frame file named in ``file_names`` does not
            exist.
        FrameSizeError: When a video's first frame is not of the declared
            size, or a segmentation RLE is not of the video's size.
    """

    METAINFO = dict(classes=None)

    def __init__(self,
                 *args,
                 preset: Optional[str] = None,
                 check_image_files: bool = True,
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        if preset is not None and preset not in VIS_CLASS_PRESETS:
            raise ValueError(f'Unknown VIS preset {preset!r}; choose one of '
                             f'{sorted(VIS_CLASS_PRESETS)} or pass '
                             'metainfo=dict(classes=...).')
        metainfo = dict(metainfo) if metainfo is not None else dict()
        if metainfo.get('classes') is None and preset is not None:
            metainfo['classes'] = VIS_CLASS_PRESETS[preset]
        self.preset = preset
        self.check_image_files = check_image_files
        super().__init__(*args, metainfo=metainfo, **kwargs)

    # ------------------------------------------------------------------
    # loading
    # ------------------------------------------------------------------
    def load_data_list(self) -> List[dict]:
        """Parse the raw JSON into one dict per video.

        Returns:
            list[dict]: The per-video data list described in the class
            docstring.
        """
        if self.backend_args is None and not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'{type(self).__name__}: annotation file {self.ann_file} '
                'not found. Point data_root/ann_file at the official '
                'YouTube-VIS/OVIS JSON; the train_sub/valid_sub files are '
                'made by tools/dataset_converters/split_vis_train.py.')
        with get_local_path(
                self.ann_file, backend_args=self.backend_args) as local_path:
            raw = load(local_path, file_format='json')
        if not isinstance(raw, dict) or 'videos' not in raw:
            raise ValueError(f'{self.ann_file}: not a YouTube-VIS style '
                             "annotation file (no 'videos' list).")
        cat_id_to_name = self._parse_categories(raw.get('categories'))
        cat_id_to_label = self._match_classes(cat_id_to_name)

        videos = raw['videos']
        annotations = raw.get('annotations')
        if annotations is None and not self.test_mode:
            raise ValueError(
                f'{self.ann_file}: "annotations" is null (an official '
                'val/test file without ground truth); load it with '
                'test_mode=True for inference, or train on a split that has '
                'annotations (see tools/dataset_converters/split_vis_train.py)'
                '.')
        anns_per_video = self._group_annotations(annotations or [], videos,
                                                 cat_id_to_name)

        img_prefix = self.data_prefix.get('img_path', '') or ''
        dir_listing_cache: Dict[str, set] = dict()
        data_list = []
        img_id = 0
        for video in videos:
            video_id = video['id']
            file_names = video['file_names']
            length = len(file_names)
            img_paths = [osp.join(img_prefix, name) for name in file_names]
            if self.check_image_files:
                self._check_files(video_id, img_paths, dir_listing_cache)
                self._check_frame_size(video, img_paths[0])

            frames = []
            for frame_id, img_path in enumerate(img_paths):
                frames.append(
                    dict(
                        img_id=img_id,
                        img_path=img_path,
                        file_name=file_names[frame_id],
                        frame_id=frame_id,
                        height=video['height'],
                        width=video['width'],
                        instances=[]))
                img_id += 1
            for ann in anns_per_video.get(video_id, []):
                label = cat_id_to_label.get(ann['category_id'])
                if label is None:
                    continue
                self._add_annotation(ann, label, video, frames)
            data_list.append(
                dict(
                    video_id=video_id,
                    video_name=osp.dirname(file_names[0]),
                    video_length=length,
                    width=video['width'],
                    height=video['height'],
                    images=frames))
        return data_list

    def _parse_categories(self, categories: Optional[list]) -> Dict[int, str]:
        if not categories:
            raise ValueError(f'{self.ann_file}: "categories" is missing or '
                             'empty.')
        cat_id_to_name = dict()
        for cat in categories:
            if cat['id'] in cat_id_to_name:
                raise ValueError(f'{self.ann_file}: category id {cat["id"]}'
                                 ' appears twice in "categories".')
            cat_id_to_name[cat['id']] = cat['name']
        return cat_id_to_name

    def _match_classes(self, cat_id_to_name: Dict[int, str]) -> Dict[int, int]:
        classes = self._metainfo.get('classes')
        if classes is None:
            classes = tuple(cat_id_to_name[i] for i in sorted(cat_id_to_name))
            self._metainfo['classes'] = classes
        classes = tuple(classes)
        name_to_label = {name: i for i, name in enumerate(classes)}
        cat_id_to_label = {
            cat_id: name_to_label[name]
            for cat_id, name in cat_id_to_name.items() if name in name_to_label
        }
        if not cat_id_to_label:
            raise ValueError(
                f'{self.ann_file}: none of its categories '
                f'{sorted(cat_id_to_name.values())[:8]}... is in the class '
                f'list {classes[:8]}...; wrong preset or metainfo?')
        unused = sorted(name for name in cat_id_to_name.values()
                        if name not in name_to_label)
        if unused:
            print_log(
                f'{self.ann_file}: categories {unused} are not in the class '
                'list; their annotations are skipped.', 'current')
        self.cat_ids = sorted(cat_id_to_label, key=cat_id_to_label.get)
        self.cat2label = cat_id_to_label
        return cat_id_to_label

    def _group_annotations(self, annotations: list, videos: list,
                           cat_id_to_name: Dict[int, str]) -> Dict[int, list]:
        lengths = dict()
        for video in videos:
            video_id = video.get('id')
            file_names = video.get('file_names')
            if not file_names:
                raise ValueError(f'{self.ann_file}: video {video_id} has no '
                                 '"file_names".')
            length = video.get('length', len(file_names))
            if length != len(file_names):
                raise ValueError(
                    f'{self.ann_file}: video {video_id} ('
                    f'{osp.dirname(file_names[0])}) declares length={length}'
                    f' but lists {len(file_names)} file_names.')
            if video_id in lengths:
                raise ValueError(f'{self.ann_file}: video id {video_id} '
                                 'appears twice in "videos".')
            lengths[video_id] = length
        grouped = defaultdict(list)
        seen_ids = set()
        for ann in annotations:
            video_id = ann.get('video_id')
            where = (f'{self.ann_file}: annotation {ann.get("id")} of video '
                     f'{video_id}')
            if video_id not in lengths:
                raise ValueError(f'{where}: no such video in "videos".')
            if ann.get('category_id') not in cat_id_to_name:
                raise ValueError(
                    f'{where}: category_id {ann.get("category_id")} is not '
                    f'in "categories" {sorted(cat_id_to_name)}.')
            if ann.get('id') in seen_ids:
                raise ValueError(f'{where}: duplicate annotation id.')
            seen_ids.add(ann.get('id'))
            for key in ('segmentations', 'bboxes', 'areas', 'occlusion'):
                values = ann.get(key)
                if values is not None and len(values) != lengths[video_id]:
                    raise ValueError(
                        f'{where}: "{key}" has {len(values)} entries but the '
                        f'video has {lengths[video_id]} frames.')
            if ann.get('segmentations') is None and ann.get('bboxes') is None:
                raise ValueError(f'{where}: neither "segmentations" nor '
                                 '"bboxes" is given.')
            grouped[video_id].append(ann)
        return grouped

    def _check_files(self, video_id: int, img_paths: Sequence[str],
                     cache: Dict[str, set]) -> None:
        for img_path in img_paths:
            folder, name = osp.split(img_path)
            if folder not in cache:
                cache[folder] = set(
                    os.listdir(folder)) if osp.isdir(folder) else set()
            if name not in cache[folder]:
                raise FileNotFoundError(
                    f'{self.ann_file}: video {video_id}: frame file '
                    f'{img_path} does not exist (set check_image_files=False'
                    ' to skip this check for remote storage).')

    def _check_frame_size(self, video: dict, img_path: str) -> None:
        """Compare the declared size with the first frame's header."""
        try:
            actual = read_image_size(img_path)
        except OSError as err:
            raise FrameSizeError(
                f'{self.ann_file}: video {video["id"]}: {err}') from None
        declared = (video['height'], video['width'])
        if actual != declared:
            raise FrameSizeError(
                f'{self.ann_file}: video {video["id"]} '
                f'({osp.dirname(video["file_names"][0])}) declares height x '
                f'width {declared[0]}x{declared[1]} but its first frame '
                f'{img_path} is {actual[0]}x{actual[1]}; fix the "height"/'
                '"width" of the video or the frames')

    def _add_annotation(self, ann: dict, label: int, video: dict,
                        frames: List[dict]) -> None:
        height, width = video['height'], video['width']
        segms = ann.get('segmentations') or [None] * len(frames)
        bboxes = ann.get('bboxes') or [None] * len(frames)
        areas = ann.get('areas') or [None] * len(frames)
        occlusion = ann.get('occlusion')
        ignore_flag = int(bool(ann.get('iscrowd', 0)))
        for frame_id, frame in enumerate(frames):
            segm, bbox = segms[frame_id], bboxes[frame_id]
            if segm is None and bbox is None:
                continue
            if isinstance(segm, dict) and list(
                    segm.get('size', [height, width])) != [height, width]:
                raise FrameSizeError(
                    f'{self.ann_file}: annotation {ann["id"]} of video '
                    f'{video["id"]} ({osp.dirname(video["file_names"][0])}), '
                    f'frame {frame_id}: RLE size {segm["size"]} differs from '
                    f'the video size [{height}, {width}]')
            if bbox is None:
                bbox = self._bbox_from_segm(segm, height, width)
            x, y, w, h = bbox
            area = areas[frame_id]
            if w < 1 or h < 1 or (area is not None and area <= 0):
                continue
            instance = dict(
                bbox=[x, y, x + w, y + h],
                bbox_label=label,
                instance_id=ann['id'],
                ignore_flag=ignore_flag)
            if segm is not None:
                instance['mask'] = segm
            if occlusion is not None:
                instance['occlusion'] = occlusion[frame_id]
            frame['instances'].append(instance)

    @staticmethod
    def _bbox_from_segm(segm, height: int, width: int) -> List[float]:
        if isinstance(segm, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
        elif isinstance(segm['counts'], list):
            rle = mask_utils.frPyObjects(segm, height, width)
        else:
            rle = segm
        return [float(v) for v in mask_utils.toBbox(rle)]

    # ------------------------------------------------------------------
    # filtering / access
    # ------------------------------------------------------------------
    def filter_data(self) -> List[dict]:
        """Drop training videos without usable ground truth.

        Unlike :meth:`BaseVideoDataset.filter_data`, frames are never removed
        from a video, so ``frame_id`` keeps indexing the original video and
        clip sampling sees the true temporal distances.

        Returns:
            list[dict]: The kept videos.
        """
        if self.test_mode:
            return self.data_list
        filter_cfg = self.filter_cfg or dict()
        filter_empty_gt = filter_cfg.get('filter_empty_gt', True)
        min_size = filter_cfg.get('min_size', 0)
        kept = []
        for video in self.data_list:
            if min(video['width'], video['height']) < min_size:
                continue
            if filter_empty_gt and not any(not ins['ignore_flag']
                                           for frame in video['images']
                                           for ins in frame['instances']):
                continue
            kept.append(video)
        if not kept:
            raise ValueError(
                f'{self.ann_file}: no training video has a non-crowd '
                f'instance of the classes {tuple(self.metainfo["classes"])}'
                f'{"" if min_size == 0 else f" and size >= {min_size}"}.')
        print_log(
            f'{self.__class__.__name__}: kept {len(kept)} / '
            f'{len(self.data_list)} training videos with ground truth.',
            'current')
        return kept

    def prepare_data(self, idx):
        """Whole video (test mode) or video info for clip sampling (train).

        In test mode every frame also gets ``clip_frame_index`` (its position
        in the video), so clip-level transforms can run on whole videos too.
        """
        if self.test_mode:
            video_idx = idx[0] if isinstance(idx, tuple) else idx
            frame_idx = idx[1] if isinstance(idx, tuple) else None
            data_info = self.get_data_info(video_idx)
            frame_inds = (
                list(range(data_info['video_length']))
                if frame_idx is None else [frame_idx])
            results = defaultdict(list)
            for position, index in enumerate(frame_inds):
                frame = data_info['images'][index]
                frame['video_id'] = data_info['video_id']
                for key, value in frame.items():
                    results[key].append(value)
                results['ori_video_length'].append(data_info['video_length'])
                results['video_length'].append(len(frame_inds))
                results['clip_frame_index'].append(position)
            try:
                return self.pipeline(dict(results))
            except ValueError as err:
                self._explain_frame_sizes(data_info, frame_inds, err)
                raise
        try:
            return super().prepare_data(idx)
        except ValueError as err:
            data_info = self.get_data_info(
                idx[0] if isinstance(idx, tuple) else idx)
            self._explain_frame_sizes(data_info,
                                      range(len(data_info['images'])), err)
            raise

    def _explain_frame_sizes(self, data_info: dict, frame_inds: Sequence[int],
                             err: Exception) -> None:
        """After a pipeline error, raise :class:`FrameSizeError` naming the
        frame when the frames of the video differ in size (mmdet's packing
        only says that arrays of different shapes cannot be stacked)."""
        frames = [data_info['images'][i] for i in frame_inds]
        first = None
        for frame in frames:
            try:
                size = read_image_size(frame['img_path'])
            except OSError:
                return
            if first is None:
                first = (frame, size)
            elif size != first[1]:
                raise FrameSizeError(
                    f'{self.ann_file}: video {data_info["video_id"]} '
                    f'({data_info.get("video_name")}): frame '
                    f'{frame["img_path"]} is {size[0]}x{size[1]} (h x w) but '
                    f'frame {first[0]["img_path"]} is {first[1][0]}x'
                    f'{first[1][1]}; every frame of a video must have the '
                    'same size') from err

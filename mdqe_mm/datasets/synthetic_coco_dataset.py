# Copyright (c) OpenMMLab. All rights reserved.
import json
import os
import os.path as osp
from typing import Optional

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from .synthetic import ensure_synthetic_vis
from .vis_classes import SYNTHETIC_VIS_CLASSES

__all__ = ['SyntheticCocoDataset', 'vis_frames_to_coco']


def vis_frames_to_coco(vis_ann_file: str, out_file: str) -> str:
    """Write every frame of a YouTube-VIS / OVIS file as a COCO image.

    Each annotated instance of each frame becomes a COCO annotation with the
    frame's RLE, box and area; ``file_name`` stays relative to the split's
    ``JPEGImages`` folder. The file appears atomically.

    Args:
        vis_ann_file (str): YouTube-VIS / OVIS annotation JSON.
        out_file (str): COCO JSON to write.

    Returns:
        str: ``out_file``.
    """
    with open(vis_ann_file) as f:
        vis = json.load(f)
    images, annotations, frame_ids = [], [], dict()
    for video in vis['videos']:
        for t, file_name in enumerate(video['file_names']):
            image_id = len(images) + 1
            frame_ids[(video['id'], t)] = image_id
            images.append(
                dict(
                    id=image_id,
                    file_name=file_name,
                    height=video['height'],
                    width=video['width'],
                    video_id=video['id'],
                    frame_id=t))
    for ann in vis['annotations']:
        for t, rle in enumerate(ann['segmentations']):
            if rle is None:
                continue
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=frame_ids[(ann['video_id'], t)],
                    category_id=ann['category_id'],
                    segmentation=rle,
                    bbox=ann['bboxes'][t],
                    area=ann['areas'][t],
                    iscrowd=ann.get('iscrowd', 0)))
    coco = dict(
        info=dict(description=f'frames of {osp.basename(vis_ann_file)}'),
        images=images,
        annotations=annotations,
        categories=vis['categories'])
    tmp_file = f'{out_file}.{os.getpid()}.tmp'
    with open(tmp_file, 'w') as f:
        json.dump(coco, f)
    os.replace(tmp_file, out_file)
    return out_file


@DATASETS.register_module()
class SyntheticCocoDataset(CocoDataset):
    """The frames of the synthetic occlusion videos as a COCO data set.

    For image models (e.g. Mask2Former) on the same data as the VIS models:
    the synthetic videos are generated under ``data_root`` on first use
    (as by ``SyntheticVISDataset``), and ``ann_file`` (e.g.
    ``annotations/train_frames_coco.json``) is derived from the split's VIS
    file ``annotations/{split}.json`` when it does not exist yet.

    Args:
        generator_cfg (dict, optional): Arguments of
            :func:`mdqe_mm.datasets.synthetic.generate_synthetic_vis`.
        *args, **kwargs: Passed to mmdet's ``CocoDataset``; ``ann_file``
            must be named ``<split>_frames_coco.json``.
    """
    METAINFO = dict(
        classes=SYNTHETIC_VIS_CLASSES,
        palette=[(220, 60, 60), (60, 160, 60), (60, 90, 220), (220, 180, 40)])

    def __init__(self,
                 *args,
                 generator_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        data_root = kwargs.get('data_root')
        ann_file = kwargs.get('ann_file', '')
        if not data_root:
            raise ValueError('SyntheticCocoDataset needs data_root, the '
                             'folder where the videos are (or will be) '
                             'generated')
        name = osp.basename(ann_file)
        if not name.endswith('_frames_coco.json'):
            raise ValueError('SyntheticCocoDataset: ann_file must be named '
                             f'<split>_frames_coco.json, got {ann_file!r}')
        ensure_synthetic_vis(data_root, **dict(generator_cfg or dict()))
        coco_file = osp.join(data_root, ann_file)
        if not osp.isfile(coco_file):
            split = name[:-len('_frames_coco.json')]
            vis_file = osp.join(osp.dirname(coco_file), f'{split}.json')
            if not osp.isfile(vis_file):
                raise FileNotFoundError(
                    f'SyntheticCocoDataset: no split {split!r} '
                    f'({vis_file} is missing)')
            vis_frames_to_coco(vis_file, coco_file)
        super().__init__(*args, **kwargs)

# Copyright (c) OpenMMLab. All rights reserved.
"""Convert per-frame instance-id PNG masks into a YouTube-VIS JSON file.

Input layout (YouTube-VOS / DAVIS style)::

    ROOT/JPEGImages/<video>/<frame>.jpg
    ROOT/Annotations/<video>/<frame>.png   # pixel value = instance id

Pixel value 0 is background, ``--ignore-value`` (255 by default) is not an
object. Palette ('P'), grey and 16-bit PNGs are read as indices. A frame
without a PNG, or where an id has no pixels, gets ``null`` for that instance.
Categories come from ``--meta`` (YouTube-VOS ``meta.json``:
``{"videos": {video: {"objects": {"<id>": {"category": name}}}}}``) or, for
every instance, from ``--default-category``. Every frame must be a readable
image, all frames of a video of one size, and every mask of its frame's size;
the video size written is the frames' size. Example::

    python tools/dataset_converters/png_masks_to_vis.py data/my_videos \
        --out data/my_videos/annotations/train.json --default-category object

The output loads with ``VISDataset(ann_file=..., data_prefix=dict(
img_path='ROOT/JPEGImages'))``.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional

import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image

from mdqe_mm.utils import (atomic_write, check_output_not_input,
                           check_writable, load_json_file, read_image_size)

IMG_EXTS = ('.jpg', '.jpeg', '.png')


def read_id_png(path: str) -> np.ndarray:
    """Instance-id map of a PNG, int64 (H, W)."""
    try:
        with Image.open(path) as img:
            if img.mode in ('RGB', 'RGBA'):
                raise ValueError(
                    f'{path} is a colour PNG; instance ids must be stored as '
                    'palette indices or grey values')
            return np.asarray(img).astype(np.int64)
    except OSError as err:  # includes PIL's UnidentifiedImageError
        raise ValueError(f'cannot read mask {path}: {err}') from None


def convert_png_masks(root: str,
                      meta: Optional[dict] = None,
                      default_category: Optional[str] = None,
                      ignore_value: int = 255,
                      image_dir: str = 'JPEGImages',
                      mask_dir: str = 'Annotations') -> dict:
    """Build the YouTube-VIS dict of a folder of videos.

    Args:
        root (str): Data folder.
        meta (dict, optional): YouTube-VOS style meta with categories.
        default_category (str, optional): Category of instances that
            ``meta`` does not name.
        ignore_value (int): Pixel value that is not an instance.
        image_dir (str): Frame folder under ``root``.
        mask_dir (str): PNG folder under ``root``.

    Returns:
        dict: ``videos``, ``annotations`` and ``categories``.
    """
    img_root = osp.join(root, image_dir)
    mask_root = osp.join(root, mask_dir)
    if not osp.isdir(img_root) or not osp.isdir(mask_root):
        raise FileNotFoundError(f'expected {img_root} and {mask_root}')
    meta_videos = (meta or {}).get('videos', {})
    categories: Dict[str, int] = {}
    videos: List[dict] = []
    annotations: List[dict] = []
    for video_index, video in enumerate(sorted(os.listdir(img_root))):
        frames = sorted(
            f for f in os.listdir(osp.join(img_root, video))
            if f.lower().endswith(IMG_EXTS))
        if not frames:
            continue
        video_id = video_index + 1
        per_instance: Dict[int, list] = {}
        # the video size is the frames' size (header reads only); every
        # frame must be a readable image of that size
        frame_sizes = []
        for frame in frames:
            path = osp.join(img_root, video, frame)
            try:
                frame_sizes.append(read_image_size(path))
            except OSError as err:
                raise ValueError(f'video {video}: unreadable frame: {err}') \
                    from None
            if frame_sizes[-1] != frame_sizes[0]:
                raise ValueError(
                    f'video {video}: frame {path} is '
                    f'{frame_sizes[-1][0]}x{frame_sizes[-1][1]} (h x w) but '
                    f'{frames[0]} is {frame_sizes[0][0]}x{frame_sizes[0][1]}')
        height, width = frame_sizes[0]
        for t, frame in enumerate(frames):
            png = osp.join(mask_root, video, osp.splitext(frame)[0] + '.png')
            if not osp.isfile(png):
                continue
            ids = read_id_png(png)
            if ids.shape != (height, width):
                raise ValueError(
                    f'video {video}: mask {png} is {ids.shape[0]}x'
                    f'{ids.shape[1]} (h x w) but its frame '
                    f'{osp.join(img_root, video, frame)} is '
                    f'{height}x{width}')
            for inst_id in np.unique(ids):
                if inst_id == 0 or inst_id == ignore_value:
                    continue
                per_instance.setdefault(int(inst_id), [None] * len(frames))
                per_instance[int(inst_id)][t] = ids == inst_id
        videos.append(
            dict(
                id=video_id,
                width=int(width),
                height=int(height),
                length=len(frames),
                file_names=[f'{video}/{f}' for f in frames]))
        for inst_id, masks in sorted(per_instance.items()):
            objects = meta_videos.get(video, {}).get('objects', {})
            name = objects.get(str(inst_id), {}).get('category',
                                                     default_category)
            if name is None:
                raise ValueError(
                    f'video {video}: instance {inst_id} has no category in '
                    '--meta and no --default-category was given')
            cat_id = categories.setdefault(name, len(categories) + 1)
            segms, bboxes, areas = [], [], []
            for mask in masks:
                if mask is None:
                    segms.append(None)
                    bboxes.append(None)
                    areas.append(None)
                    continue
                rle = mask_utils.encode(
                    np.asfortranarray(mask.astype(np.uint8)))
                rle['counts'] = rle['counts'].decode('ascii')
                segms.append(rle)
                bboxes.append([float(v) for v in mask_utils.toBbox(rle)])
                areas.append(float(mask_utils.area(rle)))
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    video_id=video_id,
                    category_id=cat_id,
                    iscrowd=0,
                    height=int(height),
                    width=int(width),
                    length=1,
                    segmentations=segms,
                    bboxes=bboxes,
                    areas=areas))
    if not videos:
        raise ValueError(f'no video with frames ({", ".join(IMG_EXTS)}) '
                         f'under {img_root}')
    if not annotations:
        raise ValueError(
            f'no instance in the PNG masks under {mask_root} for the '
            f'{len(videos)} videos of {img_root} (PNG names must match the '
            'frame names; pixel values other than 0 and --ignore-value are '
            'instances)')
    return dict(
        info=dict(description=f'converted from {root}'),
        licenses=[],
        videos=videos,
        annotations=annotations,
        categories=[
            dict(id=i, name=n, supercategory='object')
            for n, i in sorted(categories.items(), key=lambda x: x[1])
        ])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('root')
    parser.add_argument('--out', required=True, help='output json')
    parser.add_argument('--meta', help='YouTube-VOS style meta.json')
    parser.add_argument('--default-category')
    parser.add_argument('--ignore-value', type=int, default=255)
    parser.add_argument('--image-dir', default='JPEGImages')
    parser.add_argument('--mask-dir', default='Annotations')
    args = parser.parse_args(argv)
    try:
        check_output_not_input(
            args.out, [args.meta],
            input_dirs=[
                osp.join(args.root, args.image_dir),
                osp.join(args.root, args.mask_dir)
            ])
        check_writable(args.out, make_dirs=True)
        meta = None
        if args.meta:
            meta = load_json_file(args.meta, '--meta file')
        data = convert_png_masks(args.root, meta, args.default_category,
                                 args.ignore_value, args.image_dir,
                                 args.mask_dir)
    except (ValueError, OSError) as err:
        sys.exit(f'png_masks_to_vis.py: {err}')
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with atomic_write(args.out) as f:
        json.dump(data, f)
    print(f'{args.out}: {len(data["videos"])} videos, '
          f'{len(data["annotations"])} instances, '
          f'{len(data["categories"])} categories')


if __name__ == '__main__':
    main()

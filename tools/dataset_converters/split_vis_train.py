# Copyright (c) OpenMMLab. All rights reserved.
"""Split an official YouTube-VIS / OVIS train file into train_sub/valid_sub.

The official val ground truth is hidden (CodaLab only), so local numbers need
a held-out part of train. As in MDQE, about ``--ratio`` (10%) of the videos of
every category go to ``valid_sub``: categories are visited from the rarest
to the most frequent, and for each one random videos that contain it (and
have at most ``--max-frames`` frames, when such videos exist) are moved to
``valid_sub`` until the category has ``max(1, round(ratio * n_videos))``
videos there. Everything else is ``train_sub``. The split is deterministic
for a seed. Example::

    python tools/dataset_converters/split_vis_train.py \
        data/ovis/annotations_train.json --out-dir data/ovis/annotations
"""
import argparse
import json
import os
import os.path as osp
import sys
from collections import defaultdict
from typing import Dict, Tuple

import numpy as np

from mdqe_mm.utils import (atomic_write, check_output_not_input,
                           check_writable, load_json_file)


def split_vis_train(data: dict,
                    ratio: float = 0.1,
                    max_frames: int = 100,
                    seed: int = 0) -> Tuple[dict, dict]:
    """Split a YouTube-VIS style dict by video.

    Args:
        data (dict): The loaded train annotation file.
        ratio (float): Share of each category's videos for valid_sub.
        max_frames (int): Prefer videos with at most this many frames for
            valid_sub.
        seed (int): Random seed.

    Returns:
        tuple[dict, dict]: ``(train_sub, valid_sub)`` in the input format.
    """
    if not 0 < ratio < 1:
        raise ValueError(f'ratio must be in (0, 1), got {ratio}')
    if not data.get('annotations'):
        raise ValueError('the file has no annotations to split (an official'
                         ' val/test file?)')
    if not isinstance(data.get('videos'), list) or not data['videos']:
        raise ValueError('the file has no "videos" list')
    categories = data.get('categories')
    if not isinstance(categories, list) or not categories:
        raise ValueError('the file has no "categories" list')
    cat_ids = {c.get('id') for c in categories if isinstance(c, dict)}
    unknown = sorted(
        {
            a.get('category_id')
            for a in data['annotations'] if a.get('category_id') not in cat_ids
        },
        key=str)
    if unknown:
        first = next(a for a in data['annotations']
                     if a.get('category_id') not in cat_ids)
        raise ValueError(
            f'annotations use category ids {unknown} that "categories" does '
            f'not list (first: annotation {first.get("id")} of video '
            f'{first.get("video_id")}); known ids: {sorted(cat_ids, key=str)}')
    lengths = {
        v['id']: v.get('length', len(v['file_names']))
        for v in data['videos']
    }
    videos_of_cat: Dict[int, set] = defaultdict(set)
    for ann in data['annotations']:
        if ann['video_id'] not in lengths:
            raise ValueError(f'annotation {ann.get("id")} refers to unknown '
                             f'video {ann["video_id"]}')
        videos_of_cat[ann['category_id']].add(ann['video_id'])
    rng = np.random.default_rng(seed)
    valid_ids = set()
    for cat_id in sorted(
            videos_of_cat, key=lambda c: (len(videos_of_cat[c]), c)):
        videos = sorted(videos_of_cat[cat_id])
        target = max(1, int(round(ratio * len(videos))))
        if len(videos) < 2:
            continue  # keep a category's only video for training
        have = len(valid_ids.intersection(videos))
        pool = [v for v in videos if v not in valid_ids]
        short = [v for v in pool if lengths[v] <= max_frames]
        pool = short if short else pool
        order = rng.permutation(len(pool))
        for i in order[:max(0, target - have)]:
            valid_ids.add(pool[i])

    def subset(video_ids: set) -> dict:
        out = {
            k: v
            for k, v in data.items() if k not in ('videos', 'annotations')
        }
        out['videos'] = [v for v in data['videos'] if v['id'] in video_ids]
        out['annotations'] = [
            a for a in data['annotations'] if a['video_id'] in video_ids
        ]
        return out

    if not valid_ids:
        raise ValueError(
            f'valid_sub would be empty: none of the {len(lengths)} videos can '
            'be held out (a category keeps its only video for training); '
            'split a file with more videos per category')
    train_ids = set(lengths) - valid_ids
    return subset(train_ids), subset(valid_ids)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('train_json', help='official train annotation file')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--ratio', type=float, default=0.1)
    parser.add_argument('--max-frames', type=int, default=100)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    outputs = {
        name: osp.join(args.out_dir, f'{name}.json')
        for name in ('train_sub', 'valid_sub')
    }
    try:
        # refused before any work: an output that is the input file
        check_output_not_input(outputs.values(), [args.train_json])
        data = load_json_file(args.train_json, 'annotation file')
        if not isinstance(data, dict):
            raise ValueError(f'{args.train_json} is not a YouTube-VIS '
                             'annotation dict')
        train_sub, valid_sub = split_vis_train(data, args.ratio,
                                               args.max_frames, args.seed)
        os.makedirs(args.out_dir, exist_ok=True)
        for path in outputs.values():
            check_writable(path)
    except (ValueError, OSError) as err:
        message = str(err)
        if args.train_json not in message:
            message = f'{args.train_json}: {message}'
        sys.exit(f'split_vis_train.py: {message}')
    # both files are complete in memory; each replaces the old one in one
    # rename, so a failure leaves the earlier outputs as they were
    texts = {
        name: json.dumps(part)
        for name, part in (('train_sub', train_sub), ('valid_sub', valid_sub))
    }
    for name, part in (('train_sub', train_sub), ('valid_sub', valid_sub)):
        path = outputs[name]
        with atomic_write(path) as f:
            f.write(texts[name])
        print(f'{path}: {len(part["videos"])} videos, '
              f'{len(part["annotations"])} instances')
    names = {c['id']: c['name'] for c in data['categories']}
    per_cat = defaultdict(lambda: [set(), set()])
    for i, part in enumerate((train_sub, valid_sub)):
        for ann in part['annotations']:
            per_cat[ann['category_id']][i].add(ann['video_id'])
    for cat_id in sorted(per_cat):
        train_v, valid_v = per_cat[cat_id]
        print(f'  {names.get(cat_id, cat_id)}: {len(train_v)} train / '
              f'{len(valid_v)} valid videos')


if __name__ == '__main__':
    main()

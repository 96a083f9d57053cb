# Copyright (c) OpenMMLab. All rights reserved.
import importlib.util
import json
import os
import os.path as osp
from collections import defaultdict

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import pytest
from mmengine.registry import init_default_scope
from PIL import Image

from mdqe_mm.datasets import VISDataset

init_default_scope('mmdet')

TOOLS = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools',
    'dataset_converters')


def load_tool(name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(TOOLS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_train_file(num_videos=60, num_cats=3, seed=0):
    """Videos with 1-2 categories each; only ids and lengths matter."""
    rng = np.random.default_rng(seed)
    videos, anns = [], []
    for v in range(1, num_videos + 1):
        length = int(rng.integers(5, 150))
        videos.append(
            dict(
                id=v,
                width=8,
                height=8,
                length=length,
                file_names=[f'v{v}/{t}.jpg' for t in range(length)]))
        for c in rng.choice(num_cats, int(rng.integers(1, 3)), False):
            anns.append(
                dict(
                    id=len(anns) + 1,
                    video_id=v,
                    category_id=int(c) + 1,
                    iscrowd=0,
                    segmentations=[None] * length,
                    bboxes=[None] * length,
                    areas=[None] * length))
    # a rare category with only 3 videos
    for v in (1, 2, 3):
        anns.append(
            dict(
                id=len(anns) + 1,
                video_id=v,
                category_id=num_cats + 1,
                iscrowd=0,
                segmentations=[None] * videos[v - 1]['length'],
                bboxes=[None] * videos[v - 1]['length'],
                areas=[None] * videos[v - 1]['length']))
    cats = [dict(id=i + 1, name=f'c{i}') for i in range(num_cats + 1)]
    return dict(
        info={}, licenses=[], videos=videos, annotations=anns, categories=cats)


def test_split_is_per_category_disjoint_and_complete():
    tool = load_tool('split_vis_train')
    data = fake_train_file()
    train, valid = tool.split_vis_train(
        data, ratio=0.1, max_frames=100, seed=0)
    train_ids = {v['id'] for v in train['videos']}
    valid_ids = {v['id'] for v in valid['videos']}
    assert not train_ids & valid_ids
    assert train_ids | valid_ids == {v['id'] for v in data['videos']}
    assert len(train['annotations']) + len(valid['annotations']) == len(
        data['annotations'])
    assert all(a['video_id'] in valid_ids for a in valid['annotations'])
    videos_of = defaultdict(set)
    for ann in data['annotations']:
        videos_of[ann['category_id']].add(ann['video_id'])
    lengths = {v['id']: v['length'] for v in data['videos']}
    for cat, vids in videos_of.items():
        n_valid = len(vids & valid_ids)
        target = max(1, round(0.1 * len(vids)))
        assert n_valid >= target  # every category is represented
        assert len(vids & train_ids) > 0  # and still trained on
    # about 10% of the videos in all; short videos are preferred
    assert 0.05 <= len(valid_ids) / len(data['videos']) <= 0.2
    assert all(lengths[v] <= 100 for v in valid_ids)
    # deterministic for a seed
    again = tool.split_vis_train(data, ratio=0.1, max_frames=100, seed=0)
    assert again[1]['videos'] == valid['videos']
    with pytest.raises(ValueError, match='no annotations'):
        tool.split_vis_train(dict(data, annotations=None))


def write_palette_png(path, ids):
    img = Image.fromarray(ids.astype(np.uint8), mode='P')
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] * 64)
    img.save(path)


def test_png_masks_convert_to_loadable_vis_json(tmp_path):
    tool = load_tool('png_masks_to_vis')
    root = tmp_path / 'mine'
    h, w = 20, 30
    id_maps = {}
    for video, length in (('alpha', 3), ('beta', 2)):
        os.makedirs(root / 'JPEGImages' / video)
        os.makedirs(root / 'Annotations' / video)
        for t in range(length):
            cv2.imwrite(
                str(root / 'JPEGImages' / video / f'{t:05d}.jpg'),
                np.zeros((h, w, 3), np.uint8))
            ids = np.zeros((h, w), np.int64)
            ids[2:8, 3 + t:10 + t] = 1
            if t != 1:
                ids[10:18, 15:25] = 2
            ids[0, 0] = 255  # ignore label
            id_maps[(video, t)] = ids
            if not (video == 'beta' and t == 1):  # a frame with no PNG
                write_palette_png(
                    root / 'Annotations' / video / f'{t:05d}.png', ids)
    meta = dict(videos=dict(alpha=dict(objects={'2': dict(category='cat')})))
    data = tool.convert_png_masks(str(root), meta, default_category='dog')
    assert [c['name'] for c in data['categories']] == ['dog', 'cat']
    assert [v['length'] for v in data['videos']] == [3, 2]
    out = tmp_path / 'mine.json'
    with open(out, 'w') as f:
        json.dump(data, f)
    ds = VISDataset(
        ann_file=str(out),
        data_prefix=dict(img_path=str(root / 'JPEGImages')),
        metainfo=dict(classes=('dog', 'cat')),
        pipeline=[])
    assert len(ds) == 2
    by_video = {
        ds.get_data_info(i)['video_name']: ds.get_data_info(i)
        for i in range(2)
    }
    for (video, t), ids in id_maps.items():
        frame = by_video[video]['images'][t]
        if video == 'beta' and t == 1:
            assert frame['instances'] == []
            continue
        found = []
        for inst in frame['instances']:
            mask = mask_utils.decode(inst['mask']).astype(bool)
            ys, xs = np.nonzero(mask)
            assert inst['bbox'] == [
                xs.min(), ys.min(),
                xs.max() + 1, ys.max() + 1
            ]
            found.append((inst['bbox_label'], mask))
        expected = [(0, ids == 1)]
        if t != 1:
            expected.append((1 if video == 'alpha' else 0, ids == 2))
        assert len(found) == len(expected)
        for label, mask in expected:
            assert any(label == fl and np.array_equal(mask, fm)
                       for fl, fm in found)
    with pytest.raises(ValueError, match='no category'):
        tool.convert_png_masks(str(root))

# Copyright (c) OpenMMLab. All rights reserved.
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
from mmdet.datasets import CocoDataset
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import mdqe_mm  # noqa: F401  (registers the components)

init_default_scope('mmdet')

CONFIG_DIR = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
    '_base_', 'datasets')


def small_loader(cfg, data_root):
    cfg = cfg.copy()
    cfg.num_workers = 0
    cfg.persistent_workers = False
    cfg.dataset.data_root = data_root
    return cfg


def check_train_and_test(cfg, root, num_frames):
    np.random.seed(0)
    loader = Runner.build_dataloader(
        small_loader(cfg.train_dataloader, root), seed=0)
    batch = next(iter(loader))
    assert len(batch['inputs']) == cfg.train_dataloader.batch_size
    for inputs, sample in zip(batch['inputs'], batch['data_samples']):
        assert inputs.shape[0] == num_frames and len(sample) == num_frames
        short = min(inputs.shape[-2:])
        assert inputs.dtype.is_floating_point is False
        assert short <= max(cfg.train_short_sides)
    test_loader = Runner.build_dataloader(
        small_loader(cfg.test_dataloader, root), seed=0)
    video = next(iter(test_loader))
    sample = video['data_samples'][0]
    assert video['inputs'][0].shape[0] == len(sample)
    assert [s.frame_id for s in sample] == list(range(len(sample)))
    assert min(video['inputs'][0].shape[-2:]) == cfg.test_short_side
    return video


def assert_resized_like_detectron2(video):
    """The reference (Detectron2) resizes test frames with PIL's bilinear
    filter, which antialiases when shrinking; cv2's does not."""
    from PIL import Image
    frame = video['inputs'][0][0].permute(1, 2, 0).numpy()  # BGR uint8
    src = cv2.imread(video['data_samples'][0][0].img_path)
    height, width = frame.shape[:2]
    expected = np.asarray(
        Image.fromarray(src).resize((width, height), Image.BILINEAR))
    np.testing.assert_array_equal(frame, expected)
    # cv2 rounds differently even when enlarging, so this tells them apart
    plain = cv2.resize(src, (width, height), interpolation=cv2.INTER_LINEAR)
    assert np.abs(plain.astype(int) - frame.astype(int)).max() > 0


@pytest.mark.parametrize('name,preset_file,train_json,test_json,img_dirs', [
    ('ovis_clip', 'vis_tiny_ovis_train.json', 'annotations/train_sub.json',
     'annotations_valid.json', ('train', 'valid')),
    ('youtube_vis_2019_clip', 'vis_tiny_ytvis2019.json',
     'annotations/train_sub.json', 'valid.json',
     ('train/JPEGImages', 'valid/JPEGImages')),
    ('youtube_vis_2021_clip', 'vis_tiny_ytvis2019.json',
     'annotations/train_sub.json', 'valid/instances.json',
     ('train/JPEGImages', 'valid/JPEGImages')),
])
def test_real_dataset_configs(tmp_path, data_dir, frame_writer, name,
                              preset_file, train_json, test_json, img_dirs):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, f'{name}.py'))
    root = tmp_path / 'data'
    src = osp.join(data_dir, preset_file)
    with open(src) as f:
        data = json.load(f)
    if '2021' in name:  # 2021 ids: person 26, dog 9
        ids = {1: 26, 8: 9}
        for ann in data['annotations']:
            ann['category_id'] = ids[ann['category_id']]
        for cat in data['categories']:
            cat['id'] = ids[cat['id']]
    for rel in (train_json, 'annotations/valid_sub.json', test_json):
        os.makedirs(osp.dirname(root / rel), exist_ok=True)
        with open(root / rel, 'w') as f:
            json.dump(
                data if rel != test_json else dict(data, annotations=None), f)
    for img_dir in img_dirs:
        frame_writer(src, str(root / img_dir))
    cfg.train_dataloader.batch_size = 1
    video = check_train_and_test(cfg, str(root) + '/', cfg.num_frames)
    assert_resized_like_detectron2(video)


def test_synthetic_config_generates_and_loads(tmp_path):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'synthetic_vis_clip.py'))
    small = dict(
        num_train_videos=3,
        num_valid_videos=1,
        num_frames=5,
        height=96,
        width=160,
        seed=0)
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        loader.dataset.generator_cfg = small
    root = str(tmp_path / 'synthetic') + '/'
    check_train_and_test(cfg, root, cfg.num_frames)
    assert osp.isfile(osp.join(root, 'annotations', 'valid.json'))


def test_coco_pseudo_mix_config(tmp_path, data_dir, frame_writer):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'coco_pseudo_ovis_clip.py'))
    root = tmp_path / 'ovis'
    os.makedirs(root / 'annotations')
    shutil.copy(
        osp.join(data_dir, 'vis_tiny_ovis_train.json'),
        root / 'annotations' / 'train_sub.json')
    frame_writer(
        osp.join(data_dir, 'vis_tiny_ovis_train.json'), str(root / 'train'))
    coco = tmp_path / 'coco'
    os.makedirs(coco / 'annotations')
    os.makedirs(coco / 'train2017')
    cv2.imwrite(
        str(coco / 'train2017' / '1.jpg'), np.full((80, 120, 3), 90, np.uint8))
    coco_json = dict(
        images=[dict(id=1, file_name='1.jpg', height=80, width=120)],
        annotations=[
            dict(
                id=1,
                image_id=1,
                category_id=1,
                bbox=[10, 10, 40, 50],
                area=2000,
                iscrowd=0,
                segmentation=[[10, 10, 50, 10, 50, 60, 10, 60]]),
            dict(
                id=2,
                image_id=1,
                category_id=71,
                bbox=[60, 10, 30, 30],
                area=900,
                iscrowd=0,
                segmentation=[[60, 10, 90, 10, 90, 40, 60, 40]]),
        ],
        # all 80 classes, as in the real file: CocoDataset labels are the
        # positions of the file's categories in its class list
        categories=[
            dict(id=i + 1, name=name)
            for i, name in enumerate(CocoDataset.METAINFO['classes'])
        ])
    with open(coco / 'annotations' / 'instances_train2017.json', 'w') as f:
        json.dump(coco_json, f)
    loader_cfg = cfg.train_dataloader.copy()
    loader_cfg.num_workers = 0
    loader_cfg.persistent_workers = False
    loader_cfg.dataset.datasets[0].data_root = str(root) + '/'
    loader_cfg.dataset.datasets[1].data_root = str(coco) + '/'
    loader_cfg.dataset.datasets[1].filter_cfg = dict(filter_empty_gt=True)
    loader_cfg.sampler.seed = 0  # the mix is then the same on every run
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    np.random.seed(0)
    sources = set()
    for _, batch in zip(range(12), loader):
        for inputs, sample in zip(batch['inputs'], batch['data_samples']):
            assert inputs.shape[0] == cfg.num_frames
            from_coco = {s.img_path.startswith(str(coco)) for s in sample}
            assert len(from_coco) == 1  # a clip never mixes the sources
            sources.add('coco' if from_coco.pop() else 'ovis')
            labels = {
                int(label)
                for s in sample
                for label in s.gt_instances.labels
            }
            # toaster has no OVIS class; the person maps to 'Person' (0)
            assert labels <= {0, 24}
    assert sources == {'coco', 'ovis'}

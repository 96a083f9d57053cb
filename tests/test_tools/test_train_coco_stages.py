# Copyright (c) OpenMMLab. All rights reserved.
"""The two R50 COCO stages train with tools/train.py on generated COCO data,
the second one loading the first one's checkpoint (1 -> 4 frames)."""
import glob
import json
import os
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
import torch
from mmdet.datasets import CocoDataset
from pycocotools import mask as mask_utils

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
STAGE1 = osp.join(REPO_ROOT, 'configs', 'mdqe', 'mdqe_r50_8xb2-267k_coco.py')
STAGE2 = osp.join(REPO_ROOT, 'configs', 'mdqe',
                  'mdqe_r50_8xb2-12k_coco-pseudo4.py')
TEMPORAL_KEY = ('track_head.decoder.layers.0.clip_temporal_attn.'
                'attention_weights.weight')


def write_tiny_coco(root: str, num_images: int = 3) -> None:
    """COCO-format images with a polygon person and an RLE dog each."""
    os.makedirs(osp.join(root, 'annotations'))
    os.makedirs(osp.join(root, 'train2017'))
    rng = np.random.RandomState(0)
    height, width = 64, 96
    images, annotations = [], []
    for i in range(1, num_images + 1):
        img = (rng.rand(height, width, 3) * 60 + 40).astype(np.uint8)
        x0 = 4 + 4 * i
        polygon = [x0, 10, x0 + 30, 10, x0 + 30, 50, x0, 50]
        cv2.fillPoly(img, [np.array(polygon).reshape(-1, 2)], (200, 60, 60))
        dog = np.zeros((height, width), np.uint8)
        dog[20:44, 55:85] = 1
        img[dog > 0] = (60, 200, 60)
        cv2.imwrite(osp.join(root, 'train2017', f'{i}.jpg'), img)
        images.append(
            dict(id=i, file_name=f'{i}.jpg', height=height, width=width))
        rle = mask_utils.encode(np.asfortranarray(dog))
        rle['counts'] = rle['counts'].decode()
        annotations += [
            dict(
                id=2 * i,
                image_id=i,
                category_id=1,
                bbox=[x0, 10, 30, 40],
                area=1200,
                iscrowd=0,
                segmentation=[polygon]),
            dict(
                id=2 * i + 1,
                image_id=i,
                category_id=18,  # dog, 17th of the 80 classes
                bbox=[55, 20, 30, 24],
                area=720,
                iscrowd=0,
                segmentation=rle)
        ]
    categories = [
        dict(id=k + 1, name=name)
        for k, name in enumerate(CocoDataset.METAINFO['classes'])
    ]
    with open(osp.join(root, 'annotations', 'instances_train2017.json'),
              'w') as f:
        json.dump(
            dict(
                images=images, annotations=annotations, categories=categories),
            f)


@pytest.fixture
def train_main(load_tool, monkeypatch):
    train = load_tool('tools/train.py')

    def run(args):
        monkeypatch.setattr(sys, 'argv', ['train.py'] + args)
        train.main()

    return run


def test_coco_stages_train_and_chain(tmp_path, train_main):
    root = str(tmp_path / 'coco')
    write_tiny_coco(root)
    base = [
        f'train_dataloader.dataset.data_root={root}/',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'train_dataloader.batch_size=1',
        'train_dataloader.dataset.filter_cfg.min_size=0',
        'model.backbone.init_cfg=None',
        'model.encoder.num_layers=1',
        'model.track_head.decoder.num_layers=1',
        'train_cfg.max_iters=2',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.checkpoint.save_optimizer=False',
        'default_hooks.logger.interval=1',
        # the local backend writes the config out once more (yapf: slow)
        'visualizer.vis_backends=None'
    ]

    def small_sizes(crop):  # crop: index in the clip TransformBroadcaster
        prefix = 'train_dataloader.dataset.pipeline.3.transforms'
        return [
            f'{prefix}.{crop + 1}.scales=[(96,64)]',
            f'{prefix}.{crop}.transforms.0.scales=[(160,96)]',
            f'{prefix}.{crop}.transforms.1.crop_size=(48,80)'
        ]

    # stage 1: 1-frame COCO clips, from scratch
    work1 = str(tmp_path / 'stage1')
    train_main([STAGE1, '--work-dir', work1, '--cfg-options'] + base +
               small_sizes(0))
    ckpt1 = osp.join(work1, 'iter_2.pth')
    state1 = torch.load(
        ckpt1, map_location='cpu', weights_only=False)['state_dict']
    # 8 heads x 1 frame x 4 points attention logits
    assert state1[TEMPORAL_KEY].shape[0] == 8 * 1 * 4
    assert state1['track_head.cls_embed.layers.2.weight'].shape[0] == 80

    # stage 2: 4-frame pseudo-videos from stage 1's checkpoint
    work2 = str(tmp_path / 'stage2')
    train_main([STAGE2, '--work-dir', work2, '--cfg-options'] + base +
               small_sizes(1) +  # (rotation first)
               [f'load_from={ckpt1}', 'optim_wrapper.optimizer.lr=0.0'])
    (log_file, ) = glob.glob(osp.join(work2, '*', '*.log'))
    with open(log_file) as f:
        log = f.read()
    # one decoder layer, one temporal attention
    assert log.count('inflated from 1 to 4 frames') == 1
    assert ('clip_temporal_attn inflated from 1 to 4 frames '
            "(mode='reference', source frames [0, 0, 0, 0])") in log
    state2 = torch.load(
        osp.join(work2, 'iter_2.pth'), map_location='cpu',
        weights_only=False)['state_dict']
    # with lr 0 the weights are the loaded ones: stage 1's, and its
    # temporal attention with frame 0's slices in all 4 frames
    prefix = 'track_head.decoder.layers.0.clip_temporal_attn.'
    per_frame = {
        'attention_weights.weight': (8, 1, 4, -1),
        'attention_weights.bias': (8, 1, 4),
        'sampling_grid_offsets.weight': (8, 1, 4, 2, -1),
        'sampling_grid_offsets.bias': (8, 1, 4, 2),
        'sampling_offsets': (1, 1, 8, 1, 4, 2),
        'lvl_spatial_scales': (1, ),
    }
    assert set(state2) == set(state1)
    for key, old in state1.items():
        new = state2[key]
        name = key[len(prefix):]
        if key.startswith(prefix) and name in per_frame:
            axis = 3 if name == 'sampling_offsets' else \
                0 if name == 'lvl_spatial_scales' else 1
            old = old.reshape(per_frame[name])
            expected = torch.cat([old] * 4, dim=axis)
            assert torch.equal(new, expected.reshape(new.shape)), key
        else:
            assert torch.equal(new, old), key
    assert state2[TEMPORAL_KEY].shape[0] == 8 * 4 * 4

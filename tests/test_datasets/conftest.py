# Copyright (c) OpenMMLab. All rights reserved.
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest

DATA_DIR = osp.join(osp.dirname(osp.dirname(__file__)), 'data')


def write_frames(ann_file: str, img_root: str, seed: int = 0) -> dict:
    """Write a random JPEG for every frame named in ``ann_file``."""
    with open(ann_file) as f:
        data = json.load(f)
    rng = np.random.default_rng(seed)
    for video in data['videos']:
        for name in video['file_names']:
            path = osp.join(img_root, name)
            os.makedirs(osp.dirname(path), exist_ok=True)
            img = rng.integers(0, 255, (video['height'], video['width'], 3))
            cv2.imwrite(path, img.astype(np.uint8))
    return data


@pytest.fixture
def data_dir():
    """Folder of the hand-written JSON fixtures."""
    return DATA_DIR


@pytest.fixture
def frame_writer():
    """``write_frames(ann_file, img_root)``: random JPEGs for a file."""
    return write_frames


@pytest.fixture
def tiny_vis_root(tmp_path):
    """tmp folder with the hand-written JSON fixtures and their frames."""
    for name in ('vis_tiny_ytvis2019.json', 'vis_tiny_ovis_train.json',
                 'vis_tiny_ovis_valid.json'):
        shutil.copy(osp.join(DATA_DIR, name), tmp_path / name)
        write_frames(str(tmp_path / name), str(tmp_path / 'frames'))
    return tmp_path


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory):
    """A small synthetic set (shared by the tests of this folder)."""
    from mdqe_mm.datasets.synthetic import generate_synthetic_vis
    root = tmp_path_factory.mktemp('synthetic_vis')
    generate_synthetic_vis(
        str(root),
        num_train_videos=6,
        num_valid_videos=2,
        num_frames=8,
        height=64,
        width=96,
        seed=3)
    return root

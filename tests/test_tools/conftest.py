# Copyright (c) OpenMMLab. All rights reserved.
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_CONFIG = osp.join(REPO_ROOT, 'tests', 'data', 'configs',
                       'tiny_retinanet_coco.py')


def make_tiny_coco(root: str, num_images: int = 4, size: int = 64) -> str:
    """Write ``num_images`` JPEGs with one bright box each + a COCO json."""
    import cv2
    rng = np.random.RandomState(0)
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    images, annotations = [], []
    for i in range(num_images):
        img = (rng.rand(size, size, 3) * 60).astype(np.uint8)
        x0, y0 = rng.randint(4, size // 2, size=2)
        w, h = rng.randint(12, size // 2, size=2)
        img[y0:y0 + h, x0:x0 + w] = (40, 200, 240)
        name = f'{i:04d}.jpg'
        cv2.imwrite(osp.join(root, 'images', name), img)
        images.append(dict(id=i + 1, file_name=name, width=size,
                           height=size))
        annotations.append(
            dict(id=i + 1, image_id=i + 1, category_id=1,
                 bbox=[int(x0), int(y0), int(w), int(h)],
                 area=int(w * h), iscrowd=0))
    with open(osp.join(root, 'annotations.json'), 'w') as f:
        json.dump(dict(images=images, annotations=annotations,
                       categories=[dict(id=1, name='box')]), f)
    return root


@pytest.fixture(scope='module')
def tiny_coco(tmp_path_factory) -> str:
    return make_tiny_coco(str(tmp_path_factory.mktemp('tiny_coco')))


def _run_tool(args, cwd=REPO_ROOT, env=None, timeout=600):
    """Run a repo tool as a user would; return the CompletedProcess."""
    full_env = dict(os.environ)
    full_env['PYTHONPATH'] = os.pathsep.join(
        [REPO_ROOT, osp.join(REPO_ROOT, 'tests', 'data'),
         full_env.get('PYTHONPATH', '')])
    full_env.setdefault('OMP_NUM_THREADS', '1')
    if env:
        full_env.update(env)
    cmd = [sys.executable] + list(args) if args[0].endswith('.py') \
        else list(args)
    return subprocess.run(
        cmd, cwd=cwd, env=full_env, capture_output=True, text=True,
        timeout=timeout)


@pytest.fixture
def run_tool():
    """``run_tool(args, env=None)``: run a repo tool in a subprocess."""
    return _run_tool


@pytest.fixture
def tiny_config() -> str:
    return TINY_CONFIG

# Copyright (c) OpenMMLab. All rights reserved.
"""Every config in configs/mixing/ builds, trains 2 iterations on CPU and
evaluates, on a tiny synthetic set (tools/train.py, as a user runs it)."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MIXING = osp.join(REPO_ROOT, 'configs', 'mixing')
TINY_SYNTHETIC = dict(
    num_train_videos=4, num_valid_videos=2, num_frames=4, height=64, width=96)

# config -> (kind of data, the metric that evaluation must print, losses the
# training log must show beyond the stock ones)
CASES = {
    'mask2former_r50_synthetic-coco.py': ('coco', 'coco/segm_mAP', ()),
    'mask2former_r50_repulsion_synthetic-coco.py':
    ('coco', 'coco/segm_mAP', ()),
    'dino_r50_synthetic-coco.py': ('coco', 'coco/bbox_mAP', ()),
    'dino_r50_grid-query_overlap-giou_synthetic-coco.py':
    ('coco', 'coco/bbox_mAP', ('loss_sem', 'loss_reid_ctt')),
    'mask2former-video_r18-tiny_synthetic.py': ('vis', 'vis/AP', ()),
    'masktrack-rcnn_r50_synthetic.py': ('vis', 'vis/AP', ()),
    'mask2former-video_r18-tiny_repulsion_synthetic.py': ('vis', 'vis/AP', ()),
    'mask2former-video_r18-tiny_grid-query_synthetic.py':
    ('vis', 'vis/AP', ('loss_sem', 'loss_reid_ctt', 'loss_reid_aux')),
}


@pytest.fixture(scope='module')
def synthetic_root(tmp_path_factory) -> str:
    from mdqe_mm.datasets import ensure_synthetic_vis
    root = str(tmp_path_factory.mktemp('mixing_synthetic'))
    return ensure_synthetic_vis(root, **TINY_SYNTHETIC) + '/'


def data_options(kind: str, root: str) -> list:
    """--cfg-options pointing a mixing config at the tiny set, 2 iterations,
    validation right after them on 2 videos (or 6 frames)."""
    options = []
    for loader in ('train', 'val', 'test'):
        options.append(f'{loader}_dataloader.dataset.data_root={root}')
        # the set under root is the tiny one, not the configs' default
        options.extend(
            f'{loader}_dataloader.dataset.generator_cfg.{key}={value}'
            for key, value in TINY_SYNTHETIC.items())
    options += [
        'train_cfg.max_iters=2',
        'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False',
    ]
    if kind == 'coco':
        ann = f'{root}annotations/valid_frames_coco.json'
        options += [
            f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}',
            'val_dataloader.dataset.indices=6'
        ]
    else:
        ann = f'{root}annotations/valid.json'
        options += [
            f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}'
        ]
    return options


def run_train(config: str, work_dir: str, options: list):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([REPO_ROOT, env.get('PYTHONPATH', '')])
    env.setdefault('OMP_NUM_THREADS', '1')
    cmd = [
        sys.executable,
        osp.join(REPO_ROOT, 'tools', 'train.py'), config, '--work-dir',
        work_dir, '--cfg-options'
    ] + options
    return subprocess.run(
        cmd,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900)


def test_every_mixing_config_is_covered():
    configs = sorted(
        name for name in os.listdir(MIXING) if name.endswith('.py'))
    tested = set(CASES) | set(EXTRA_TESTED)
    assert configs and set(configs) <= tested, set(configs) - tested


# configs covered by a test elsewhere (name -> test)
EXTRA_TESTED = {
    'mask2former-video_near-online_synthetic.py':
    'tests/test_models/test_detectors/test_near_online_mask2former_video.py',
}


@pytest.mark.parametrize('name', sorted(CASES) + sorted(EXTRA_TESTED))
def test_mixing_config_builds_and_tests_what_it_validates(name):
    """Each config builds its model, and tests on what it validates on
    (a shared {{_base_.x}} dict can silently keep stock settings)."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    register_all_modules()
    cfg = Config.fromfile(osp.join(MIXING, name))
    assert cfg.test_dataloader == cfg.val_dataloader
    assert cfg.test_evaluator == cfg.val_evaluator
    assert 'synthetic_vis' in cfg.val_dataloader.dataset.data_root
    MODELS.build(cfg.model)


@pytest.mark.parametrize('name', sorted(CASES))
def test_mixing_config_trains_and_evaluates(name, synthetic_root, tmp_path):
    kind, metric, extra_losses = CASES[name]
    out = run_train(
        osp.join(MIXING, name), str(tmp_path),
        data_options(kind, synthetic_root))
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    losses = re.findall(r'Iter\(train\) \[\s*2/2\].*?loss: ([0-9.naninf]+)',
                        log)
    assert losses and all(v not in ('nan', 'inf') for v in losses), log[-3000:]
    for loss in extra_losses:
        assert re.search(rf'Iter\(train\).* {loss}: [0-9.]+', log), loss
    assert re.search(rf'{metric}: [0-9.-]+', log), log[-3000:]
    assert osp.isfile(osp.join(str(tmp_path), 'iter_2.pth'))

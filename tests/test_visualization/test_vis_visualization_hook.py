# Copyright (c) OpenMMLab. All rights reserved.
import os
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import HOOKS, MODELS
from mmdet.structures import DetDataSample, TrackDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import save_checkpoint
from mmengine.structures import InstanceData

from mdqe_mm.visualization import frame_output_name, id_color

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO_ROOT, 'configs', 'quickstart',
                  'mdqe_tiny_1xb2-4k_synthetic.py')


def test_frame_output_name():
    assert frame_output_name('data/ovis/valid/JPEGImages/vid_7/00003.jpg') \
        == ('vid_7', '00003')
    assert frame_output_name('v/img_0000001.png') == ('v', 'img_0000001')


def test_hook_writes_one_folder_per_video(tmp_path):
    """Two videos under one JPEGImages folder: mmdet's hook would name
    both 'JPEGImages'; here each gets its own folder, masks drawn."""
    outputs = []
    mask = np.zeros((96, 128), bool)
    mask[40:80, 30:100] = True  # its label goes above row 40
    for video_id, name in ((1, 'vid_a'), (2, 'vid_b')):
        folder = tmp_path / 'JPEGImages' / name
        folder.mkdir(parents=True)
        frames = []
        for t in range(2):
            path = str(folder / f'{t:05d}.jpg')
            cv2.imwrite(path, np.full((96, 128, 3), 90, np.uint8))
            frame = DetDataSample(
                metainfo=dict(img_path=path, video_id=video_id, frame_id=t))
            frame.pred_track_instances = InstanceData(
                masks=torch.from_numpy(mask[None]),
                scores=torch.tensor([0.9]),
                labels=torch.tensor([0]),
                track_ids=torch.tensor([video_id]))
            frames.append(frame)
        outputs.append(TrackDataSample(video_data_samples=frames))
    out_dir = str(tmp_path / 'show')
    hook = HOOKS.build(
        dict(type='VISVisualizationHook', draw=True, test_out_dir=out_dir))
    runner = SimpleNamespace(
        model=SimpleNamespace(dataset_meta=dict(classes=('thing', ))),
        work_dir=str(tmp_path),
        timestamp='now',
        test_dataloader=None)
    hook.before_test(runner)
    hook.after_test_iter(runner, 0, {}, outputs)
    assert sorted(os.listdir(out_dir)) == ['vid_a', 'vid_b']
    for video_id, name in ((1, 'vid_a'), (2, 'vid_b')):
        assert sorted(os.listdir(osp.join(
            out_dir, name))) == ['00000.jpg', '00001.jpg']
        drawn = cv2.imread(osp.join(out_dir, name, '00001.jpg'))[..., ::-1]
        expected = 0.5 * 90 + 0.5 * np.array(id_color(video_id))
        # JPEG: compare the mean colour inside the mask's interior
        np.testing.assert_allclose(
            drawn[44:76, 34:96].reshape(-1, 3).mean(0), expected, atol=6)
    with pytest.raises(ValueError, match='interval'):
        HOOKS.build(dict(type='VISVisualizationHook', interval=0))


def test_test_py_show_dir(tmp_path):
    """tools/test.py --show-dir on the quick-start config (random weights,
    two tiny validation videos) writes DIR/<video>/<frame>.jpg."""
    from mdqe_mm.datasets import ensure_synthetic_vis
    generator_cfg = dict(
        num_train_videos=1,
        num_valid_videos=2,
        num_frames=3,
        height=64,
        width=96)
    root = ensure_synthetic_vis(str(tmp_path / 'data'), **generator_cfg) + '/'
    cfg = Config.fromfile(CONFIG)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    ckpt = str(tmp_path / 'random.pth')
    save_checkpoint(dict(state_dict=model.state_dict()), ckpt)
    show = tmp_path / 'show'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [
            sys.executable, 'tools/test.py', CONFIG, ckpt, '--work-dir',
            str(tmp_path / 'work'), '--show-dir',
            str(show), '--show-gt', '--cfg-options',
            f'test_dataloader.dataset.data_root={root}',
            f'test_evaluator.ann_file={root}annotations/valid.json',
            'test_dataloader.dataset.generator_cfg.preset=small'
        ] + [
            f'test_dataloader.dataset.generator_cfg.{key}={value}'
            for key, value in generator_cfg.items()
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(os.listdir(show)) == ['vid_0000', 'vid_0001']
    for video in ('vid_0000', 'vid_0001'):
        names = sorted(os.listdir(show / video))
        assert names == ['00000.jpg', '00001.jpg', '00002.jpg']
        image = cv2.imread(str(show / video / names[0]))
        # --show-gt: ground truth left of the predictions
        assert image.shape == (64, 2 * 96, 3)


def test_hook_refuses_to_overwrite_frames(tmp_path):
    folder = tmp_path / 'JPEGImages' / 'vid'
    folder.mkdir(parents=True)
    path = str(folder / '00000.jpg')
    cv2.imwrite(path, np.full((16, 16, 3), 7, np.uint8))
    before = open(path, 'rb').read()
    frame = DetDataSample(metainfo=dict(img_path=path, video_id=1, frame_id=0))
    frame.pred_track_instances = InstanceData(
        masks=torch.ones(1, 16, 16, dtype=torch.bool),
        scores=torch.tensor([0.9]),
        labels=torch.tensor([0]),
        track_ids=torch.tensor([1]))
    hook = HOOKS.build(
        dict(
            type='VISVisualizationHook',
            draw=True,
            test_out_dir=str(tmp_path / 'JPEGImages')))
    runner = SimpleNamespace(
        model=SimpleNamespace(dataset_meta=None),
        work_dir=str(tmp_path),
        timestamp='now',
        test_dataloader=None)
    with pytest.raises(ValueError, match='would overwrite the input frame'):
        hook.after_test_iter(runner, 0, {},
                             [TrackDataSample(video_data_samples=[frame])])
    assert open(path, 'rb').read() == before


@pytest.mark.parametrize('sub', ['', 'vid_0000'])
def test_test_py_refuses_show_dir_among_frames(tmp_path, sub):
    """--show-dir equal to, or inside, the test frame folder is refused
    before anything runs."""
    ckpt = str(tmp_path / 'any.pth')
    save_checkpoint(dict(state_dict=dict()), ckpt)
    images = tmp_path / 'data' / 'valid' / 'JPEGImages'
    images.mkdir(parents=True)
    proc = subprocess.run([
        sys.executable, 'tools/test.py', CONFIG, ckpt, '--show-dir',
        str(images / sub), '--cfg-options',
        f'test_dataloader.dataset.data_root={tmp_path / "data"}/'
    ],
                          cwd=REPO_ROOT,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode != 0
    assert str(images) in proc.stderr
    assert 'is the input' in proc.stderr or 'inside the input' in proc.stderr
    assert os.listdir(images) == []

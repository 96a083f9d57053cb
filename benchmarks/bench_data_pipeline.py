# Copyright (c) OpenMMLab. All rights reserved.
"""Throughput of one data worker of the clip pipelines.

Generates a synthetic occlusion set at 360p (or uses ``--data-root``), then
times, in this single process (what one dataloader worker does):

* the MDQE training pipeline of ``configs/_base_/datasets/ovis_clip.py``
  (T-frame clip sampling, load, random 320..512 short side, flip, p=0.5
  drifting crop, packing), in clips per second;
* the test pipeline of the same config (whole video, 360 short side), in
  frames per second;
* the small-scale pipeline of ``synthetic_vis_clip.py`` on the default
  96x160 set, in clips per second.

Example::

    python benchmarks/bench_data_pipeline.py --num-clips 200
"""
import argparse
import os.path as osp
import tempfile
import time

import numpy as np
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mdqe_mm.datasets import VISDataset, generate_synthetic_vis

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def time_items(dataset, num_items, warmup=5):
    for i in range(warmup):
        dataset[i % len(dataset)]
    start = time.perf_counter()
    frames = 0
    for i in range(num_items):
        out = dataset[i % len(dataset)]
        frames += out['inputs'].shape[0]
    elapsed = time.perf_counter() - start
    return num_items / elapsed, frames / elapsed, out['inputs'].shape


def build(root, split, pipeline, test_mode=False):
    return VISDataset(
        data_root=root,
        ann_file=f'annotations/{split}.json',
        data_prefix=dict(img_path=f'{split}/JPEGImages'),
        preset='synthetic_vis',
        test_mode=test_mode,
        pipeline=pipeline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', help='existing 360p synthetic set')
    parser.add_argument('--num-clips', type=int, default=100)
    parser.add_argument('--num-frames', type=int, default=4)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    init_default_scope('mmdet')
    np.random.seed(args.seed)
    tmp = tempfile.TemporaryDirectory()
    root = args.data_root
    if root is None:
        root = osp.join(tmp.name, 'synthetic_360p')
        start = time.perf_counter()
        generate_synthetic_vis(
            root,
            num_train_videos=8,
            num_valid_videos=2,
            num_frames=24,
            height=360,
            width=640,
            seed=args.seed)
        print(f'generated a 360p set (8+2 videos x 24 frames) in '
              f'{time.perf_counter() - start:.1f} s')
    small_root = osp.join(tmp.name, 'synthetic_default')
    start = time.perf_counter()
    generate_synthetic_vis(small_root, seed=args.seed)
    small_gen = time.perf_counter() - start

    ovis = Config.fromfile(
        osp.join(REPO, 'configs/_base_/datasets/ovis_clip.py'))
    for t in ovis.train_pipeline:
        if t['type'] == 'ClipFrameSample':
            t['num_frames'] = args.num_frames
    small = Config.fromfile(
        osp.join(REPO, 'configs/_base_/datasets/synthetic_vis_clip.py'))

    rows = []
    clips, frames, shape = time_items(
        build(root, 'train', ovis.train_pipeline), args.num_clips)
    rows.append(
        ('train, ovis_clip recipe, 360p source', f'T={args.num_frames}',
         f'{clips:.1f} clips/s', f'{1000 / clips:.1f} ms/clip',
         f'{frames:.0f} frames/s', str(tuple(shape))))
    test_ds = build(root, 'valid', ovis.test_pipeline, test_mode=True)
    videos, frames, shape = time_items(test_ds, 2 * len(test_ds), warmup=1)
    rows.append(
        ('test, whole video, short side 360', 'T=24', f'{videos:.2f} videos/s',
         f'{1000 / frames:.1f} ms/frame', f'{frames:.0f} frames/s',
         str(tuple(shape))))
    clips, frames, shape = time_items(
        build(small_root, 'train', small.train_pipeline), args.num_clips)
    rows.append(
        ('train, synthetic_vis_clip, 96x160', 'T=4', f'{clips:.1f} clips/s',
         f'{1000 / clips:.1f} ms/clip', f'{frames:.0f} frames/s',
         str(tuple(shape))))

    header = ('pipeline (1 worker)', 'clip', 'rate', 'latency', 'frames',
              'last inputs shape')
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(6)]
    line = ' | '.join('{:<%d}' % w for w in widths)
    print(line.format(*header))
    print('-+-'.join('-' * w for w in widths))
    for row in rows:
        print(line.format(*row))
    print(f'default quick-start set (36+10 videos, 10 frames, 96x160) '
          f'generated in {small_gen:.1f} s')
    tmp.cleanup()


if __name__ == '__main__':
    main()

# Copyright (c) OpenMMLab. All rights reserved.
"""Throughput of one data worker of the clip pipelines.

Generates a synthetic occlusion set at 360p (or uses ``--data-root``), then
times, in this single process (what one dataloader worker does):

* the MDQE training pipeline of ``configs/_base_/datasets/ovis_clip.py``
  (T-frame clip sampling, load, random 320..512 short side, flip, p=0.5
  drifting crop, packing), in clips per second;
* the test pipeline of the same config (whole video, 360 short side), in
  frames per second;
* the small-scale pipeline of ``synthetic_vis_clip.py`` on a synthetic
  preset (default the quick start's ``occlusion_benchmark``), in clips per
  second, after timing that preset's generation.

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


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', help='existing 360p synthetic set')
    parser.add_argument('--num-clips', type=int, default=100)
    parser.add_argument('--num-frames', type=int, default=4)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--height',
        type=int,
        default=360,
        help='size of the generated set when --data-root is not given')
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument(
        '--video-frames',
        type=int,
        default=24,
        help='frames per video of the generated set')
    parser.add_argument(
        '--preset',
        default='occlusion_benchmark',
        help='synthetic preset whose generation is timed and whose train '
        'split feeds the synthetic pipeline row')
    args = parser.parse_args(argv)
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
            num_frames=args.video_frames,
            height=args.height,
            width=args.width,
            seed=args.seed)
        print(f'generated a {args.height}x{args.width} set (8+2 videos x '
              f'{args.video_frames} frames) in '
              f'{time.perf_counter() - start:.1f} s')
    small_root = osp.join(tmp.name, 'synthetic_preset')
    start = time.perf_counter()
    generate_synthetic_vis(small_root, preset=args.preset, seed=args.seed)
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
    rows.append(('test, whole video, short side 360', f'T={args.video_frames}',
                 f'{videos:.2f} videos/s', f'{1000 / frames:.1f} ms/frame',
                 f'{frames:.0f} frames/s', str(tuple(shape))))
    clips, frames, shape = time_items(
        build(small_root, 'train', small.train_pipeline), args.num_clips)
    rows.append((f'train, synthetic_vis_clip, {args.preset}', 'T=4',
                 f'{clips:.1f} clips/s', f'{1000 / clips:.1f} ms/clip',
                 f'{frames:.0f} frames/s', str(tuple(shape))))

    header = ('pipeline (1 worker)', 'clip', 'rate', 'latency', 'frames',
              'last inputs shape')
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(6)]
    line = ' | '.join('{:<%d}' % w for w in widths)
    print(line.format(*header))
    print('-+-'.join('-' * w for w in widths))
    for row in rows:
        print(line.format(*row))
    print(f'synthetic preset {args.preset!r} generated in {small_gen:.1f} '
          's')
    tmp.cleanup()
    return rows


if __name__ == '__main__':
    main()

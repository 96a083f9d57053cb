# Copyright (c) OpenMMLab. All rights reserved.
"""Benchmark: mdqe_mm's VIS evaluator against mmdet 3.3.0's ``YTVISeval``.

The workload imitates OVIS val: 140 videos of 60 frames at 360x640, about 10
ground-truth tracks and 100 predicted tracks per video (25 categories),
ellipse-shaped masks of all three size bins moving over the video. The data
are generated once (seeded) and cached as JSON; each evaluator then runs in
its own process, which loads the JSON and evaluates, so that peak memory is
measured per evaluator. mmdet's copy needs ``np.float``, which numpy 2 removed:
it is aliased to ``float`` inside its worker process only.

Usage::

    python benchmarks/bench_vis_eval.py                   # full size
    python benchmarks/bench_vis_eval.py --num-videos 14   # scaled down
"""
import argparse
import contextlib
import io
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from pycocotools import mask as mask_utils

YTVIS_STATS = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10',
               'AR100', 'ARs', 'ARm', 'ARl')
OCCLUSION_LABELS = ('no_occlusion', 'slight_occlusion', 'severe_occlusion')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num-videos', type=int, default=140)
    parser.add_argument('--num-frames', type=int, default=60)
    parser.add_argument('--height', type=int, default=360)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--gt-tracks', type=int, default=10)
    parser.add_argument('--pred-tracks', type=int, default=100)
    parser.add_argument('--num-classes', type=int, default=25)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--work-dir', help='where the generated JSON is cached (default: a '
        'folder under the system temp dir named after the workload)')
    parser.add_argument(
        '--skip-mmdet', action='store_true', help='time mdqe_mm only')
    parser.add_argument('--worker', choices=['mdqe_mm', 'mmdet'],
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ----------------------------------------------------------------------
# workload
# ----------------------------------------------------------------------
def _ellipse(cx, cy, rx, ry, rng, num_vertices=16):
    angles = np.linspace(0, 2 * np.pi, num_vertices, endpoint=False)
    wobble = 1 + 0.08 * rng.standard_normal(num_vertices)
    xs = cx + rx * wobble * np.cos(angles)
    ys = cy + ry * wobble * np.sin(angles)
    return np.stack([xs, ys], 1).ravel().tolist()


def _trajectory(rng, args, radius, num_frames, start, stop):
    """Ellipse polygons of one object, None outside [start, stop)."""
    h, w = args.height, args.width
    pos = rng.uniform([radius, radius], [w - radius, h - radius])
    vel = rng.normal(0, 3, 2)
    polys = []
    for t in range(num_frames):
        pos = np.clip(pos + vel, 0, [w, h])
        scale = radius * (1 + 0.1 * np.sin(t / 7))
        polys.append(
            _ellipse(pos[0], pos[1], scale, scale * rng.uniform(0.6, 1.0),
                     rng) if start <= t < stop else None)
    return polys


def _rasterise(polys, args):
    present = [p for p in polys if p is not None]
    rles = iter(
        mask_utils.frPyObjects(present, args.height, args.width)
        if present else [])
    out = []
    for p in polys:
        if p is None:
            out.append(None)
        else:
            rle = next(rles)
            out.append(dict(size=rle['size'], counts=rle['counts'].decode()))
    return out


def _jitter(polys, rng, amount):
    out = []
    for p in polys:
        if p is None:
            out.append(None)
            continue
        arr = np.asarray(p).reshape(-1, 2)
        shift = rng.normal(0, amount, 2)
        scale = 1 + rng.normal(0, amount / 40)
        centre = arr.mean(0)
        out.append(((arr - centre) * scale + centre + shift).ravel().tolist())
    return out


def generate(args):
    rng = np.random.default_rng(args.seed)
    num_frames = args.num_frames
    videos, annotations, results = [], [], []
    ann_id = 1
    # radii for small (< 128^2), medium and large (> 256^2) average areas
    radius_choices = np.array([12, 30, 55, 95, 130, 170])
    for v in range(args.num_videos):
        video_id = v + 1
        videos.append(
            dict(
                id=video_id,
                width=args.width,
                height=args.height,
                length=num_frames,
                file_names=[
                    f'{video_id:04d}/{t:05d}.jpg' for t in range(num_frames)
                ]))
        gt_tracks = []
        num_gt = max(1, int(rng.poisson(args.gt_tracks)))
        # like OVIS, a video shows objects of one to three categories
        video_classes = rng.choice(
            np.arange(1, args.num_classes + 1),
            size=int(rng.integers(1, 4)),
            replace=False)
        for _ in range(num_gt):
            category = int(rng.choice(video_classes))
            radius = float(rng.choice(radius_choices))
            start = int(rng.integers(0, num_frames // 3))
            stop = int(rng.integers(2 * num_frames // 3, num_frames + 1))
            polys = _trajectory(rng, args, radius, num_frames, start, stop)
            segs = _rasterise(polys, args)
            areas = [
                None if s is None else int(mask_utils.area(s)) for s in segs
            ]
            annotations.append(
                dict(
                    id=ann_id,
                    video_id=video_id,
                    category_id=category,
                    iscrowd=0,
                    segmentations=segs,
                    areas=areas,
                    bboxes=[
                        None if s is None else
                        mask_utils.toBbox(s).tolist() for s in segs
                    ],
                    occlusion=[
                        None if s is None else str(
                            rng.choice(OCCLUSION_LABELS, p=[.5, .3, .2]))
                        for s in segs
                    ]))
            ann_id += 1
            gt_tracks.append((category, polys))
        predictions = []
        for category, polys in gt_tracks:
            # a good, a sloppy and a mislabelled copy of every object
            predictions.append((category, _jitter(polys, rng, 2),
                                rng.uniform(0.5, 1.0)))
            sloppy = _jitter(polys, rng, 12)
            predictions.append((category, sloppy, rng.uniform(0.1, 0.7)))
            predictions.append(
                (int(rng.integers(1, args.num_classes + 1)),
                 _jitter(polys, rng, 4), rng.uniform(0.05, 0.6)))
        while len(predictions) < args.pred_tracks:
            # low-score leftovers, mostly labelled with a category of the
            # video as a trained model's are
            polys = _trajectory(rng, args, float(rng.uniform(6, 40)),
                                num_frames, 0, num_frames)
            category = int(
                rng.choice(video_classes) if rng.random() < 0.8 else rng.
                integers(1, args.num_classes + 1))
            predictions.append((category, polys, rng.uniform(0.0, 0.3)))
        for category, polys, score in predictions[:args.pred_tracks]:
            full = [
                p if p is not None else _ellipse(5, 5, 2, 2, rng)
                for p in polys
            ]
            results.append(
                dict(
                    video_id=video_id,
                    category_id=category,
                    score=float(score),
                    segmentations=_rasterise(full, args)))
    categories = [
        dict(id=c, name=f'class_{c}') for c in range(1, args.num_classes + 1)
    ]
    return (dict(videos=videos, annotations=annotations,
                 categories=categories), results)


# ----------------------------------------------------------------------
# workers (one process per evaluator)
# ----------------------------------------------------------------------
def _rss_mb(field: str) -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> bool:
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def worker(args) -> dict:
    with open(osp.join(args.work_dir, 'gt.json')) as f:
        gt = json.load(f)
    with open(osp.join(args.work_dir, 'results.json')) as f:
        results = json.load(f)
    if args.worker == 'mdqe_mm':
        from mdqe_mm.evaluation.functional import evaluate_vis
    else:
        np.float = float  # mmdet 3.3.0's ytviseval.py still uses np.float
        from mmdet.evaluation.functional import YTVIS, YTVISeval
    rss_before = _rss_mb('VmRSS')
    peak_reset = _reset_peak()
    start = time.perf_counter()
    if args.worker == 'mdqe_mm':
        result = evaluate_vis(gt, results)
        stats = [result.stats[n] for n in YTVIS_STATS]
        extra = {
            k: result.stats[k]
            for k in ('APso', 'APmo', 'APho') if k in result.stats
        }
    else:
        with contextlib.redirect_stdout(io.StringIO()):
            ytvis = YTVIS(gt)
            dets = ytvis.loadRes(results)
            evaluator = YTVISeval(ytvis, dets, 'segm')
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        stats = [float(s) for s in evaluator.stats]
        extra = dict()
    seconds = time.perf_counter() - start
    return dict(
        seconds=seconds,
        stats=stats,
        extra=extra,
        rss_before_mb=rss_before,
        peak_mb=_rss_mb('VmHWM'),
        peak_is_eval_only=peak_reset)


def run_worker(args, name: str) -> dict:
    cmd = [
        sys.executable,
        osp.abspath(__file__), '--worker', name, '--work-dir', args.work_dir
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return dict()
    if args.work_dir is None:
        tag = (f'{args.num_videos}v{args.num_frames}f{args.height}x'
               f'{args.width}g{args.gt_tracks}p{args.pred_tracks}'
               f'c{args.num_classes}s{args.seed}')
        args.work_dir = osp.join(tempfile.gettempdir(),
                                 f'mdqe_mm_bench_vis_{tag}')
    os.makedirs(args.work_dir, exist_ok=True)
    gt_file = osp.join(args.work_dir, 'gt.json')
    if not osp.exists(gt_file):
        start = time.perf_counter()
        gt, results = generate(args)
        with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
            json.dump(results, f)
        with open(gt_file, 'w') as f:
            json.dump(gt, f)
        print(f'generated the workload in {time.perf_counter() - start:.1f}'
              f' s -> {args.work_dir}')
    with open(gt_file) as f:
        gt = json.load(f)
    num_gt = len(gt['annotations'])
    size = osp.getsize(osp.join(args.work_dir, 'results.json')) / 2**20
    print(f'workload: {len(gt["videos"])} videos x {args.num_frames} frames '
          f'at {args.height}x{args.width}, {num_gt} GT tracks, '
          f'{len(gt["videos"]) * args.pred_tracks} predicted tracks '
          f'(results.json {size:.0f} MB)')
    del gt

    runs = dict(mdqe_mm=run_worker(args, 'mdqe_mm'))
    if not args.skip_mmdet:
        runs['mmdet'] = run_worker(args, 'mmdet')

    header = ('evaluator', 'eval time (s)',
              'peak RSS during eval, incl. loaded JSON (MB)',
              'RSS before eval (MB)')
    rows = [header]
    for name, run in runs.items():
        rows.append((name if run['peak_is_eval_only'] else name + '*',
                     f'{run["seconds"]:.2f}', f'{run["peak_mb"]:.0f}',
                     f'{run["rss_before_mb"]:.0f}'))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    print()
    for k, row in enumerate(rows):
        print(' | '.join(c.ljust(w) for c, w in zip(row, widths)))
        if k == 0:
            print('-+-'.join('-' * w for w in widths))
    if any(not r['peak_is_eval_only'] for r in runs.values()):
        print('* peak RSS includes loading the JSON (could not reset the '
              'peak counter)')
    print()
    ours = np.array(runs['mdqe_mm']['stats'])
    print('stat   ' + ' '.join(f'{n:>8s}' for n in YTVIS_STATS))
    print('mdqe_mm' + ' '.join(f'{v:8.4f}' for v in ours))
    if 'mmdet' in runs:
        ref = np.array(runs['mmdet']['stats'])
        print('mmdet  ' + ' '.join(f'{v:8.4f}' for v in ref))
        print(f'\nmax |difference| over the 12 YouTube-VIS stats: '
              f'{np.abs(ours - ref).max():.3g}')
        print(f'speed-up: '
              f'{runs["mmdet"]["seconds"] / runs["mdqe_mm"]["seconds"]:.1f}x')
    if runs['mdqe_mm']['extra']:
        print('OVIS occlusion AP (mdqe_mm only): ' + ', '.join(
            f'{k} {v:.4f}' for k, v in runs['mdqe_mm']['extra'].items()))
    return runs


if __name__ == '__main__':
    main()

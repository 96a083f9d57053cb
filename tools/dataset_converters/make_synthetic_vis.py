# Copyright (c) OpenMMLab. All rights reserved.
"""Generate the synthetic occluded-object video data set (OVIS format).

Example::

    python tools/dataset_converters/make_synthetic_vis.py --out data/synth_vis

writes ``data/synth_vis/annotations/{train,valid}.json`` and the JPEG frames
under ``data/synth_vis/{train,valid}/JPEGImages``. See
``mdqe_mm/datasets/synthetic.py`` for the content, the occlusion thresholds
and the difficulty knobs.
"""
import argparse
import json
import time

from mdqe_mm.datasets.synthetic import (generate_synthetic_vis,
                                        occlusion_statistics)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate synthetic occluded-object videos in the OVIS '
        '(YouTube-VIS + per-frame occlusion) format.')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument(
        '--num-videos', type=int, default=36, help='training videos')
    parser.add_argument(
        '--num-valid-videos', type=int, default=10, help='validation videos')
    parser.add_argument(
        '--num-frames', type=int, default=10, help='frames per video')
    parser.add_argument('--height', type=int, default=96)
    parser.add_argument('--width', type=int, default=160)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--num-objects',
        type=int,
        nargs=2,
        default=None,
        metavar=('MIN', 'MAX'),
        help='objects per video (inclusive range)')
    parser.add_argument(
        '--crossing-prob',
        type=float,
        default=None,
        help='share of objects crossing a common point (more occlusion)')
    parser.add_argument(
        '--crossing-time-spread',
        type=float,
        default=None,
        help='smaller values give more simultaneous crossings (more severe '
        'and full occlusions)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    scene = dict()
    if args.num_objects is not None:
        scene['num_objects'] = tuple(args.num_objects)
    if args.crossing_prob is not None:
        scene['crossing_prob'] = args.crossing_prob
    if args.crossing_time_spread is not None:
        scene['crossing_time_spread'] = args.crossing_time_spread
    start = time.time()
    paths = generate_synthetic_vis(
        args.out,
        num_train_videos=args.num_videos,
        num_valid_videos=args.num_valid_videos,
        num_frames=args.num_frames,
        height=args.height,
        width=args.width,
        seed=args.seed,
        **scene)
    print(f'generated in {time.time() - start:.1f} s')
    for split, path in paths.items():
        print(f'{split}: {path}')
        print(json.dumps(occlusion_statistics(path), indent=1))


if __name__ == '__main__':
    main()

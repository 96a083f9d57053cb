# Copyright (c) OpenMMLab. All rights reserved.
"""Generate the synthetic occluded-object video data set (OVIS format).

Example::

    python tools/dataset_converters/make_synthetic_vis.py --out data/synth_vis
    python tools/dataset_converters/make_synthetic_vis.py \
        --preset occlusion_benchmark --out data/synthetic_vis_occlusion

writes ``data/synth_vis/annotations/{train,valid}.json`` and the JPEG frames
under ``data/synth_vis/{train,valid}/JPEGImages``. See
``mdqe_mm/datasets/synthetic.py`` for the content, the occlusion thresholds
and the difficulty knobs.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys
import tempfile
import time

from mdqe_mm.datasets.synthetic import (SYNTHETIC_PRESETS,
                                        generate_synthetic_vis,
                                        occlusion_statistics)

SYNTHETIC_GENERATOR = 'mdqe_mm.datasets.synthetic'
PARTS = ('train', 'valid', 'annotations')


def foreign_content(out: str) -> list:
    """Entries of ``out`` that this tool did not write (empty when ``out``
    is absent, empty, or a synthetic data set made here)."""
    if not osp.isdir(out):
        return [out] if osp.exists(out) else []
    entries = sorted(os.listdir(out))
    foreign = [e for e in entries if e not in PARTS]
    for split in ('train', 'valid'):
        ann = osp.join(out, 'annotations', f'{split}.json')
        if not osp.exists(ann):
            continue
        try:
            with open(ann) as f:
                generator = json.load(f).get('info', {}).get('generator')
        except (OSError, ValueError, AttributeError):
            generator = None
        if generator != SYNTHETIC_GENERATOR:
            foreign.append(ann)
    if entries and not osp.isdir(osp.join(out, 'annotations')):
        foreign.extend(osp.join(out, e) for e in entries if e in PARTS)
    return foreign


def generate_in_place(out: str, **kwargs) -> dict:
    """Generate into a temporary sibling folder, then move each part into
    ``out`` with a rename: a failed run leaves ``out`` as it was."""
    parent = osp.dirname(osp.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.synthetic_vis_new_', dir=parent)
    old = tempfile.mkdtemp(prefix='.synthetic_vis_old_', dir=parent)
    try:
        generate_synthetic_vis(tmp, **kwargs)
        os.makedirs(out, exist_ok=True)
        # annotations last: their presence marks a complete data set
        for part in PARTS:
            target = osp.join(out, part)
            if osp.exists(target):
                os.rename(target, osp.join(old, part))
            os.rename(osp.join(tmp, part), target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return {
        split: osp.join(out, 'annotations', f'{split}.json')
        for split in ('train', 'valid')
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate synthetic occluded-object videos in the OVIS '
        '(YouTube-VIS + per-frame occlusion) format.')
    parser.add_argument(
        '--out',
        required=True,
        help='output folder; it must be new, empty or a synthetic data set '
        'made by this tool')
    parser.add_argument(
        '--force',
        action='store_true',
        help='write into --out even if it holds other files')
    parser.add_argument(
        '--preset',
        choices=sorted(SYNTHETIC_PRESETS),
        default='small',
        help='starting values; the options below override them (small: the '
        'unit tests\' 36 + 10 videos; occlusion_benchmark: the quick '
        'start\'s 240 + 150 videos, see docs/benchmark.md)')
    parser.add_argument('--num-videos', type=int, help='training videos')
    parser.add_argument(
        '--num-valid-videos', type=int, help='validation videos')
    parser.add_argument('--num-frames', type=int, help='frames per video')
    parser.add_argument('--height', type=int)
    parser.add_argument('--width', type=int)
    parser.add_argument('--seed', type=int)
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
    parser.add_argument(
        '--same-category-prob',
        type=float,
        default=None,
        help='chance that a crossing object shares the category of the '
        'first crossing one (look-alikes crossing)')
    parser.add_argument(
        '--occluder-prob',
        type=float,
        default=None,
        help='chance of a large, slow occluder on the meeting point (objects '
        'hidden for several frames that come back)')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    foreign = foreign_content(args.out)
    if foreign and not args.force:
        shown = ', '.join(foreign[:5])
        sys.exit(f'make_synthetic_vis.py: --out {args.out} holds files this '
                 f'tool did not write ({shown}); they could be overwritten. '
                 'Choose a new folder or pass --force')
    scene = dict()
    for key, value in (('num_train_videos', args.num_videos),
                       ('num_valid_videos', args.num_valid_videos),
                       ('num_frames', args.num_frames), ('height',
                                                         args.height),
                       ('width', args.width), ('seed', args.seed)):
        if value is not None:
            scene[key] = value
    if args.num_objects is not None:
        scene['num_objects'] = tuple(args.num_objects)
    if args.crossing_prob is not None:
        scene['crossing_prob'] = args.crossing_prob
    for key in ('crossing_time_spread', 'same_category_prob',
                'occluder_prob'):
        if getattr(args, key) is not None:
            scene[key] = getattr(args, key)
    start = time.time()
    paths = generate_in_place(args.out, preset=args.preset, **scene)
    print(f'generated in {time.time() - start:.1f} s')
    for split, path in paths.items():
        print(f'{split}: {path}')
        print(json.dumps(occlusion_statistics(path), indent=1))


if __name__ == '__main__':
    main()

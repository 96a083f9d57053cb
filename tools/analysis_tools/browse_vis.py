# Copyright (c) OpenMMLab. All rights reserved.
"""Render the ground truth and/or a results file of a YouTube-VIS / OVIS
data set, video by video, to inspect converted data or see where a model
fails.

Examples::

    # the ground truth of a converted data set, one mp4 per video
    python tools/analysis_tools/browse_vis.py \\
        data/synthetic_vis/annotations/valid.json --out work_dirs/browse_gt

    # ground truth (left) next to a model's results (right), as frames
    python tools/analysis_tools/browse_vis.py \\
        data/synthetic_vis/annotations/valid.json \\
        --results work_dirs/results.json --format frames \\
        --out work_dirs/browse_res

Ground-truth labels read ``"id class occ:level"`` (the annotation id and,
for OVIS-style files, the frame's occlusion label none/slight/severe);
results read ``"id class score"``, where id is the entry's ``track_id``
(written by ``tools/demo/video_demo.py``) or its index in the results
list. Every drawn video is listed with the occlusion score of each
ground-truth instance (OVIS rule: the mean of the top half of its frame
scores, no 0, slight 0.25, severe 0.75) and its level as the occlusion AP
bins it (light <= 0.25 < medium <= 0.5 < heavy; the evaluation's bins are
inclusive, so a score of exactly 0.25 or 0.5 also counts in the next bin);
the table is also written to ``OUT/index.json``.

The frames are looked up under ``--img-root`` (the folder that
``file_names`` are relative to); without it the usual layouts next to the
annotation file are tried (``<root>/<split>/JPEGImages``, ``<root>/<split>``,
``<root>/JPEGImages``).
"""
import argparse
import json
import math
import os
import os.path as osp
import shutil
import sys
from typing import Dict, List, Optional

import cv2
import mmcv
import numpy as np
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from tqdm import tqdm

import mdqe_mm  # noqa: F401  (registration)
from mdqe_mm.evaluation.functional import (OCCLUSION_SCORES, VISFormatError,
                                           load_vis_ground_truth,
                                           load_vis_results)
from mdqe_mm.visualization import VISLocalVisualizer

OCCLUSION_LEVELS = (('light', 0.25), ('medium', 0.5), ('heavy', 1.0))


class BrowseError(Exception):
    """A user error: printed as ``error: ...`` with a non-zero exit."""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Render the ground truth and/or results of a '
        'YouTube-VIS/OVIS annotation file per video',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument('annotation', help='YouTube-VIS / OVIS JSON')
    parser.add_argument(
        '--results', help='results JSON in the official format')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument(
        '--img-root', help='folder that the file_names are relative to')
    parser.add_argument(
        '--format',
        choices=['mp4', 'frames'],
        default='mp4',
        help='one mp4 per video (default) or a folder of .jpg frames')
    parser.add_argument(
        '--videos',
        nargs='+',
        help='video ids or names to draw (default: all)')
    parser.add_argument(
        '--max-videos', type=int, help='draw at most this many videos')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.3,
        help='draw results scoring at least this (default: 0.3)')
    parser.add_argument(
        '--no-gt', action='store_true', help='draw the results only')
    parser.add_argument(
        '--fps', type=float, default=6.0, help='mp4 frame rate (default 6)')
    parser.add_argument(
        '--strip-frames',
        type=int,
        default=0,
        help='also write OUT/<video>_strip.png, this many evenly spaced '
        'drawn frames side by side (default: 0, none)')
    args = parser.parse_args(argv)
    if args.no_gt and not args.results:
        parser.error('--no-gt needs --results (nothing would be drawn)')
    if args.strip_frames < 0:
        parser.error('--strip-frames must be >= 0')
    if args.max_videos is not None and args.max_videos < 1:
        parser.error('--max-videos must be >= 1')
    return args


def occlusion_level(score: float) -> str:
    """Bin of an instance occlusion score, as the occlusion AP uses it."""
    for name, upper in OCCLUSION_LEVELS:
        if score <= upper:
            return name
    return OCCLUSION_LEVELS[-1][0]


def instance_occlusion(labels: List[Optional[str]]) -> Optional[float]:
    """OVIS instance occlusion score from per-frame labels (None if none)."""
    scores = sorted(OCCLUSION_SCORES[label] for label in labels
                    if label is not None)
    if not scores:
        return None
    top = scores[-math.ceil(len(scores) / 2):]
    return sum(top) / len(top)


def find_img_root(ann_file: str, first_file: str) -> Optional[str]:
    """The folder holding ``first_file`` among the usual layouts."""
    ann_dir = osp.dirname(osp.abspath(ann_file))
    split = osp.splitext(osp.basename(ann_file))[0]
    for prefix in ('annotations_', 'instances_'):
        if split.startswith(prefix):
            split = split[len(prefix):]
    candidates = []
    for root in (ann_dir, osp.dirname(ann_dir)):
        candidates += [
            osp.join(root, split, 'JPEGImages'),
            osp.join(root, split),
            osp.join(root, 'JPEGImages'), root
        ]
    for candidate in candidates:
        if osp.isfile(osp.join(candidate, first_file)):
            return candidate
    return None


def _video_name(video: dict) -> str:
    names = video.get('file_names') or []
    folder = osp.dirname(names[0]) if names else ''
    return folder.replace(os.sep, '_') or f'video_{video["id"]}'


def _check_out(args: argparse.Namespace, img_root: str) -> None:
    out = osp.realpath(args.out)
    for what, path in (('annotation file', args.annotation),
                       ('results file', args.results), ('image root',
                                                        img_root)):
        if not path:
            continue
        real = osp.realpath(path)
        if out == real or real.startswith(out + os.sep):
            raise BrowseError(f'--out {args.out} is or contains the {what} '
                              f'{path}; choose another folder')
        if osp.isdir(real) and out.startswith(real + os.sep):
            raise BrowseError(f'--out {args.out} is inside the {what} '
                              f'{path}; choose a folder outside it')
    if osp.isfile(args.out):
        raise BrowseError(f'--out {args.out} is a file, not a folder')


def _select(videos: List[dict], wanted: Optional[List[str]],
            max_videos: Optional[int]) -> List[dict]:
    if wanted:
        by_key = {}
        for video in videos:
            by_key[str(video['id'])] = video
            by_key[_video_name(video)] = video
        missing = [w for w in wanted if w not in by_key]
        if missing:
            raise BrowseError(f'videos {missing} are not in the annotation '
                              'file (give ids or folder names)')
        videos = [by_key[w] for w in wanted]
    return videos[:max_videos] if max_videos else videos


def render_video(video: dict,
                 frames_dir: str,
                 gt_frames,
                 pred_tracks,
                 visualizer: VISLocalVisualizer,
                 out: str,
                 fmt: str,
                 fps: float,
                 score_thr: float,
                 strip_frames: int = 0) -> str:
    """Draw one video; returns the written path. With ``strip_frames``,
    also writes ``OUT/<video>_strip.png``: that many evenly spaced drawn
    frames side by side, 4 white pixels apart."""
    name = _video_name(video)
    length = len(video['file_names'])
    picked = {int(round(i))
              for i in np.linspace(0, length - 1, strip_frames)
              } if strip_frames else set()
    strip_parts = []
    target = osp.join(out, name + ('.mp4' if fmt == 'mp4' else ''))
    tmp = osp.join(
        out, f'.{name}.tmp-{os.getpid()}' + ('.mp4' if fmt == 'mp4' else ''))
    writer = None
    try:
        if fmt == 'frames':
            os.makedirs(tmp, exist_ok=True)
        for frame_id, file_name in enumerate(video['file_names']):
            path = osp.join(frames_dir, file_name)
            if not osp.isfile(path):
                raise BrowseError(f'video {video["id"]} ({name}): frame '
                                  f'{path} does not exist')
            image = mmcv.imread(path, channel_order='rgb')
            if image is None:
                raise BrowseError(f'frame {path} could not be read')
            if image.shape[:2] != (video['height'], video['width']):
                raise BrowseError(
                    f'frame {path} is {image.shape[1]}x{image.shape[0]} but '
                    f'the annotation file says {video["width"]}x'
                    f'{video["height"]} for video {video["id"]}')
            sample = DetDataSample()
            if gt_frames is not None:
                sample.gt_instances = gt_frames[frame_id]
            if pred_tracks is not None:
                sample.pred_track_instances = pred_tracks[frame_id]
            visualizer.add_datasample(
                f'{name}/{frame_id}',
                image,
                data_sample=sample,
                pred_score_thr=score_thr)
            drawn = np.ascontiguousarray(visualizer.get_image()[..., ::-1])
            if frame_id in picked:
                strip_parts.append(drawn)
            if fmt == 'mp4':
                if writer is None:
                    writer = cv2.VideoWriter(tmp,
                                             cv2.VideoWriter_fourcc(*'mp4v'),
                                             fps,
                                             (drawn.shape[1], drawn.shape[0]))
                    if not writer.isOpened():
                        raise BrowseError(f'OpenCV cannot write {target}; '
                                          'use --format frames')
                writer.write(drawn)
            else:
                stem = osp.splitext(osp.basename(file_name))[0]
                cv2.imwrite(osp.join(tmp, stem + '.jpg'), drawn)
        if writer is not None:
            writer.release()
            writer = None
        if strip_parts:
            gap = np.full((strip_parts[0].shape[0], 4, 3), 255, np.uint8)
            parts = [q for part in strip_parts for q in (part, gap)][:-1]
            strip_tmp = osp.join(out, f'.{name}_strip.tmp-{os.getpid()}.png')
            cv2.imwrite(strip_tmp, np.concatenate(parts, axis=1))
            os.replace(strip_tmp, osp.join(out, f'{name}_strip.png'))
        if fmt == 'frames' and osp.isdir(target):
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if writer is not None:
            writer.release()
        if osp.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif osp.exists(tmp):
            os.remove(tmp)
    return target


def _gt_frames(tracks, raw_anns: Dict[int, dict], labels: Dict[int, int],
               length: int) -> List[InstanceData]:
    frames = []
    for frame_id in range(length):
        keep = [
            k for k in range(len(tracks))
            if tracks.segmentations[k][frame_id] is not None
        ]
        inst = InstanceData()
        inst.masks = [tracks.segmentations[k][frame_id] for k in keep]
        inst.labels = np.array(
            [labels[int(tracks.category_ids[k])] for k in keep], np.int64)
        inst.instances_ids = np.array([int(tracks.track_ids[k]) for k in keep],
                                      np.int64)
        occ = [(raw_anns[int(tracks.track_ids[k])].get('occlusion')
                or [None] * length)[frame_id] for k in keep]
        if any(o is not None for o in occ):
            inst.occlusion = occ
        frames.append(inst)
    return frames


def _pred_frames(tracks, entries: List[dict], labels: Dict[int, int],
                 length: int) -> List[InstanceData]:
    ids = np.array(
        [int(entries[int(i)].get('track_id', i)) for i in tracks.track_ids],
        np.int64)
    frames = []
    for frame_id in range(length):
        inst = InstanceData()
        inst.masks = [segs[frame_id] for segs in tracks.segmentations]
        inst.scores = np.asarray(tracks.scores, np.float64)
        inst.labels = np.array([labels[int(c)] for c in tracks.category_ids],
                               np.int64)
        inst.track_ids = ids
        frames.append(inst)
    return frames


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        try:
            gt = load_vis_ground_truth(args.annotation)
            with open(args.annotation) as f:
                raw = json.load(f)
            entries = None
            pred = {}
            if args.results:
                with open(args.results) as f:
                    entries = json.load(f)
                pred = load_vis_results(entries, gt)
        except (VISFormatError, OSError, json.JSONDecodeError) as err:
            raise BrowseError(str(err))
        videos = sorted(raw['videos'], key=lambda v: v['id'])
        if not videos:
            raise BrowseError(f'{args.annotation} has no videos')
        draw_gt = not args.no_gt and gt.has_annotations
        if not draw_gt and not args.results:
            raise BrowseError(f'{args.annotation} has no annotations '
                              '(hidden ground truth); give --results')
        img_root = args.img_root or find_img_root(args.annotation,
                                                  videos[0]['file_names'][0])
        if img_root is None or not osp.isdir(img_root):
            raise BrowseError(
                f'cannot find the frames of {args.annotation} (e.g. '
                f'{videos[0]["file_names"][0]}); pass --img-root, the '
                'folder that file_names are relative to')
        _check_out(args, img_root)
        videos = _select(videos, args.videos, args.max_videos)
        os.makedirs(args.out, exist_ok=True)

        labels = {c['id']: k for k, c in enumerate(gt.categories)}
        visualizer = VISLocalVisualizer(name=f'browse_vis_{id(args)}')
        visualizer.dataset_meta = dict(
            classes=[c['name'] for c in gt.categories])
        raw_anns = {a['id']: a for a in (raw.get('annotations') or [])}
        index = []
        for video in tqdm(videos, unit='video', desc='browse'):
            length = len(video['file_names'])
            gt_frames = None
            if draw_gt:
                gt_frames = _gt_frames(gt.tracks[video['id']], raw_anns,
                                       labels, length)
            pred_frames = None
            if args.results:
                tracks = pred.get(video['id'])
                pred_frames = _pred_frames(
                    tracks, entries, labels, length) if tracks is not None \
                    else [InstanceData(masks=[], scores=np.zeros(0),
                                       labels=np.zeros(0, np.int64))
                          for _ in range(length)]
            path = render_video(video, img_root, gt_frames, pred_frames,
                                visualizer, args.out, args.format, args.fps,
                                args.score_thr, args.strip_frames)
            entry = dict(
                video_id=video['id'],
                name=_video_name(video),
                output=path,
                instances=[])
            if gt.has_annotations:
                for ann in gt.tracks[video['id']].track_ids:
                    raw_ann = raw_anns[int(ann)]
                    score = instance_occlusion(raw_ann.get('occlusion') or [])
                    entry['instances'].append(
                        dict(
                            id=int(ann),
                            category=gt.categories[labels[
                                raw_ann['category_id']]]['name'],
                            frames=sum(1 for s in raw_ann['segmentations']
                                       if s),
                            occlusion_score=score,
                            occlusion_level=None
                            if score is None else occlusion_level(score)))
            index.append(entry)
    except BrowseError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1

    for entry in index:
        print(f'{entry["name"]} (video_id {entry["video_id"]}) -> '
              f'{entry["output"]}')
        for inst in entry['instances']:
            occ = '' if inst['occlusion_score'] is None else \
                (f', occlusion {inst["occlusion_score"]:.2f} '
                 f'({inst["occlusion_level"]})')
            print(f'  id {inst["id"]}: {inst["category"]}, '
                  f'{inst["frames"]} frames{occ}')
    index_file = osp.join(args.out, 'index.json')
    with open(index_file + '.tmp', 'w') as f:
        json.dump(index, f, indent=1)
    os.replace(index_file + '.tmp', index_file)
    print(f'{len(index)} videos drawn to {args.out} (index: {index_file})')
    return 0


if __name__ == '__main__':
    sys.exit(main())

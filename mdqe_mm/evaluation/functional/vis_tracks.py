# Copyright (c) OpenMMLab. All rights reserved.
"""Ground truth and predictions of video instance segmentation, parsed once
into per-video collections of tracks and checked on the way in.

Both sides use the YouTube-VIS layout: a track is one object over a whole
video with one category, one score (predictions) and one segmentation or
``None`` per frame. Every per-frame mask is kept as a compressed RLE; areas
are decoded from the RLE strings, never from dense masks.
"""
import json
import math
import numbers
from dataclasses import dataclass, field
from itertools import chain
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from .vis_rle import (VISFormatError, compressed_counts_stats,
                      describe_bad_counts, normalize_rle)

__all__ = [
    'OCCLUSION_SCORES', 'VISVideo', 'VISTracks', 'VISGroundTruth',
    'load_vis_ground_truth', 'load_vis_results'
]

#: OVIS per-frame occlusion labels and their scores (official oviseval.py).
OCCLUSION_SCORES = {
    'no_occlusion': 0.0,
    'slight_occlusion': 0.25,
    'severe_occlusion': 0.75,
}


@dataclass
class VISVideo:
    """Size and length of one video of the annotation file."""
    video_id: int
    height: int
    width: int
    length: int


@dataclass
class VISTracks:
    """The tracks of one video, ground truth or predictions.

    N tracks over the T frames of ``video``.

    Attributes:
        video (VISVideo): The video.
        track_ids (np.ndarray): (N,) int64, annotation id (ground truth) or
            index in the results list (predictions).
        category_ids (np.ndarray): (N,) int64.
        scores (np.ndarray): (N,) float64; ones for ground truth.
        iscrowd (np.ndarray): (N,) bool; False for predictions.
        avg_areas (np.ndarray): (N,) float64, the mean of the non-zero
            per-frame areas (0 if none), as the official API computes it.
        occlusion_scores (np.ndarray, optional): (N,) float64, OVIS occlusion
            score of each ground-truth track; None when not labelled.
        present (np.ndarray): (N, T) bool, whether a frame has a mask.
        frame_areas (np.ndarray): (N, T) int64 mask areas, 0 where absent.
        segmentations (list[list[dict | None]]): N lists of T compressed
            RLEs or None.
    """
    video: VISVideo
    track_ids: np.ndarray
    category_ids: np.ndarray
    scores: np.ndarray
    iscrowd: np.ndarray
    avg_areas: np.ndarray
    present: np.ndarray
    frame_areas: np.ndarray
    segmentations: List[List[Optional[dict]]]
    occlusion_scores: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.track_ids)


@dataclass
class VISGroundTruth:
    """A parsed YouTube-VIS / OVIS annotation file.

    Attributes:
        videos (dict[int, VISVideo]): Every video of the file by id.
        categories (list[dict]): ``{'id', 'name'}`` sorted by id.
        tracks (dict[int, VISTracks]): Ground-truth tracks of every video
            (empty for official val/test files with ``"annotations": null``).
        has_annotations (bool): False when ``annotations`` is null/absent.
        has_occlusion (bool): True when the tracks carry OVIS ``occlusion``
            labels.
        source (str): File name or ``'<dict>'``, for messages.
    """
    videos: Dict[int, VISVideo]
    categories: List[dict]
    tracks: Dict[int, VISTracks] = field(default_factory=dict)
    has_annotations: bool = True
    has_occlusion: bool = False
    source: str = '<dict>'

    @property
    def category_ids(self) -> List[int]:
        return [c['id'] for c in self.categories]


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _load_json(source: Union[str, dict, list]) -> Union[dict, list]:
    """The parsed JSON of a file path (errors name the file), or
    ``source`` itself when it is already parsed."""
    if isinstance(source, str):
        with open(source, 'rb') as f:
            raw = f.read()
        if not raw.strip():
            raise VISFormatError(f'{source}: the file is empty (expected '
                                 'JSON)')
        try:
            return json.loads(raw)
        except UnicodeDecodeError:
            raise VISFormatError(
                f'{source}: not a JSON text file (undecodable bytes)') \
                from None
        except json.JSONDecodeError as err:
            raise VISFormatError(
                f'{source}: not valid JSON: {err.msg} at line {err.lineno}, '
                f'column {err.colno}') from None
    return source


def _is_int_size(size) -> bool:
    """Whether an RLE ``size`` is ``[height, width]`` of two integers."""
    return (isinstance(size, (list, tuple)) and len(size) == 2
            and all(_is_int(s) for s in size))


def _parse_videos(raw: dict, where: str) -> Dict[int, VISVideo]:
    videos = raw.get('videos')
    if not isinstance(videos, list):
        raise VISFormatError(f'{where}: no "videos" list')
    parsed = dict()
    for video in videos:
        video_id = video.get('id') if isinstance(video, dict) else None
        if not _is_int(video_id):
            raise VISFormatError(f'{where}: a video has no integer "id"')
        if video_id in parsed:
            raise VISFormatError(f'{where}: video {video_id} appears twice')
        length = video.get('length')
        file_names = video.get('file_names')
        if length is None and file_names is not None:
            length = len(file_names)
        if (file_names is not None and length is not None
                and len(file_names) != length):
            raise VISFormatError(
                f'{where}: video {video_id} has length {length} but '
                f'{len(file_names)} file_names')
        height, width = video.get('height'), video.get('width')
        if not (_is_int(length) and length > 0 and _is_int(height)
                and height > 0 and _is_int(width) and width > 0):
            raise VISFormatError(
                f'{where}: video {video_id} needs positive integer height, '
                f'width and length (or file_names), got height={height}, '
                f'width={width}, length={length}')
        parsed[int(video_id)] = VISVideo(
            int(video_id), int(height), int(width), int(length))
    return dict(sorted(parsed.items()))


def _parse_categories(raw: dict, where: str) -> List[dict]:
    categories = raw.get('categories')
    if not isinstance(categories, list) or not categories:
        raise VISFormatError(f'{where}: no "categories" list')
    parsed = dict()
    for cat in categories:
        cat_id = cat.get('id') if isinstance(cat, dict) else None
        if not _is_int(cat_id):
            raise VISFormatError(f'{where}: a category has no integer "id"')
        if cat_id in parsed:
            raise VISFormatError(
                f'{where}: category id {cat_id} appears twice')
        parsed[int(cat_id)] = dict(
            id=int(cat_id), name=str(cat.get('name', cat_id)))
    return [parsed[k] for k in sorted(parsed)]


def _frame_masks(video: VISVideo, segmentation_lists: List[list],
                 describe: Callable[[int, int], str],
                 is_present: Callable[[object], bool]):
    """Check and measure every mask of one video's tracks.

    Args:
        video (VISVideo): The video the N tracks belong to.
        segmentation_lists (list[list]): N lists of T segmentations.
        describe (callable): ``(track_index, frame) -> str`` naming a mask.
        is_present (callable): Whether a list entry is a mask.

    Returns:
        tuple: ``present`` (N, T) bool, ``frame_areas`` (N, T) int64 and the
        N lists of T compressed RLEs or None.
    """
    num_tracks, length = len(segmentation_lists), video.length
    height, width = video.height, video.width
    flat = list(chain.from_iterable(segmentation_lists))
    present = np.fromiter(map(is_present, flat), bool, len(flat))
    where_present = np.flatnonzero(present)
    rles = [flat[i] for i in where_present]

    def fail(position: int, reason: str):
        track, frame = divmod(int(where_present[position]), length)
        raise VISFormatError(f'{describe(track, frame)}: {reason}')

    try:
        counts = [r['counts'] for r in rles]
        sizes = [r['size'] for r in rles]
        compressed = all(type(c) is str or type(c) is bytes for c in counts)
    except (TypeError, KeyError, IndexError):
        compressed = False
    if not compressed:
        # slow path: polygons, uncompressed RLEs or malformed entries
        for k, rle in enumerate(rles):
            try:
                rles[k] = normalize_rle(rle, height, width)
            except VISFormatError as err:
                fail(k, str(err))
        counts = [r['counts'] for r in rles]
        sizes = [r['size'] for r in rles]
    try:
        # integer sizes only: numpy would also parse '60' or 60.5
        size_array = np.asarray(sizes)
        if size_array.dtype.kind not in 'iu' or size_array.shape != (len(
                rles), 2):
            size_array = None
    except (TypeError, ValueError):
        size_array = None
    if rles and (size_array is None or
                 (size_array != (height, width)).any()):
        for k, rle in enumerate(rles):
            size = rle['size']
            if not _is_int_size(size):
                fail(
                    k, f'RLE "size" must be [height, width] as two integers,'
                    f' got {size!r}')
            if list(size) != [height, width]:
                fail(
                    k, f'mask size {size} differs from the video size '
                    f'[{height}, {width}]')
    areas, totals, bad = compressed_counts_stats(counts)
    if bad.any() or (totals != height * width).any():
        k = int(np.flatnonzero(bad)[0]) if bad.any() else int(
            np.flatnonzero(totals != height * width)[0])
        fail(k, 'malformed RLE: ' +
             describe_bad_counts(counts[k], height, width))
    frame_areas = np.zeros(len(flat), np.int64)
    frame_areas[where_present] = areas
    if not compressed:
        for k, i in enumerate(where_present):
            flat[i] = rles[k]
    absent = np.flatnonzero(~present)
    if any(flat[i] is not None for i in absent):
        for i in absent:
            flat[i] = None
    segmentations = [
        flat[n * length:(n + 1) * length] for n in range(num_tracks)
    ]
    return (present.reshape(num_tracks, length),
            frame_areas.reshape(num_tracks, length), segmentations)


def _mean_nonzero(frame_areas: np.ndarray) -> np.ndarray:
    """Row means of the non-zero entries, 0 for rows without any."""
    num_nonzero = np.count_nonzero(frame_areas, axis=1)
    # integer sums are exact in float64, so this equals np.mean of the list
    sums = frame_areas.sum(axis=1).astype(np.float64)
    return np.divide(
        sums,
        num_nonzero,
        out=np.zeros(len(frame_areas)),
        where=num_nonzero > 0)


def _occlusion_score(labels, where: str, length: int) -> float:
    if not isinstance(labels, list) or len(labels) != length:
        raise VISFormatError(
            f'{where}: "occlusion" must be a list of {length} labels '
            '(one per frame)')
    scores = []
    for frame, label in enumerate(labels):
        if label is None:
            continue
        if label not in OCCLUSION_SCORES:
            raise VISFormatError(
                f'{where}, frame {frame}: unknown occlusion label {label!r}; '
                f'expected one of {sorted(OCCLUSION_SCORES)} or null')
        scores.append(OCCLUSION_SCORES[label])
    if not scores:
        raise VISFormatError(f'{where}: "occlusion" has no label on any '
                             'frame, so its occlusion level is undefined')
    scores.sort()
    # official rule: mean of the top half (rounded up) of the frame scores
    top = scores[-math.ceil(len(scores) / 2):]
    return sum(top) / len(top)


def _gt_avg_area(ann: dict, computed: float, where: str,
                 length: int) -> float:
    """Average area from the file's ``areas`` when it has them.

    The official API averages the annotation's own ``areas`` field (the
    truthy entries), so the file's numbers are used as they are; masks are
    measured only when the field is missing.
    """
    areas = ann.get('areas')
    if areas is None:
        return computed
    if not isinstance(areas, list) or len(areas) != length:
        raise VISFormatError(
            f'{where}: "areas" must be a list of {length} numbers or nulls')
    kept = [a for a in areas if a]
    if not all(
            isinstance(a, numbers.Real) and not isinstance(a, bool)
            for a in kept):
        raise VISFormatError(f'{where}: "areas" holds a non-number')
    return float(np.array(kept).mean()) if kept else 0.0


def load_vis_ground_truth(
        annotation: Union[str, dict]) -> VISGroundTruth:
    """Parse and check a YouTube-VIS 2019/2021 or OVIS annotation file.

    Polygons and uncompressed RLEs are converted to compressed RLE with
    pycocotools. ``"annotations": null`` (official val/test files) gives a
    ground truth with ``has_annotations=False`` that can still be used to
    check and format predictions.

    Args:
        annotation (str | dict): Path of the JSON file or its content.

    Returns:
        VISGroundTruth: The parsed ground truth.

    Raises:
        VISFormatError: On any inconsistency, naming the video / annotation.
    """
    source = annotation if isinstance(annotation, str) else '<dict>'
    raw = _load_json(annotation)
    if not isinstance(raw, dict):
        raise VISFormatError(f'{source}: not a YouTube-VIS annotation dict')
    videos = _parse_videos(raw, source)
    categories = _parse_categories(raw, source)
    cat_ids = {c['id'] for c in categories}
    annotations = raw.get('annotations')
    if annotations is None:
        return VISGroundTruth(
            videos, categories, has_annotations=False, source=source)
    if not isinstance(annotations, list):
        raise VISFormatError(f'{source}: "annotations" must be a list')

    per_video = {video_id: [] for video_id in videos}
    seen_ids = set()
    with_occlusion = []
    for ann in annotations:
        if not isinstance(ann, dict):
            raise VISFormatError(f'{source}: an annotation is not a dict')
        ann_id, video_id = ann.get('id'), ann.get('video_id')
        where = f'{source}: annotation id={ann_id} (video_id={video_id})'
        if not _is_int(ann_id) or ann_id in seen_ids:
            raise VISFormatError(f'{where}: "id" must be a unique integer')
        seen_ids.add(ann_id)
        if video_id not in videos:
            raise VISFormatError(f'{where}: unknown video_id')
        if ann.get('category_id') not in cat_ids:
            raise VISFormatError(
                f'{where}: unknown category_id {ann.get("category_id")}')
        length = videos[video_id].length
        segs = ann.get('segmentations')
        if not isinstance(segs, list) or len(segs) != length:
            got = len(segs) if isinstance(segs, list) else type(segs).__name__
            raise VISFormatError(
                f'{where}: "segmentations" must list one entry per frame; '
                f'the video has {length} frames, got {got}')
        with_occlusion.append(ann.get('occlusion') is not None)
        per_video[video_id].append(ann)
    has_occlusion = any(with_occlusion)
    if has_occlusion and not all(with_occlusion):
        missing = next(
            a for a, has in zip(annotations, with_occlusion) if not has)
        raise VISFormatError(
            f'{source}: annotation id={missing["id"]} has no "occlusion" '
            'labels while others have; occlusion AP needs them on every '
            'annotation')

    tracks = dict()
    for video_id, anns in per_video.items():
        video = videos[video_id]

        def describe(track: int, frame: int, anns=anns) -> str:
            return (f'{source}: annotation id={anns[track]["id"]} '
                    f'(video_id={anns[track]["video_id"]}), frame {frame}')

        # the official API treats every falsy entry ([] / {} / null) as absent
        present, frame_areas, segs = _frame_masks(
            video, [a['segmentations'] for a in anns], describe, bool)
        mask_avg = _mean_nonzero(frame_areas)
        wheres = [
            f'{source}: annotation id={a["id"]} (video_id={video_id})'
            for a in anns
        ]
        avg_areas = np.array([
            _gt_avg_area(a, float(m), w, video.length)
            for a, m, w in zip(anns, mask_avg, wheres)
        ], np.float64)
        occlusion = None
        if has_occlusion:
            occlusion = np.array([
                _occlusion_score(a['occlusion'], w, video.length)
                for a, w in zip(anns, wheres)
            ], np.float64)
        tracks[video_id] = VISTracks(
            video=video,
            track_ids=np.array([a['id'] for a in anns], np.int64),
            category_ids=np.array([a['category_id'] for a in anns],
                                  np.int64),
            scores=np.ones(len(anns)),
            iscrowd=np.array([bool(a.get('iscrowd', 0)) for a in anns],
                             bool),
            avg_areas=avg_areas,
            present=present,
            frame_areas=frame_areas,
            segmentations=segs,
            occlusion_scores=occlusion)
    return VISGroundTruth(
        videos,
        categories,
        tracks,
        has_annotations=True,
        has_occlusion=has_occlusion,
        source=source)


def load_vis_results(
        results: Union[str, Sequence[dict]],
        ground_truth: VISGroundTruth,
        video_ids: Optional[Sequence[int]] = None) -> Dict[int, VISTracks]:
    """Parse and check predictions in the official results format.

    Args:
        results (str | list[dict]): Path of a results JSON or its content: a
            list of ``{video_id, category_id, score, segmentations}`` with one
            compressed RLE (or uncompressed RLE, or None) per frame.
        ground_truth (VISGroundTruth): Supplies the videos and categories.
        video_ids (Sequence[int], optional): The videos being evaluated;
            a prediction for another video is an error. Defaults to all
            videos of the ground truth.

    Returns:
        dict[int, VISTracks]: The predictions of each video that has any.
        An empty list is valid and gives an empty dict.

    Raises:
        VISFormatError: For an unknown video or category, a bad score, a
            segmentation list whose length is not the video's frame count, a
            malformed RLE or a mask of the wrong size. The message names the
            result entry and the frame.
    """
    source = results if isinstance(results, str) else '<results>'
    entries = _load_json(results)
    if not isinstance(entries, list):
        raise VISFormatError(
            f'{source}: results must be a list of {{video_id, category_id, '
            f'score, segmentations}} dicts, got {type(entries).__name__}')
    allowed = set(ground_truth.videos if video_ids is None else video_ids)
    cat_ids = set(ground_truth.category_ids)
    per_video = dict()
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise VISFormatError(f'{source}: result #{index} is not a dict')
        video_id = entry.get('video_id')
        where = (f'{source}: result #{index} (video_id={video_id}, '
                 f'category_id={entry.get("category_id")})')
        if video_id not in ground_truth.videos:
            raise VISFormatError(f'{where}: video_id is not in the ground '
                                 f'truth {ground_truth.source}')
        if video_id not in allowed:
            raise VISFormatError(
                f'{where}: video_id is not among the evaluated videos')
        if entry.get('category_id') not in cat_ids:
            raise VISFormatError(
                f'{where}: unknown category_id; the ground truth has '
                f'{sorted(cat_ids)}')
        score = entry.get('score')
        if (not isinstance(score, numbers.Real) or isinstance(score, bool)
                or not math.isfinite(score)):
            raise VISFormatError(
                f'{where}: score must be a finite number, got {score!r}')
        segs = entry.get('segmentations')
        length = ground_truth.videos[video_id].length
        if not isinstance(segs, list) or len(segs) != length:
            got = len(segs) if isinstance(segs, list) else type(segs).__name__
            raise VISFormatError(
                f'{where}: "segmentations" must have one entry per frame; '
                f'the video has {length} frames, got {got}')
        per_video.setdefault(video_id, []).append(index)

    tracks = dict()
    for video_id in sorted(per_video):
        indices = per_video[video_id]
        video = ground_truth.videos[video_id]

        def describe(track: int, frame: int, indices=indices) -> str:
            entry = entries[indices[track]]
            return (f'{source}: result #{indices[track]} (video_id='
                    f'{entry["video_id"]}, category_id='
                    f'{entry["category_id"]}), frame {frame}')

        present, frame_areas, segs = _frame_masks(
            video, [entries[i]['segmentations'] for i in indices], describe,
            lambda s: s is not None)
        tracks[video_id] = VISTracks(
            video=video,
            track_ids=np.array(indices, np.int64),
            category_ids=np.array(
                [entries[i]['category_id'] for i in indices], np.int64),
            scores=np.array([float(entries[i]['score']) for i in indices],
                            np.float64),
            iscrowd=np.zeros(len(indices), bool),
            avg_areas=_mean_nonzero(frame_areas),
            present=present,
            frame_areas=frame_areas,
            segmentations=segs)
    return tracks

# Copyright (c) OpenMMLab. All rights reserved.
"""Synthetic occluded-object videos in the OVIS / YouTube-VIS format.

The real benchmarks cannot be downloaded on every machine, so this module
draws small videos whose objects move, overlap in depth order, enter and
leave the frame, and sometimes vanish completely behind a larger object.
It is the embedded default data set of the quick start and of the tests.

Content
    Four categories (:data:`SYNTHETIC_VIS_CLASSES`), each with its own shape,
    colour and texture, drawn in the object's own rotating frame so that the
    texture moves with the object:

    ============  ==========  ====================================
    category      colour      texture
    ============  ==========  ====================================
    ``disc``      red         concentric rings
    ``square``    blue        checkerboard
    ``triangle``  green       stripes
    ``cross``     yellow      dots
    ============  ==========  ====================================

    Every instance has its own size, a jittered colour, a slow spin and a
    constant velocity. The background is a mildly textured low-contrast
    pattern with sensor noise. Objects are painted far to near; nearer
    objects tend to be the larger ones (depth = size times a random factor),
    so small objects can disappear fully behind big ones.

Annotations
    The mask of an object in a frame is its *visible* part: its shape inside
    the image minus the shapes of all nearer objects. A frame where nothing
    of it is visible (fully hidden, or outside the image) has ``null``
    segmentation, box, area and occlusion. The per-frame ``occlusion`` label
    is computed from the occluded fraction ``o = 1 - visible / in_image``,
    where ``in_image`` is the area of the object's whole shape inside the
    image (leaving the image is truncation, not occlusion):

    * ``o < 0.05``         -> ``'no_occlusion'``
    * ``0.05 <= o <= 0.5`` -> ``'slight_occlusion'``
    * ``o > 0.5``          -> ``'severe_occlusion'``

    (:data:`OCCLUSION_THRESHOLDS`; OVIS scores these 0, 0.25 and 0.75.)

Difficulty
    The video-level knobs of :func:`make_synthetic_video` (all accepted by
    :func:`generate_synthetic_vis` and the CLI
    ``tools/dataset_converters/make_synthetic_vis.py``):

    * ``crossing_prob``: share of objects whose path runs through one common
      meeting point of the video. It is the main control of the share of
      occluded and heavily occluded instances (0 gives mostly free motion,
      1 makes every object cross the others).
    * ``crossing_time_spread``: fraction of the video within which the
      crossing objects reach the meeting point. Smaller values make them meet
      at the same time, which raises the share of severe and full
      occlusions.
    * ``size_range``: object scale as a fraction of ``min(H, W)``; larger
      objects overlap more and hide the small ones completely more often.
    * ``num_objects``: inclusive range of objects per video.
    * ``enter_prob`` / ``leave_prob``: share of objects that enter or leave
      through an image border during the video.
    * ``speed_range``: speed as a fraction of ``min(H, W)`` per frame.
    * ``same_category_prob``: chance that a crossing object takes the
      category of the video's first crossing object, so that look-alikes
      cross and only their motion tells them apart. Defaults to 0.
    * ``occluder_prob``: chance that a video also gets a large, slow object
      in front of everything (``occluder_size`` of ``min(H, W)``) that sits
      on the meeting point at the meeting time: crossing objects pass
      behind it, vanish for several frames and come back. Defaults to 0.

    :func:`occlusion_statistics` reports the resulting shares of occlusion
    levels and of fully hidden frames for a generated file.

Everything is deterministic for a given seed.
"""
import json
import math
import os
import os.path as osp
import shutil
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import pycocotools.mask as mask_utils

from .vis_classes import SYNTHETIC_VIS_CLASSES

__all__ = [
    'SYNTHETIC_VIS_CLASSES', 'OCCLUSION_THRESHOLDS', 'SyntheticObject',
    'occlusion_label', 'render_video', 'make_synthetic_video',
    'video_annotations', 'generate_synthetic_vis', 'ensure_synthetic_vis',
    'occlusion_statistics', 'SYNTHETIC_PRESETS', 'resolve_synthetic_args'
]

OCCLUSION_THRESHOLDS: Tuple[float, float] = (0.05, 0.5)

# Base colours (BGR, as written by OpenCV) of the categories.
_CATEGORY_COLORS = (
    (50, 50, 210),  # disc: red
    (200, 90, 40),  # square: blue
    (60, 180, 60),  # triangle: green
    (40, 200, 230),  # cross: yellow
)

_DEFAULT_SCENE = dict(
    num_objects=(2, 4),
    size_range=(0.12, 0.24),
    speed_range=(0.015, 0.045),
    crossing_prob=0.6,
    crossing_time_spread=0.35,
    enter_prob=0.15,
    leave_prob=0.15,
    same_category_prob=0.0,
    occluder_prob=0.0,
    occluder_size=(0.3, 0.4))

#: Named starting points of :func:`generate_synthetic_vis`.
#:
#: * ``'small'``: the unit tests' set, 36 train + 10 valid videos of 10
#:   frames (31 valid tracks, 7 of them heavily occluded).
#: * ``'occlusion_benchmark'``: the quick start's and the ablations' set,
#:   240 train + 150 valid videos of 12 frames. Its valid split is large
#:   enough for seed-to-seed AP differences to mean something, and over a
#:   quarter of its 452 valid tracks are heavily occluded: larger objects,
#:   half of them crossing one meeting point at nearly the same time, half
#:   of the crossers sharing a category, slower motion so that a hidden
#:   object stays hidden for several frames before it comes back.
#:   Statistics: docs/benchmark.md.
SYNTHETIC_PRESETS: Dict[str, dict] = dict(
    small=dict(
        num_train_videos=36,
        num_valid_videos=10,
        num_frames=10,
        height=96,
        width=160,
        seed=0),
    occlusion_benchmark=dict(
        num_train_videos=240,
        num_valid_videos=150,
        num_frames=12,
        height=96,
        width=160,
        seed=0,
        num_objects=(2, 4),
        size_range=(0.16, 0.3),
        speed_range=(0.01, 0.035),
        crossing_prob=0.5,
        crossing_time_spread=0.4,
        same_category_prob=0.5))


def occlusion_label(occluded_fraction: float) -> str:
    """OVIS occlusion label of an object that is partly visible.

    Args:
        occluded_fraction (float): ``1 - visible / in_image`` in [0, 1).

    Returns:
        str: ``'no_occlusion'``, ``'slight_occlusion'`` or
        ``'severe_occlusion'`` (thresholds :data:`OCCLUSION_THRESHOLDS`).
    """
    low, high = OCCLUSION_THRESHOLDS
    if occluded_fraction < low:
        return 'no_occlusion'
    if occluded_fraction <= high:
        return 'slight_occlusion'
    return 'severe_occlusion'


@dataclass
class SyntheticObject:
    """One moving object of a synthetic video.

    Args:
        category (int): Index into :data:`SYNTHETIC_VIS_CLASSES`.
        size (float): Scale in pixels (the radius of a disc).
        anchor (tuple[float, float]): Centre (x, y) at ``anchor_time``.
        anchor_time (float): Frame time of ``anchor``.
        velocity (tuple[float, float]): Pixels per frame (x, y).
        depth (float): Larger is nearer the camera.
        color (tuple[int, int, int]): Base colour, BGR.
        angle (float): Rotation at frame 0, radians.
        spin (float): Rotation per frame, radians.
    """
    category: int
    size: float
    anchor: Tuple[float, float]
    anchor_time: float
    velocity: Tuple[float, float]
    depth: float
    color: Tuple[int, int, int]
    angle: float = 0.0
    spin: float = 0.0

    def center(self, t: float) -> Tuple[float, float]:
        """Centre (x, y) at frame ``t``."""
        dt = t - self.anchor_time
        return (self.anchor[0] + self.velocity[0] * dt,
                self.anchor[1] + self.velocity[1] * dt)

    def window(self, t: float, height: int, width: int) -> Tuple[slice, slice]:
        """Rows and columns that can hold the shape at frame ``t`` (every
        shape lies within 1.25 * size of its centre)."""
        cx, cy = self.center(t)
        reach = 1.25 * self.size + 1
        rows = slice(
            int(np.clip(math.floor(cy - reach), 0, height)),
            int(np.clip(math.ceil(cy + reach) + 1, 0, height)))
        cols = slice(
            int(np.clip(math.floor(cx - reach), 0, width)),
            int(np.clip(math.ceil(cx + reach) + 1, 0, width)))
        return rows, cols

    def local_coords(self, t: float, rows: slice,
                     cols: slice) -> Tuple[np.ndarray, np.ndarray]:
        """Pixel-centre coordinates in the object frame, in units of size.

        Returns:
            tuple[np.ndarray, np.ndarray]: u, v over the given pixel window.
        """
        cx, cy = self.center(t)
        ys, xs = np.mgrid[rows, cols].astype(np.float64)
        dx, dy = xs - cx, ys - cy
        angle = self.angle + self.spin * t
        cos, sin = math.cos(angle), math.sin(angle)
        u = (cos * dx + sin * dy) / self.size
        v = (-sin * dx + cos * dy) / self.size
        return u, v

    def shape_mask(self, t: float, height: int, width: int) -> np.ndarray:
        """Whole shape inside the image at frame ``t``, bool (H, W)."""
        mask = np.zeros((height, width), dtype=bool)
        rows, cols = self.window(t, height, width)
        if rows.stop > rows.start and cols.stop > cols.start:
            u, v = self.local_coords(t, rows, cols)
            mask[rows, cols] = _shape_predicate(self.category, u, v)
        return mask

    def texture(self, t: float, height: int, width: int) -> np.ndarray:
        """Object appearance, float (H, W, 3) (zero outside its window)."""
        out = np.zeros((height, width, 3))
        rows, cols = self.window(t, height, width)
        if rows.stop > rows.start and cols.stop > cols.start:
            u, v = self.local_coords(t, rows, cols)
            shade = _texture_shade(self.category, u, v)
            out[rows, cols] = shade[..., None] * np.asarray(
                self.color, dtype=np.float64)
        return out


def _shape_predicate(category: int, u: np.ndarray,
                     v: np.ndarray) -> np.ndarray:
    if category == 0:  # disc
        return u * u + v * v <= 1.0
    if category == 1:  # square
        return (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)
    if category == 2:  # equilateral triangle, inradius 0.6
        inside = np.ones(u.shape, dtype=bool)
        for k in range(3):
            theta = math.pi / 2 + 2 * math.pi * k / 3
            inside &= u * math.cos(theta) + v * math.sin(theta) <= 0.6
        return inside
    if category == 3:  # cross
        return (((np.abs(u) <= 0.3) & (np.abs(v) <= 0.95)) |
                ((np.abs(v) <= 0.3) & (np.abs(u) <= 0.95)))
    raise ValueError(f'unknown synthetic category {category}')


def _texture_shade(category: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    if category == 0:  # rings
        return 0.7 + 0.3 * np.cos(2 * math.pi * 2.5 * np.sqrt(u * u + v * v))
    if category == 1:  # checkerboard
        checker = (np.floor(u * 2.5) + np.floor(v * 2.5)) % 2
        return np.where(checker > 0, 0.6, 1.0)
    if category == 2:  # stripes
        return 0.7 + 0.3 * np.cos(2 * math.pi * 2.0 * u)
    if category == 3:  # dots
        dots = np.sin(u * 9.0) * np.sin(v * 9.0) > 0.55
        return np.where(dots, 0.55, 1.0)
    raise ValueError(f'unknown synthetic category {category}')


def _background(rng: np.random.Generator, height: int,
                width: int) -> np.ndarray:
    """Mildly textured low-contrast background, float (H, W, 3)."""
    base = rng.uniform(95, 165) + rng.uniform(-15, 15, size=3)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    pattern = np.zeros((height, width))
    for _ in range(3):
        freq = rng.uniform(0.02, 0.12, size=2)
        phase = rng.uniform(0, 2 * math.pi)
        pattern += np.sin(xs * freq[0] + ys * freq[1] + phase)
    return base[None, None, :] + 7.0 * pattern[..., None]


def render_video(objects: Sequence[SyntheticObject],
                 num_frames: int,
                 height: int,
                 width: int,
                 background: Optional[np.ndarray] = None,
                 rng: Optional[np.random.Generator] = None) -> dict:
    """Paint objects far to near and compute their visible masks.

    Args:
        objects (Sequence[SyntheticObject]): The N objects.
        num_frames (int): T.
        height (int): H.
        width (int): W.
        background (np.ndarray, optional): float (H, W, 3); flat grey if None.
        rng (np.random.Generator, optional): Adds sensor noise when given.

    Returns:
        dict: ``frames`` uint8 (T, H, W, 3) BGR, ``visible`` bool
        (N, T, H, W) and ``in_image_areas`` int (N, T), the area of each whole
        shape inside the image.
    """
    if background is None:
        background = np.full((height, width, 3), 128.0)
    order = sorted(range(len(objects)), key=lambda k: objects[k].depth)
    frames = np.zeros((num_frames, height, width, 3), dtype=np.uint8)
    visible = np.zeros((len(objects), num_frames, height, width), dtype=bool)
    in_image_areas = np.zeros((len(objects), num_frames), dtype=np.int64)
    for t in range(num_frames):
        canvas = background.copy()
        covered = np.zeros((height, width), dtype=bool)
        # near to far: what is already covered hides the farther objects
        for k in reversed(order):
            shape = objects[k].shape_mask(t, height, width)
            in_image_areas[k, t] = shape.sum()
            visible[k, t] = shape & ~covered
            covered |= shape
        for k in order:
            paint = visible[k, t]
            if paint.any():
                canvas[paint] = objects[k].texture(t, height, width)[paint]
        if rng is not None:
            canvas += rng.normal(0.0, 3.0, size=canvas.shape)
        frames[t] = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return dict(frames=frames, visible=visible, in_image_areas=in_image_areas)


def _sample_objects(
        rng: np.random.Generator, num_frames: int, height: int, width: int,
        num_objects: Tuple[int, int], size_range: Tuple[float, float],
        speed_range: Tuple[float, float], crossing_prob: float,
        crossing_time_spread: float, enter_prob: float, leave_prob: float,
        same_category_prob: float, occluder_prob: float,
        occluder_size: Tuple[float, float]) -> List[SyntheticObject]:
    short = min(height, width)
    last = max(num_frames - 1, 1)
    meet = np.array([width, height]) * rng.uniform(0.35, 0.65, size=2)
    meet_time = rng.uniform(0.3, 0.7) * last
    free_prob = max(0.0, 1.0 - crossing_prob - enter_prob - leave_prob)
    mode_probs = np.array([crossing_prob, enter_prob, leave_prob, free_prob])
    mode_probs = mode_probs / mode_probs.sum()
    count = int(rng.integers(num_objects[0], num_objects[1] + 1))
    objects = []
    crossing_category = None
    for _ in range(count):
        category = int(rng.integers(len(SYNTHETIC_VIS_CLASSES)))
        size = rng.uniform(*size_range) * short
        speed = rng.uniform(*speed_range) * short
        direction = rng.uniform(0, 2 * math.pi)
        mode = rng.choice(4, p=mode_probs)
        if mode == 0 and same_category_prob > 0:
            # crossings of look-alikes: only their motion (not the class)
            # tells the two apart; no extra draw when the knob is 0, so
            # older data sets are reproduced exactly
            if crossing_category is None:
                crossing_category = category
            elif rng.uniform() < same_category_prob:
                category = crossing_category
        if mode == 0:  # crosses the meeting point
            anchor = meet + rng.normal(0, 0.04 * short, size=2)
            anchor_time = meet_time + rng.uniform(
                -0.5, 0.5) * crossing_time_spread * last
        elif mode in (1, 2):  # enters / leaves through a border
            side = int(rng.integers(4))
            along = rng.uniform(0.2, 0.8)
            anchor = [(0.0, along * height), (width - 1.0, along * height),
                      (along * width, 0.0),
                      (along * width, height - 1.0)][side]
            inward = [0.0, math.pi, math.pi / 2, -math.pi / 2][side]
            deviation = rng.uniform(-math.pi / 4, math.pi / 4)
            direction = inward + deviation
            if mode == 1:
                anchor_time = rng.uniform(0.3, 0.6) * last
                outside_time = anchor_time
            else:
                direction += math.pi
                anchor_time = rng.uniform(0.4, 0.7) * last
                outside_time = last - anchor_time
            # fast enough to be fully outside at the first / last frame
            speed = max(speed,
                        1.3 * size / (outside_time * math.cos(deviation)))
            anchor = np.asarray(anchor)
        else:  # free motion inside the image
            anchor = np.array([
                rng.uniform(size, width - size),
                rng.uniform(size, height - size)
            ])
            anchor_time = 0.5 * last
        jitter = rng.integers(-25, 26, size=3)
        color = tuple(
            int(np.clip(c + j, 0, 255))
            for c, j in zip(_CATEGORY_COLORS[category], jitter))
        objects.append(
            SyntheticObject(
                category=category,
                size=float(size),
                anchor=(float(anchor[0]), float(anchor[1])),
                anchor_time=float(anchor_time),
                velocity=(float(speed * math.cos(direction)),
                          float(speed * math.sin(direction))),
                depth=float(size * rng.uniform(0.7, 1.3)),
                color=color,
                angle=float(rng.uniform(0, 2 * math.pi)),
                spin=float(rng.uniform(-0.08, 0.08))))
    if occluder_prob > 0 and rng.uniform() < occluder_prob:
        # drawn only when the knob is on: older data sets are reproduced
        size = rng.uniform(*occluder_size) * short
        speed = 0.3 * rng.uniform(*speed_range) * short
        direction = rng.uniform(0, 2 * math.pi)
        category = int(rng.integers(len(SYNTHETIC_VIS_CLASSES)))
        jitter = rng.integers(-25, 26, size=3)
        nearest = max([obj.depth for obj in objects], default=0.0)
        objects.append(
            SyntheticObject(
                category=category,
                size=float(size),
                anchor=(float(meet[0]), float(meet[1])),
                anchor_time=float(meet_time),
                velocity=(float(speed * math.cos(direction)),
                          float(speed * math.sin(direction))),
                depth=float(max(nearest, size) * 1.5),
                color=tuple(
                    int(np.clip(c + j, 0, 255))
                    for c, j in zip(_CATEGORY_COLORS[category], jitter)),
                angle=float(rng.uniform(0, 2 * math.pi)),
                spin=float(rng.uniform(-0.03, 0.03))))
    return objects


def make_synthetic_video(rng: np.random.Generator,
                         num_frames: int = 10,
                         height: int = 96,
                         width: int = 160,
                         **scene_kwargs) -> dict:
    """Sample and render one video.

    Args:
        rng (np.random.Generator): Source of randomness.
        num_frames (int): T. Defaults to 10.
        height (int): H. Defaults to 96.
        width (int): W. Defaults to 160.
        **scene_kwargs: Difficulty knobs (see the module docstring):
            ``num_objects``, ``size_range``, ``speed_range``,
            ``crossing_prob``, ``crossing_time_spread``, ``enter_prob``,
            ``leave_prob``.

    Returns:
        dict: ``objects`` (the N :class:`SyntheticObject` that are visible in
        at least one frame), ``frames`` uint8 (T, H, W, 3) BGR,
        ``visible`` bool (N, T, H, W) and ``in_image_areas`` (N, T).
    """
    unknown = set(scene_kwargs) - set(_DEFAULT_SCENE)
    if unknown:
        raise TypeError(f'unknown scene arguments {sorted(unknown)}; '
                        f'expected some of {sorted(_DEFAULT_SCENE)}')
    cfg = dict(_DEFAULT_SCENE, **scene_kwargs)
    if not 1 <= cfg['num_objects'][0] <= cfg['num_objects'][1]:
        raise ValueError(f'bad num_objects range {cfg["num_objects"]}')
    for _ in range(100):
        objects = _sample_objects(rng, num_frames, height, width, **cfg)
        background = _background(rng, height, width)
        video = render_video(objects, num_frames, height, width, background,
                             rng)
        seen = video['visible'].any(axis=(1, 2, 3))
        if seen.any():
            video['objects'] = [obj for obj, s in zip(objects, seen) if s]
            video['visible'] = video['visible'][seen]
            video['in_image_areas'] = video['in_image_areas'][seen]
            return video
    raise RuntimeError('could not place any visible object; check the scene '
                       'arguments')


def _frame_annotation(mask: np.ndarray, in_image_area: int) -> tuple:
    area = int(mask.sum())
    if area == 0:
        return None, None, None, None
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    ys, xs = np.nonzero(mask)
    bbox = [
        float(xs.min()),
        float(ys.min()),
        float(xs.max() - xs.min() + 1),
        float(ys.max() - ys.min() + 1)
    ]
    occlusion = occlusion_label(1.0 - area / in_image_area)
    return rle, bbox, area, occlusion


def video_annotations(video: dict) -> List[dict]:
    """Per-object annotation fields of a rendered video.

    Args:
        video (dict): Output of :func:`render_video` or
            :func:`make_synthetic_video` (``visible``, ``in_image_areas``).

    Returns:
        list[dict]: For each object, ``segmentations`` (compressed RLE or
        None), ``bboxes`` (xywh or None), ``areas`` and ``occlusion`` (or
        None), one entry per frame.
    """
    annotations = []
    for masks, areas in zip(video['visible'], video['in_image_areas']):
        per_frame = [_frame_annotation(m, a) for m, a in zip(masks, areas)]
        segms, bboxes, mask_areas, occlusion = map(list, zip(*per_frame))
        annotations.append(
            dict(
                segmentations=segms,
                bboxes=bboxes,
                areas=mask_areas,
                occlusion=occlusion))
    return annotations


def _write_split(out_dir: str, split: str, num_videos: int, num_frames: int,
                 height: int, width: int, rng: np.random.Generator, info: dict,
                 scene_kwargs: dict) -> str:
    img_root = osp.join(out_dir, split, 'JPEGImages')
    videos, annotations = [], []
    for video_index in range(num_videos):
        video_id = video_index + 1
        name = f'vid_{video_index:04d}'
        os.makedirs(osp.join(img_root, name), exist_ok=True)
        video = make_synthetic_video(rng, num_frames, height, width,
                                     **scene_kwargs)
        file_names = []
        for t, frame in enumerate(video['frames']):
            file_name = f'{name}/{t:05d}.jpg'
            cv2.imwrite(
                osp.join(img_root, file_name), frame,
                [cv2.IMWRITE_JPEG_QUALITY, 95])
            file_names.append(file_name)
        videos.append(
            dict(
                id=video_id,
                width=width,
                height=height,
                length=num_frames,
                file_names=file_names))
        for obj, fields in zip(video['objects'], video_annotations(video)):
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    video_id=video_id,
                    category_id=obj.category + 1,
                    iscrowd=0,
                    height=height,
                    width=width,
                    length=1,
                    **fields))
    data = dict(
        info=info,
        licenses=[],
        videos=videos,
        annotations=annotations,
        categories=[
            dict(id=i + 1, name=name, supercategory='shape')
            for i, name in enumerate(SYNTHETIC_VIS_CLASSES)
        ])
    ann_path = osp.join(out_dir, 'annotations', f'{split}.json')
    tmp_path = f'{ann_path}.{os.getpid()}.tmp'
    with open(tmp_path, 'w') as f:
        json.dump(data, f)
    # the annotation file appears last and atomically: its presence means
    # the split is complete (see ensure_synthetic_vis)
    os.replace(tmp_path, ann_path)
    return ann_path


def resolve_synthetic_args(preset: Optional[str] = None, **kwargs) -> dict:
    """Full generator arguments: a preset's values, overridden by kwargs.

    Args:
        preset (str, optional): A key of :data:`SYNTHETIC_PRESETS`; None is
            the ``'small'`` preset.
        **kwargs: Arguments of :func:`generate_synthetic_vis` and scene
            knobs (see the module docstring).

    Returns:
        dict: ``preset`` plus every split, size and scene argument.
    """
    name = 'small' if preset is None else preset
    if name not in SYNTHETIC_PRESETS:
        raise ValueError(f'unknown synthetic preset {preset!r}; choose one '
                         f'of {sorted(SYNTHETIC_PRESETS)}')
    allowed = set(SYNTHETIC_PRESETS['small']) | set(_DEFAULT_SCENE)
    unknown = set(kwargs) - allowed
    if unknown:
        raise TypeError(f'unknown synthetic data arguments {sorted(unknown)};'
                        f' expected some of {sorted(allowed)}')
    args = dict(SYNTHETIC_PRESETS['small'])
    args.update(_DEFAULT_SCENE)
    args.update(SYNTHETIC_PRESETS[name])
    args.update(kwargs)
    for key in ('num_objects', 'size_range', 'speed_range', 'occluder_size'):
        args[key] = tuple(args[key])
    args['preset'] = name
    return args


def generate_synthetic_vis(out_dir: str,
                           preset: Optional[str] = None,
                           **kwargs) -> Dict[str, str]:
    """Write a synthetic OVIS-format data set.

    Layout::

        out_dir/annotations/{train,valid}.json
        out_dir/{train,valid}/JPEGImages/vid_XXXX/NNNNN.jpg

    ``file_names`` are relative to ``out_dir/<split>/JPEGImages``, as in
    YouTube-VIS; both splits carry annotations (with ``occlusion``).

    Args:
        out_dir (str): Output folder.
        preset (str, optional): Starting values from
            :data:`SYNTHETIC_PRESETS`; None is ``'small'`` (36 + 10 videos
            of 10 frames at 96x160, the unit tests' set).
        **kwargs: Override the preset: ``num_train_videos``,
            ``num_valid_videos``, ``num_frames``, ``height``, ``width``,
            ``seed`` (the output is a deterministic function of all the
            arguments) and the difficulty knobs of the module docstring.

    Returns:
        dict[str, str]: Annotation file of each split.
    """
    args = resolve_synthetic_args(preset, **kwargs)
    num_train_videos = args.pop('num_train_videos')
    num_valid_videos = args.pop('num_valid_videos')
    num_frames, height, width = (
        args.pop(k) for k in ('num_frames', 'height', 'width'))
    seed = args.pop('seed')
    preset = args.pop('preset')
    scene_kwargs = args
    for name, value in (('num_train_videos', num_train_videos),
                        ('num_valid_videos', num_valid_videos)):
        if value < 0:
            raise ValueError(f'{name} must be >= 0, got {value}')
    if num_frames < 1 or height < 16 or width < 16:
        raise ValueError('need num_frames >= 1 and frames of at least 16x16,'
                         f' got T={num_frames}, {height}x{width}')
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    info = dict(
        description='mdqe_mm synthetic occluded-object videos',
        generator='mdqe_mm.datasets.synthetic',
        preset=preset,
        seed=seed,
        num_train_videos=num_train_videos,
        num_valid_videos=num_valid_videos,
        num_frames=num_frames,
        height=height,
        width=width,
        scene=scene_kwargs,
        occlusion_thresholds=list(OCCLUSION_THRESHOLDS))
    paths = dict()
    splits = (('train', num_train_videos), ('valid', num_valid_videos))
    for split_index, (split, count) in enumerate(splits):
        rng = np.random.default_rng([seed, split_index])
        paths[split] = _write_split(out_dir, split, count, num_frames, height,
                                    width, rng, info, scene_kwargs)
    return paths


def _check_existing_set(data_root: str, requested: dict) -> None:
    """Raise if the set under ``data_root`` was generated with other
    arguments than ``requested`` (only what its ``info`` records)."""
    ann_file = osp.join(data_root, 'annotations', 'valid.json')
    try:
        with open(ann_file) as f:
            info = json.load(f).get('info') or {}
    except (OSError, ValueError, AttributeError):
        return  # not ours to judge; the data set loader reports bad files
    if info.get('generator') != 'mdqe_mm.datasets.synthetic':
        return
    recorded = {k: v for k, v in info.items() if k in requested}
    recorded.update(info.get('scene') or {})
    if 'preset' not in info:  # made before presets existed: 'small'
        recorded.setdefault('preset', 'small')

    def same(a, b) -> bool:
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            return len(a) == len(b) and all(map(same, a, b))
        return a == b

    differ = [
        f'{key}={recorded[key]!r} (asked: {requested[key]!r})'
        for key in sorted(recorded)
        if key in requested and not same(recorded[key], requested[key])
    ]
    if differ:
        raise ValueError(
            f'{data_root} holds a synthetic data set generated with other '
            f'arguments: {"; ".join(differ)}. Delete the folder to generate '
            'the requested one, or point data_root to another folder')


def ensure_synthetic_vis(data_root: str, **kwargs) -> str:
    """Generate the synthetic data set under ``data_root`` unless
    ``data_root/annotations/{train,valid}.json`` already exist.

    An existing set is reused as it is when the arguments its annotation
    ``info`` records agree with ``kwargs`` (after the preset is applied);
    otherwise a ValueError says which differ, so a config never trains or
    tests on another set than the one it names.

    Args:
        data_root (str): Folder of the data set.
        **kwargs: Passed to :func:`generate_synthetic_vis` (``preset`` and
            overrides).

    Returns:
        str: ``data_root``.
    """

    def complete() -> bool:
        return all(
            osp.isfile(osp.join(data_root, 'annotations', f'{split}.json'))
            for split in ('train', 'valid'))

    requested = resolve_synthetic_args(**kwargs)
    if complete():
        _check_existing_set(data_root, requested)
        return data_root
    # Several processes (e.g. every rank of a distributed run) may get here
    # at once. Each generates into a private folder and renames its parts
    # into place, frames first and annotations last, skipping parts that
    # already exist. Generation is deterministic for a seed, so the parts
    # that end up in place are identical whichever process wrote them, and
    # readers, who wait for the annotation files, never see partial frames.
    parent = osp.dirname(osp.abspath(data_root))
    os.makedirs(parent, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix='.synthetic_vis_tmp_', dir=parent)
    try:
        generate_synthetic_vis(tmp_dir, **kwargs)
        os.makedirs(data_root, exist_ok=True)
        parts = sorted(os.listdir(tmp_dir), key=lambda n: n == 'annotations')
        for name in parts:
            target = osp.join(data_root, name)
            if osp.exists(target):
                continue
            try:
                os.rename(osp.join(tmp_dir, name), target)
            except OSError:  # another process placed it first
                if not osp.exists(target):
                    raise
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    if not complete():
        raise RuntimeError(
            f'synthetic data set under {data_root} is incomplete: '
            'annotations/train.json or valid.json is missing although '
            'generation finished; delete the folder and retry')
    return data_root


def occlusion_statistics(ann_file: str) -> dict:
    """Shares of occlusion levels in a synthetic (or OVIS) annotation file.

    Returns:
        dict: ``num_videos``, ``num_instances``, ``num_instance_frames``
        (visible ones), the share of each occlusion label among them,
        ``hidden_gap_frames`` (null frames between two visible frames of an
        instance: full occlusions), ``instances_hidden_and_back`` (how
        many instances have such frames), ``instances_with_severe`` (share of
        instances with at least one severe frame) and ``tracks_light`` /
        ``tracks_medium`` / ``tracks_heavy``: how many tracks fall in the
        occlusion ranges of APso / APmo / APho (a track on a boundary counts
        in both, as in the evaluation).
    """
    # the scores and track ranges that VISMetric's APso / APmo / APho use
    from mdqe_mm.evaluation.functional.vis_eval import DEFAULT_OCCLUSION_RANGES
    from mdqe_mm.evaluation.functional.vis_tracks import \
        _occlusion_score as track_occlusion_score
    with open(ann_file) as f:
        data = json.load(f)
    counts = dict(no_occlusion=0, slight_occlusion=0, severe_occlusion=0)
    gaps = 0
    hidden_and_back = 0
    with_severe = 0
    track_levels = dict(light=0, medium=0, heavy=0)
    for ann in data['annotations'] or []:
        labels = ann['occlusion']
        present = [
            i for i, s in enumerate(ann['segmentations']) if s is not None
        ]
        for i in present:
            counts[labels[i]] += 1
        if present:
            gap = sum(1 for i in range(present[0], present[-1] + 1)
                      if ann['segmentations'][i] is None)
            gaps += gap
            hidden_and_back += gap > 0
        with_severe += 'severe_occlusion' in labels
        if present:
            # the track score VISMetric groups by (mean of the top half)
            score = track_occlusion_score(labels, ann_file, len(labels))
            for name, (low, high) in DEFAULT_OCCLUSION_RANGES:
                # boundaries count in both ranges, as in the evaluation
                track_levels[name] += bool(low <= score <= high)
    total = sum(counts.values())
    num_instances = len(data['annotations'] or [])
    stats = dict(
        num_videos=len(data['videos']),
        num_instances=num_instances,
        num_instance_frames=total,
        hidden_gap_frames=gaps,
        instances_hidden_and_back=hidden_and_back,
        instances_with_severe=with_severe / max(num_instances, 1))
    stats.update({k: v / max(total, 1) for k, v in counts.items()})
    stats.update({f'tracks_{k}': v for k, v in track_levels.items()})
    return stats

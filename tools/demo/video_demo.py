# Copyright (c) OpenMMLab. All rights reserved.
"""Run a VIS model on your own video and render the tracks.

Examples::

    # a video in, a rendered video and YouTube-VIS results out
    python tools/demo/video_demo.py my_video.mp4 \\
        configs/mdqe/mdqe_r50_8xb2-12k_ovis.py --checkpoint mdqe_ovis.pth \\
        --out my_video_vis.mp4 --out-json my_video_results.json

    # a folder of frames (any names, natural order) in, rendered frames out
    python tools/demo/video_demo.py data/ovis/valid/<video> CONFIG \\
        --checkpoint CKPT --out work_dirs/rendered/<video>

INPUT is a video file (.mp4 .avi .mov .mkv .webm .m4v) or a folder of frames
(.jpg .jpeg .png .bmp .tif .tiff .webp) sorted in natural order
(``img_2`` before ``img_10``). OUT ending in a video extension is written as
a video, anything else as a folder of rendered frames (``.jpg``, or
``.png`` with ``--frame-ext png``) named after the input frames.

The frames are decoded lazily and streamed through the model's near-online
inferencer (features are computed once per frame, window by window), so
memory stays flat in the video length; the preprocessing is the config's
test pipeline (resize) and the model's data preprocessor (normalise, pad),
as in ``tools/test.py``, and masks are predicted at the original frame size.
Rendering needs the final track scores, so the input is decoded a second
time to draw the frames (and once more up front, to count a video's frames).

``--out-json`` holds every output track of the model (no score threshold,
as an evaluation wants them), in the official results format
``[{video_id, category_id, score, segmentations: [RLE per frame]}]`` with
``category_id = class index + 1`` (the YouTube-VIS/OVIS numbering) and
``video_id`` from ``--video-id``; ``tools/analysis_tools/eval_vis.py`` and
``tools/analysis_tools/browse_vis.py`` read it.
"""
import argparse
import inspect
import json
import os
import os.path as osp
import re
import shutil
import sys
import time
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import cv2
import mmcv
import numpy as np
import torch
from mmcv.transforms import Compose
from mmdet.registry import DATASETS, MODELS
from mmdet.structures import DetDataSample, TrackDataSample
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import _load_checkpoint, load_state_dict
from tqdm import tqdm

import mdqe_mm  # noqa: F401  (compat shims + registration)
from mdqe_mm.datasets.vis_classes import VIS_CLASS_PRESETS
from mdqe_mm.visualization import VISLocalVisualizer

VIDEO_EXTS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v')
IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
_FOURCC = {'.avi': 'MJPG', '.webm': 'VP80'}  # others: mp4v
# transforms that load data: the demo feeds decoded frames instead
_LOADERS = ('LoadImageFromFile', 'LoadImageFromNDArray', 'LoadAnnotations',
            'LoadTrackAnnotations')
_PACKERS = ('PackTrackInputs', 'PackDetInputs', 'PackVideoInputs')


class DemoError(Exception):
    """A user error: printed as ``error: ...`` with a non-zero exit."""


def natural_key(name: str) -> tuple:
    """Sort key that orders the digit runs numerically (img_2 < img_10)."""
    return tuple((0, int(part)) if part.isdigit() else (1, part.lower())
                 for part in re.split(r'(\d+)', name) if part)


# ----------------------------------------------------------------------
# frame sources
# ----------------------------------------------------------------------
class FrameSource:
    """Frames of a video file or of a folder, decoded one by one (BGR).

    Attributes:
        path (str): The input.
        names (list[str]): A name per frame (the file stem for folders,
            ``00000``... for videos).
        fps (float, optional): The video's frame rate (None for folders).
        shape (tuple[int, int]): (H, W) of the frames.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.fps: Optional[float] = None
        if osp.isdir(path):
            self.is_video = False
            self.files = self._list_frames(path)
            self.names = [osp.splitext(osp.basename(f))[0] for f in self.files]
        elif osp.isfile(path):
            self.is_video = True
            self.names = [f'{i:05d}' for i in range(self._open_video(path))]
        else:
            raise DemoError(f'input {path} does not exist')
        first = next(self.frames())
        self.shape = first.shape[:2]

    @staticmethod
    def _list_frames(path: str) -> List[str]:
        entries = sorted(os.listdir(path), key=natural_key)
        if not entries:
            raise DemoError(f'input folder {path} is empty')
        files = [
            e for e in entries if e.lower().endswith(IMAGE_EXTS)
            and osp.isfile(osp.join(path, e))
        ]
        if not files:
            raise DemoError(
                f'input folder {path} has no frames of a known type '
                f'({" ".join(IMAGE_EXTS)}); it holds e.g. '
                f'{", ".join(entries[:3])}')
        return [osp.join(path, f) for f in files]

    def _open_video(self, path: str) -> int:
        cap = cv2.VideoCapture(path)
        try:
            if not cap.isOpened():
                raise DemoError(
                    f'cannot read video {path}: OpenCV cannot open it (not '
                    'a video, or a codec this OpenCV build lacks)')
            fps = cap.get(cv2.CAP_PROP_FPS)
            self.fps = float(fps) if fps and np.isfinite(fps) and fps > 0 \
                else None
            # container frame counts can be wrong: count decodable frames
            count = 0
            while cap.grab():
                count += 1
        finally:
            cap.release()
        if count == 0:
            raise DemoError(f'video {path} has no decodable frames (empty '
                            'or corrupt file)')
        return count

    def __len__(self) -> int:
        return len(self.names)

    def frames(self) -> Iterator[np.ndarray]:
        """Yield the frames in order, BGR uint8 (H, W, 3)."""
        shape = getattr(self, 'shape', None)
        if self.is_video:
            cap = cv2.VideoCapture(self.path)
            try:
                for index in range(len(self)):
                    ok, frame = cap.read()
                    if not ok or frame is None:
                        raise DemoError(f'video {self.path}: frame {index} '
                                        'could not be decoded')
                    yield self._check(frame, shape, f'frame {index}')
            finally:
                cap.release()
        else:
            for file in self.files:
                frame = mmcv.imread(file, flag='color', channel_order='bgr')
                if frame is None:
                    raise DemoError(f'frame {file} could not be read as an '
                                    'image')
                yield self._check(frame, shape, file)

    def _check(self, frame: np.ndarray, shape, where: str) -> np.ndarray:
        if shape is not None and frame.shape[:2] != tuple(shape):
            raise DemoError(
                f'{self.path}: {where} is {frame.shape[1]}x{frame.shape[0]} '
                f'but the first frame is {shape[1]}x{shape[0]}; all frames '
                'of a video must have one size')
        return frame


class FramePreprocessor:
    """The per-frame transforms of the config's test pipeline (e.g.
    ``Resize``) applied to decoded BGR frames, as ``tools/test.py`` applies
    them after ``LoadImageFromFile``; the loaders and the packer are left
    out. Returns (3, H', W') uint8 tensors, as ``PackTrackInputs``."""

    def __init__(self, cfg: Config) -> None:
        pipeline = cfg.get('test_dataloader',
                           {}).get('dataset', {}).get('pipeline',
                                                      cfg.get('test_pipeline'))
        if pipeline is None:
            raise DemoError('the config has no test pipeline '
                            '(test_dataloader.dataset.pipeline)')
        transforms = []
        for transform in pipeline:
            name = str(transform['type']).split('.')[-1]
            if name == 'TransformBroadcaster':
                transforms.extend(transform['transforms'])
            elif name not in _PACKERS:
                transforms.append(transform)
        self.transforms = Compose([
            t for t in transforms
            if str(t['type']).split('.')[-1] not in _LOADERS
        ])

    def __call__(self, frame: np.ndarray) -> Tuple[torch.Tensor, tuple]:
        """BGR (H, W, 3) -> (uint8 tensor (3, H', W'), (H', W'))."""
        shape = frame.shape[:2]
        results = self.transforms(
            dict(img=frame, img_shape=shape, ori_shape=shape, img_path=None))
        img = np.ascontiguousarray(results['img'].transpose(2, 0, 1))
        return torch.from_numpy(img), tuple(results['img_shape'][:2])


class LazyVideo:
    """The preprocessed frames of a :class:`FrameSource` as a sequence that
    decodes on demand (the near-online inferencer reads it window by window
    in order); only the last window read is kept in memory."""

    def __init__(self, source: FrameSource,
                 preprocess: FramePreprocessor) -> None:
        self.source = source
        self.preprocess = preprocess
        self._iter: Optional[Iterator[np.ndarray]] = None
        self._next = 0
        self._cache: Dict[int, torch.Tensor] = {}
        self.img_shape: Optional[tuple] = None
        self.num_restarts = 0

    def __len__(self) -> int:
        return len(self.source)

    def _frame(self, index: int) -> torch.Tensor:
        if index in self._cache:
            return self._cache[index]
        if self._iter is None or index < self._next:
            if self._iter is not None:
                self.num_restarts += 1
            self._iter, self._next = self.source.frames(), 0
        while self._next < index:
            next(self._iter)
            self._next += 1
        tensor, img_shape = self.preprocess(next(self._iter))
        self._next += 1
        self.img_shape = self.img_shape or img_shape
        return tensor

    def __getitem__(self, item):
        if isinstance(item, slice):
            indices = range(*item.indices(len(self)))
            frames = [self._frame(i) for i in indices]
            self._cache = dict(zip(indices, frames))
            return torch.stack(frames)
        if item < 0:
            item += len(self)
        if not 0 <= item < len(self):
            raise IndexError(f'frame {item} of a {len(self)}-frame video')
        frame = self._frame(item)
        self._cache = {item: frame}
        return frame


# ----------------------------------------------------------------------
# model
# ----------------------------------------------------------------------
def config_classes(cfg: Config) -> Optional[List[str]]:
    """Class names from the config's test data set (metainfo or preset)."""
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    classes = (dataset.get('metainfo') or {}).get('classes')
    if classes:
        return list(classes)
    preset = dataset.get('preset')
    if preset is None and dataset.get('type'):
        try:
            cls = DATASETS.get(dataset['type'])
            param = inspect.signature(cls.__init__).parameters.get('preset')
            preset = param.default if param is not None else None
        except Exception:  # unknown type: no names from the config
            preset = None
    if preset in VIS_CLASS_PRESETS:
        return list(VIS_CLASS_PRESETS[preset])
    return None


def build_model(config: str,
                checkpoint: str,
                device: str,
                cfg_options: Optional[dict],
                allow_partial: bool = False) -> tuple:
    """The model in eval mode, its window preparer, test config and the
    checkpoint's ``dataset_meta``."""
    if not osp.isfile(config):
        raise DemoError(f'config file not found: {config}')
    if not osp.isfile(checkpoint):
        raise DemoError(f'checkpoint not found: {checkpoint}')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    for name in ('build_inferencer', 'extract_frame_feats', 'decode_clips'):
        if not hasattr(model, name):
            raise DemoError(
                f'{config}: the model {type(model).__name__} has no '
                f'{name}(); the demo needs a near-online VIS model (MDQE)')
    try:
        ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    except Exception as err:  # corrupt or foreign files
        raise DemoError(f'cannot load checkpoint {checkpoint}: {err}')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise DemoError(f'{checkpoint} holds no state_dict')
    state = {
        (k[7:] if k.startswith('module.') else k): v
        for k, v in state.items()
    }
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    wrong = {
        k: f'{k} {tuple(state[k].shape)} (model: {tuple(own[k].shape)})'
        for k in own if k in state and hasattr(state[k], 'shape')
        and tuple(state[k].shape) != tuple(own[k].shape)
    }
    if (missing or wrong) and not allow_partial:
        raise DemoError(
            f'{checkpoint} does not fit {config}: {len(missing)} model '
            f'tensors missing (e.g. {missing[:3]}), {len(wrong)} of another '
            f'shape (e.g. {list(wrong.values())[:3]}); check the config, or '
            'pass --allow-partial-load to run with those left at their '
            'initialisation')
    load_state_dict(
        model, {
            k: v
            for k, v in state.items() if k in own and k not in wrong
        },
        strict=False)
    model.to(device).eval()
    preprocessor = model.data_preprocessor
    if not hasattr(preprocessor, 'prepare_window'):
        # same normalisation and padding, applied window by window
        pre_cfg = dict(cfg.model.data_preprocessor)
        pre_cfg['type'] = 'VideoStreamDataPreprocessor'
        preprocessor = MODELS.build(pre_cfg).to(device)
    meta = (ckpt.get('meta') or {}).get('dataset_meta') \
        if isinstance(ckpt, dict) else None
    return model, preprocessor, cfg, meta


def run_inference(model, preprocessor, video: LazyVideo, video_id: int,
                  progress: Callable[[int], None]) -> TrackDataSample:
    """Stream the video through the model's near-online inferencer."""
    length = len(video)
    video[0]  # decodes frame 0 and sets video.img_shape
    img_shape = video.img_shape
    ori_shape = tuple(video.source.shape)
    sample = TrackDataSample(video_data_samples=[
        DetDataSample(
            metainfo=dict(
                video_id=video_id,
                frame_id=f,
                video_length=length,
                img_shape=img_shape,
                ori_shape=ori_shape)) for f in range(length)
    ])
    inferencer = model.build_inferencer()

    def extract(frames: torch.Tensor) -> dict:
        feats = model.extract_frame_feats(frames, [img_shape] * len(frames))
        progress(len(frames))
        return feats

    with torch.no_grad():
        return inferencer.predict(
            video,
            extract,
            model.decode_clips,
            sample,
            prepare_window=preprocessor.prepare_window)


def results_json(sample: TrackDataSample, video_id: int) -> List[dict]:
    """Every output (track, class) pair in the official results format,
    plus ``track_id`` (the id drawn and coloured by the visualiser; the
    official evaluators ignore extra keys)."""
    if len(sample) == 0:
        return []
    first = sample[0].pred_track_instances
    track_ids = first.get('track_ids', first.get('instances_id'))
    results = []
    for pair in range(len(first)):
        results.append(
            dict(
                video_id=video_id,
                category_id=int(first.labels[pair]) + 1,
                score=float(first.scores[pair]),
                track_id=int(track_ids[pair]),
                segmentations=[
                    _str_rle(frame.pred_track_instances.masks[pair])
                    for frame in sample
                ]))
    return results


def _str_rle(rle: dict) -> dict:
    counts = rle['counts']
    return dict(
        size=[int(s) for s in rle['size']],
        counts=counts.decode('ascii') if isinstance(counts, bytes) else counts)


# ----------------------------------------------------------------------
# outputs
# ----------------------------------------------------------------------
def _real(path: str) -> str:
    return osp.realpath(osp.abspath(path))


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse outputs that are, contain or lie inside the input, that are
    the config or checkpoint, or that are of the wrong kind."""
    inputs = {
        'input': args.input,
        'config': args.config,
        'checkpoint': args.checkpoint
    }
    outputs = {
        '--out': args.out,
        '--out-json': args.out_json,
        '--strip': args.strip
    }
    outputs = {k: v for k, v in outputs.items() if v}
    if not outputs:
        raise DemoError('nothing to write: give --out (a video file or a '
                        'folder), --out-json and/or --strip')
    reals = [_real(v) for v in outputs.values()]
    if len(set(reals)) < len(reals):
        raise DemoError(f'two outputs are the same path: {outputs}')
    for flag, out in outputs.items():
        out_real = _real(out)
        for what, path in inputs.items():
            in_real = _real(path)
            if out_real == in_real:
                raise DemoError(f'{flag} {out} is the {what}; the demo never '
                                'writes over its input')
            if what == 'input' and in_real.startswith(out_real + os.sep):
                raise DemoError(f'{flag} {out} contains the {what} {path}; '
                                'choose another output path')
            if what == 'input' and osp.isdir(path) and \
                    out_real.startswith(in_real + os.sep):
                raise DemoError(f'{flag} {out} is inside the input folder '
                                f'{path}; choose a path outside it')
    if args.out:
        if is_video_path(args.out) and osp.isdir(args.out):
            raise DemoError(f'--out {args.out} is a folder but ends in a '
                            'video extension')
        if not is_video_path(args.out) and osp.isfile(args.out):
            raise DemoError(f'--out {args.out} is an existing file; a frames '
                            'output must be a folder (or end in '
                            f'{" ".join(VIDEO_EXTS)} for a video)')
    if args.out_json and osp.isdir(args.out_json):
        raise DemoError(f'--out-json {args.out_json} is a folder')


def is_video_path(path: str) -> bool:
    return path.lower().endswith(VIDEO_EXTS)


def _tmp_sibling(path: str, suffix: str = '') -> str:
    folder, name = osp.split(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    return osp.join(folder, f'.{name}.tmp-{os.getpid()}{suffix}')


class FrameSink:
    """Writes rendered frames to a video or a frames folder, through a
    temporary sibling that replaces OUT only when everything is written."""

    def __init__(self,
                 out: str,
                 fps: float,
                 shape: Tuple[int, int],
                 frame_ext: str = 'jpg') -> None:
        self.out = out
        self.frame_ext = frame_ext
        self.is_video = is_video_path(out)
        if self.is_video:
            ext = osp.splitext(out)[1].lower()
            self.tmp = _tmp_sibling(out, ext)
            fourcc = cv2.VideoWriter_fourcc(*_FOURCC.get(ext, 'mp4v'))
            self.writer = cv2.VideoWriter(self.tmp, fourcc, fps,
                                          (shape[1], shape[0]))
            if not self.writer.isOpened():
                self.abort()
                raise DemoError(f'OpenCV cannot write a {ext} video to '
                                f'{out}; try .mp4 or .avi, or a folder')
        else:
            self.tmp = _tmp_sibling(out)
            os.makedirs(self.tmp)

    def write(self, frame: np.ndarray, name: str) -> None:
        if self.is_video:
            self.writer.write(frame)
        elif not cv2.imwrite(
                osp.join(self.tmp, f'{name}.{self.frame_ext}'), frame):
            raise DemoError(f'could not write frame {name} under {self.out}')

    def close(self) -> None:
        if self.is_video:
            self.writer.release()
            os.replace(self.tmp, self.out)
        elif not osp.exists(self.out):
            os.rename(self.tmp, self.out)
        else:  # an existing folder: same-named frames are replaced
            for name in os.listdir(self.tmp):
                os.replace(osp.join(self.tmp, name), osp.join(self.out, name))
            os.rmdir(self.tmp)

    def abort(self) -> None:
        if self.is_video:
            self.writer.release()
            if osp.exists(self.tmp):
                os.remove(self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def write_json(data, path: str) -> None:
    tmp = _tmp_sibling(path)
    try:
        with open(tmp, 'w') as f:
            json.dump(data, f)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


STRIP_GAP = 4  # white pixels between the frames of a --strip image


def strip_indices(length: int, count: int) -> List[int]:
    """``count`` evenly spaced frame indices of a ``length``-frame video,
    first and last included (fewer if the video is shorter)."""
    return sorted({int(round(i)) for i in np.linspace(0, length - 1, count)})


def render(source: FrameSource,
           sample: TrackDataSample,
           visualizer: VISLocalVisualizer,
           sink: Optional['FrameSink'],
           score_thr: float,
           strip: Optional[str] = None,
           strip_frames: int = 5) -> None:
    """Draw the predictions on the original frames, in a second pass;
    optionally also write evenly spaced drawn frames side by side to the
    image ``strip``."""
    picked = set(strip_indices(len(source), strip_frames)) if strip else ()
    strip_parts = []
    bar = tqdm(total=len(source), unit='frame', desc='render', leave=False)
    for index, frame in enumerate(source.frames()):
        frame_sample = DetDataSample()
        frame_sample.pred_track_instances = sample[index].pred_track_instances
        visualizer.add_datasample(
            source.names[index],
            frame[..., ::-1],
            data_sample=frame_sample,
            draw_gt=False,
            pred_score_thr=score_thr)
        drawn = np.ascontiguousarray(visualizer.get_image()[..., ::-1])
        if sink is not None:
            sink.write(drawn, source.names[index])
        if index in picked:
            strip_parts.append(drawn)
        bar.update(1)
    bar.close()
    if strip:
        gap = np.full((drawn.shape[0], STRIP_GAP, 3), 255, np.uint8)
        parts = [p for part in strip_parts for p in (part, gap)][:-1]
        ext = osp.splitext(strip)[1] or '.png'
        tmp = _tmp_sibling(strip, ext)
        try:
            if not cv2.imwrite(tmp, np.concatenate(parts, axis=1)):
                raise DemoError(f'could not write the strip image {strip}')
            os.replace(tmp, strip)
        finally:
            if osp.exists(tmp):
                os.remove(tmp)


# ----------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Segment and track the instances of a video (file or '
        'folder of frames) with a VIS model; write a rendered video or '
        'frames and/or YouTube-VIS results',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument('input', help='video file or folder of frames')
    parser.add_argument('config', help='model config file')
    parser.add_argument('--checkpoint', required=True, help='checkpoint file')
    parser.add_argument(
        '--out',
        help='rendered output: a video file (.mp4 .avi ...) or a folder '
        'for .jpg frames')
    parser.add_argument(
        '--out-json',
        help='write the predictions in the YouTube-VIS '
        'results format here')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.3,
        help='draw tracks scoring at least this (default: 0.3); the JSON '
        'keeps every track')
    parser.add_argument(
        '--device', default='cpu', help='device, e.g. cpu or cuda:0')
    parser.add_argument(
        '--fps',
        type=float,
        help='frame rate of a video output (default: the input\'s, 10 for '
        'a frames folder)')
    parser.add_argument(
        '--classes',
        nargs='+',
        help='class names, one per model class (default: the '
        'checkpoint\'s, else the config data set\'s)')
    parser.add_argument(
        '--frame-ext',
        choices=['jpg', 'png'],
        default='jpg',
        help='image format of a frames output (default: jpg; png is '
        'lossless)')
    parser.add_argument(
        '--strip',
        help='also write an image of evenly spaced rendered frames side by '
        'side here (e.g. for a README)')
    parser.add_argument(
        '--strip-frames',
        type=int,
        default=5,
        help='frames in the --strip image (default: 5)')
    parser.add_argument(
        '--video-id',
        type=int,
        default=1,
        help='video_id written to --out-json (default: 1)')
    parser.add_argument(
        '--allow-partial-load',
        action='store_true',
        help='run even when model tensors are missing from the checkpoint '
        'or have another shape (by default that is an error)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value')
    args = parser.parse_args(argv)
    if args.strip_frames < 1:
        parser.error(f'--strip-frames must be >= 1, got {args.strip_frames}')
    if args.fps is not None and args.fps <= 0:
        parser.error(f'--fps must be > 0, got {args.fps}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    sink = None
    try:
        check_outputs(args)
        source = FrameSource(args.input)
        model, preprocessor, cfg, meta = build_model(args.config,
                                                     args.checkpoint,
                                                     args.device,
                                                     args.cfg_options,
                                                     args.allow_partial_load)
        num_classes = getattr(
            getattr(model, 'track_head', None), 'num_classes', None)
        classes = args.classes or (meta or {}).get('classes') or \
            config_classes(cfg)
        if args.classes and num_classes and len(args.classes) != num_classes:
            raise DemoError(f'--classes gives {len(args.classes)} names but '
                            f'the model has {num_classes} classes')
        video = LazyVideo(source, FramePreprocessor(cfg))
        print(
            f'{args.input}: {len(source)} frames of {source.shape[1]}x'
            f'{source.shape[0]}',
            flush=True)

        bar = tqdm(total=len(source), unit='frame', desc='inference')
        start = time.perf_counter()
        sample = run_inference(model, preprocessor, video, args.video_id,
                               bar.update)
        infer_time = time.perf_counter() - start
        bar.close()

        results = results_json(sample, args.video_id)
        kept = [r for r in results if r['score'] >= args.score_thr]
        render_time = 0.0
        if args.out or args.strip:
            visualizer = VISLocalVisualizer(name=f'video_demo_{id(args)}')
            visualizer.dataset_meta = dict(classes=classes) \
                if classes else None
            fps = args.fps or source.fps or 10.0
            start = time.perf_counter()
            if args.out:
                sink = FrameSink(args.out, fps, source.shape, args.frame_ext)
            render(source, sample, visualizer, sink, args.score_thr,
                   args.strip, args.strip_frames)
            if sink is not None:
                sink.close()
                sink = None
            render_time = time.perf_counter() - start
        if args.out_json:
            write_json(results, args.out_json)
    except DemoError as err:
        if sink is not None:
            sink.abort()
        print(f'error: {err}', file=sys.stderr)
        return 1
    except BaseException:
        if sink is not None:
            sink.abort()
        raise

    num = len(source)
    print(f'frames: {num} ({source.shape[1]}x{source.shape[0]}, model input '
          f'{video.img_shape[1]}x{video.img_shape[0]})')
    print(f'tracks: {len(kept)} kept with score >= {args.score_thr} of '
          f'{len(results)} output')
    print(f'speed: {num / infer_time:.2f} FPS inference ({infer_time:.1f} '
          f's on {args.device})' +
          (f', {num / render_time:.2f} FPS rendering' if render_time else ''))
    for flag, path in (('video' if args.out and is_video_path(args.out) else
                        'frames', args.out), ('results', args.out_json),
                       ('strip', args.strip)):
        if path:
            print(f'{flag}: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

# Copyright (c) OpenMMLab. All rights reserved.
import contextlib
import time
from typing import (Callable, Dict, Iterator, List, Optional, Sequence, Tuple,
                    Union)

import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, TrackDataSample
from mmdet.utils import OptConfigType
from mmengine.structures import InstanceData
from torch import Tensor

from ...utils.size_check import check_frame_sizes, check_inference_frames
from .clip_postprocess import postprocess_clip
from .clip_tracker import ClipTracker
from .video_aggregator import VideoResultAggregator, rle_boxes

FrameFeats = Dict[str, Union[Tensor, object]]
ExtractFn = Callable[[Tensor], FrameFeats]
DecodeFn = Callable[[FrameFeats, List[List[int]]], List[Dict[str, Tensor]]]


def clip_schedule(video_length: int,
                  num_frames: int,
                  cover_tail: bool = False) -> List[Tuple[int, int]]:
    """Frame ranges ``[start, end)`` of the test clips (stride 1).

    With ``cover_tail=False`` (the reference): clips start at 0, 1, ...
    while the previous clip ended before the last frame, so only the last
    clip is truncated (it has ``T - 1`` frames when the video has at least
    ``T`` frames); a video shorter than T is one clip. With
    ``cover_tail=True`` a clip starts at every frame and the last ``T - 1``
    clips are truncated, so the tail is covered as often as the head.

    Args:
        video_length (int): Number of frames L >= 1.
        num_frames (int): Clip length T >= 1.
        cover_tail (bool): See above. Defaults to False.

    Returns:
        list[tuple[int, int]]: The clips in order.
    """
    if video_length < 1 or num_frames < 1:
        raise ValueError('clip_schedule: video_length and num_frames must be '
                         f'>= 1, got {video_length} and {num_frames}')
    if cover_tail:
        last_start = video_length - 1
    else:
        last_start = max(0, min(video_length - num_frames + 1,
                                video_length - 1))
    return [(start, min(start + num_frames, video_length))
            for start in range(last_start + 1)]


@MODELS.register_module()
class NearOnlineInferencer:
    """Near-online MDQE inference over a video of any length (MDQE_SPEC §5).

    Frames are turned into features ``window_size`` frames at a time through
    ``extract_frame_feats``, exactly once per frame; the features are kept
    only while an upcoming clip needs them, so at most ``window_size +
    num_frames - 1`` frames of features are held. Every clip of
    ``num_frames`` frames with stride 1 (see :func:`clip_schedule`) is
    decoded through ``decode_clips`` (the clips that the current features
    allow are batched), post-processed (:func:`postprocess_clip`), linked by
    the tracker (:class:`ClipTracker`) and aggregated; each frame's masks are
    RLE-encoded as soon as no later clip covers it
    (:class:`VideoResultAggregator`). Memory is therefore flat in the video
    length apart from the RLEs.

    The model is reached only through two callables (the detector's
    ``extract_frame_feats`` and ``decode_clips``):

    - ``extract_frame_feats(frames)``: frames (M, 3, H, W) normalised and
      padded -> dict whose tensors have leading dim M (one row per frame),
      except the keys in ``shared_feat_keys`` (and non-tensor values), which
      are passed on unchanged.
    - ``decode_clips(feats, clip_frame_inds)``: ``feats`` as above for the
      frames currently held, ``clip_frame_inds`` a list of clips, each a
      list of row indices into ``feats`` -> one dict per clip with
      ``scores`` (Q, K) sigmoid probabilities, ``mask_logits``
      (Q, T', h, w) stride-4 logits and ``clip_embeds`` (Q, C).

    Args:
        num_frames (int): Clip length T at test time. Defaults to 4.
        window_size (int): Frames per feature window
            (``WINDOW_FRAME_NUM_TEST``). Defaults to 30.
        cls_thr (float): ``APPLY_CLS_THRES``. Defaults to 0.1.
        max_dets (int): ``DETECTIONS_PER_IMAGE``. Defaults to 10.
        query_sim_thr (float): Step-2 cosine threshold. Defaults to 0.99.
        nms_iou_thr (float): Step-4 removal threshold. Defaults to 0.5.
        tracker (dict, optional): Config of the tracker; ``num_frames`` and
            ``cls_thr`` default to the values above. Defaults to
            ``dict(type='ClipTracker')``.
        score_aggregation (str): ``'window'`` (the reference's) or
            ``'clip'``, see :class:`VideoResultAggregator`. Defaults to
            ``'window'``.
        window_carry (bool): At every ``window_size``-th clip start, carry
            the window's mean masks, embeddings and (``'window'``) class
            scores into the next window as the reference's tracker does
            (:meth:`ClipTracker.carry_over_window`). False averages every
            clip exactly. Defaults to True.
        output_score_thr (float): Defaults to 0.05.
        min_num_outputs (int): Defaults to 10.
        mask_stride (int): Stride of the mask logits. Defaults to 4.
        cover_tail (bool): See :func:`clip_schedule`. Defaults to False.
        decode_batch_size (int, optional): Most clips per ``decode_clips``
            call; ``None`` decodes all clips available at once.
        merge_on_cpu (bool): Move clip outputs to the CPU before tracking
            (``MERGE_ON_CPU``). Defaults to False.
        shared_feat_keys (Sequence[str]): Feature keys that are not per
            frame. Defaults to ``('spatial_shapes', 'level_start_index')``.
        time_stages (bool): Record the wall time of every stage of
            :meth:`predict` in ``last_timings`` (seconds): ``extract``,
            ``decode``, ``postprocess``, ``track`` (tracker and score
            aggregation), ``rle`` (mask upsampling and RLE encoding,
            output). On CUDA every stage boundary synchronises, so use it
            for benchmarks only. Defaults to False.
    """

    def __init__(
        self,
        num_frames: int = 4,
        window_size: int = 30,
        cls_thr: float = 0.1,
        max_dets: int = 10,
        query_sim_thr: float = 0.99,
        nms_iou_thr: float = 0.5,
        tracker: OptConfigType = None,
        score_aggregation: str = 'window',
        window_carry: bool = True,
        output_score_thr: float = 0.05,
        min_num_outputs: int = 10,
        mask_stride: int = 4,
        cover_tail: bool = False,
        decode_batch_size: Optional[int] = None,
        merge_on_cpu: bool = False,
        shared_feat_keys: Sequence[str] = ('spatial_shapes',
                                           'level_start_index'),
        time_stages: bool = False
    ) -> None:
        for name, value in (('num_frames', num_frames),
                            ('window_size', window_size), ('max_dets',
                                                           max_dets)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'NearOnlineInferencer: {name} must be a '
                                 f'positive int, got {value!r}')
        if decode_batch_size is not None and decode_batch_size < 1:
            raise ValueError('NearOnlineInferencer: decode_batch_size must '
                             f'be >= 1 or None, got {decode_batch_size}')
        self.num_frames = num_frames
        self.window_size = window_size
        self.cls_thr = cls_thr
        self.max_dets = max_dets
        self.query_sim_thr = query_sim_thr
        self.nms_iou_thr = nms_iou_thr
        self.cover_tail = cover_tail
        self.decode_batch_size = decode_batch_size
        self.merge_on_cpu = merge_on_cpu
        self.window_carry = window_carry
        self.shared_feat_keys = tuple(shared_feat_keys)

        tracker_cfg = dict(type='ClipTracker') if tracker is None \
            else dict(tracker)
        tracker_cfg.setdefault('num_frames', num_frames)
        tracker_cfg.setdefault('cls_thr', cls_thr)
        self.tracker: ClipTracker = MODELS.build(tracker_cfg)
        self.aggregator = VideoResultAggregator(
            score_aggregation=score_aggregation,
            window_size=window_size,
            window_carry=window_carry,
            output_score_thr=output_score_thr,
            min_num_outputs=min_num_outputs,
            mask_stride=mask_stride)
        self.last_stats: Dict[str, int] = {}
        self.time_stages = time_stages
        self.last_timings: Dict[str, float] = {}

    # ------------------------------------------------------------------
    # feature buffer
    @staticmethod
    def _check_window_sizes(window: List[Tensor], first_index: int,
                            frame_shape: Tuple[int, int],
                            data_sample: TrackDataSample) -> None:
        """Every frame of a lazily read window has frame 0's size (named by
        index and file when the metainfo has one)."""
        names = []
        for index in [0] + list(
                range(first_index, first_index + len(window))):
            path = data_sample[index].metainfo.get('img_path') \
                if index < len(data_sample) else None
            names.append(f'frame {index}' + (f' ({path})' if path else ''))
        meta = data_sample[0].metainfo
        video = f'video {meta["video_id"]}' if meta.get(
            'video_id') is not None else 'the video'
        check_frame_sizes([frame_shape] +
                          [tuple(f.shape[-2:]) for f in window], video, names,
                          'input size')

    def _split_feats(self, feats: FrameFeats, num_frames: int,
                     first_frame: int) -> Tuple[dict, dict]:
        if not isinstance(feats, dict):
            raise TypeError('NearOnlineInferencer: extract_frame_feats must '
                            f'return a dict, got {type(feats).__name__}')
        per_frame, shared = {}, {}
        for key, value in feats.items():
            if key in self.shared_feat_keys or not isinstance(value, Tensor):
                shared[key] = value
            elif value.dim() == 0 or value.shape[0] != num_frames:
                raise ValueError(
                    f'NearOnlineInferencer: feature {key!r} of frames '
                    f'{first_frame}..{first_frame + num_frames - 1} has shape '
                    f'{tuple(value.shape)}; per-frame features need leading '
                    f'dim {num_frames} (add the key to shared_feat_keys if '
                    'it is not per frame)')
            else:
                per_frame[key] = value
        return per_frame, shared

    @staticmethod
    def _append_frames(buffer: dict, new: dict) -> dict:
        if not buffer or next(iter(buffer.values())).shape[0] == 0:
            return new
        if set(buffer) != set(new):
            raise KeyError(
                'NearOnlineInferencer: extract_frame_feats returned keys '
                f'{sorted(new)} for this window but {sorted(buffer)} before')
        return {
            key: torch.cat([buffer[key], value])
            for key, value in new.items()
        }

    # ------------------------------------------------------------------
    def _check_clip_output(self, out: dict, clip: Tuple[int, int]) -> None:
        missing = {'scores', 'mask_logits', 'clip_embeds'} - set(out)
        if missing:
            raise KeyError(f'NearOnlineInferencer: decode_clips output of '
                           f'clip {clip} lacks {sorted(missing)}')
        scores, masks, embeds = (out['scores'], out['mask_logits'],
                                 out['clip_embeds'])
        length = clip[1] - clip[0]
        if scores.dim() != 2 or masks.dim() != 4 or embeds.dim() != 2 or \
                masks.shape[1] != length or \
                not scores.shape[0] == masks.shape[0] == embeds.shape[0]:
            raise ValueError(
                f'NearOnlineInferencer: decode_clips output of clip '
                f'{clip} ({length} frames) has scores '
                f'{tuple(scores.shape)}, mask_logits {tuple(masks.shape)}, '
                f'clip_embeds {tuple(embeds.shape)}; expected (Q, K), '
                f'(Q, {length}, h, w), (Q, C)')

    @contextlib.contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        """Add the wall time of the block to ``last_timings[name]``."""
        if not self.time_stages:
            yield
            return
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        start = time.perf_counter()
        yield
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        self.last_timings[name] = self.last_timings.get(name, 0.0) + \
            time.perf_counter() - start

    def _process_clip(self, out: dict, clip: Tuple[int, int],
                      next_start: Optional[int]) -> None:
        self._check_clip_output(out, clip)
        scores, masks, embeds = (out['scores'], out['mask_logits'],
                                 out['clip_embeds'])
        if self.merge_on_cpu:
            scores, masks, embeds = scores.cpu(), masks.cpu(), embeds.cpu()
        # post-processing and tracking are not part of the network: under
        # the caller's autocast their float32 matmuls would turn into
        # fp16/bf16 ones (and their results would not index-put into
        # float32 buffers)
        with torch.autocast(masks.device.type, enabled=False):
            self._link_clip(scores, masks, embeds, clip, next_start)
        self.last_stats['max_open_frames'] = max(
            self.last_stats['max_open_frames'], len(self.tracker.open_frames))

    def _link_clip(self, scores: Tensor, masks: Tensor, embeds: Tensor,
                   clip: Tuple[int, int], next_start: Optional[int]) -> None:
        """Post-process one clip, link it, aggregate and encode the frames
        that are final."""
        with self._stage('postprocess'):
            dets = postprocess_clip(
                scores.float(),
                masks,
                embeds,
                score_thr=self.cls_thr,
                max_dets=self.max_dets,
                query_sim_thr=self.query_sim_thr,
                nms_iou_thr=self.nms_iou_thr)
        with self._stage('track'):
            if self.window_carry and clip[0] > 0 \
                    and clip[0] % self.window_size == 0:
                self.tracker.carry_over_window(clip[0])
            track_ids = self.tracker.update(dets, list(range(*clip)))
            self.aggregator.add_clip(
                clip[0], track_ids, dets.cls_probs, clip_end=clip[1] - 1)
            final_frames = self.tracker.pop_final_frames(next_start)
        with self._stage('rle'):
            for frame, logits in final_frames:
                self.aggregator.add_final_frame(frame, logits)

    @staticmethod
    def _video_sample(data_sample: Optional[TrackDataSample],
                      video_length: int,
                      frame_shape: Tuple[int, int]) -> TrackDataSample:
        if data_sample is None:
            frames = [
                DetDataSample(
                    metainfo=dict(
                        frame_id=f,
                        video_length=video_length,
                        img_shape=frame_shape,
                        ori_shape=frame_shape)) for f in range(video_length)
            ]
            return TrackDataSample(video_data_samples=frames)
        if len(data_sample) != video_length:
            video_id = data_sample[0].metainfo.get('video_id', '?') \
                if len(data_sample) else '?'
            raise ValueError(
                f'NearOnlineInferencer: video {video_id} has {video_length} '
                f'frames but its TrackDataSample has {len(data_sample)}')
        return data_sample

    def predict(
        self,
        frames: Union[Tensor, Sequence[Tensor]],
        extract_frame_feats: ExtractFn,
        decode_clips: DecodeFn,
        data_sample: Optional[TrackDataSample] = None,
        prepare_window: Optional[Callable[[Tensor], Tensor]] = None
    ) -> TrackDataSample:
        """Segment and track the instances of one video.

        Args:
            frames (Tensor | Sequence[Tensor]): The video, shape
                (L, 3, H, W) or L tensors (3, H, W); uint8 on the CPU when
                ``prepare_window`` is given, else already normalised and
                padded.
            extract_frame_feats (Callable): See the class docstring.
            decode_clips (Callable): See the class docstring.
            data_sample (:obj:`TrackDataSample`, optional): L frames whose
                metainfo gives ``img_shape`` (unpadded input size, default
                the frame size) and ``ori_shape`` (output size, default
                ``img_shape``). A bare one is made if None.
            prepare_window (Callable, optional): Maps frames (M, 3, H, W)
                to the model input (e.g.
                ``VideoStreamDataPreprocessor.prepare_window``).

        Returns:
            :obj:`TrackDataSample`: ``data_sample`` with, on every frame,
            ``pred_track_instances``: ``masks`` (list of P RLE dicts),
            ``bboxes`` (P, 4) xyxy of the masks, ``scores`` (P,),
            ``labels`` (P,), ``instances_id`` (P,) (one id per output
            (track, class) pair) and ``track_ids`` (P,).
        """
        video_length = len(frames)
        if video_length == 0:
            raise ValueError('NearOnlineInferencer: the video has no frames')
        frame_shape = tuple(int(s) for s in frames[0].shape[-2:])
        data_sample = self._video_sample(data_sample, video_length,
                                         frame_shape)
        # every frame must have the first frame's size (outputs are made at
        # the first frame's ori_shape)
        check_inference_frames(frames, data_sample)
        meta = data_sample[0].metainfo
        img_shape = tuple(meta.get('img_shape', frame_shape))[:2]
        ori_shape = tuple(meta.get('ori_shape', img_shape))[:2]

        schedule = clip_schedule(video_length, self.num_frames,
                                 self.cover_tail)
        self.tracker.reset()
        self.aggregator.start_video(video_length, img_shape, ori_shape)
        stats = dict(
            num_clips=len(schedule),
            num_extracted_frames=0,
            num_extract_calls=0,
            num_decode_calls=0,
            max_buffered_frames=0,
            max_open_frames=0)
        self.last_stats = stats
        self.last_timings = {}

        buffer: dict = {}
        shared: dict = {}
        buf_start = buf_end = 0
        next_clip = 0
        while next_clip < len(schedule):
            clip_start, clip_end = schedule[next_clip]
            while buf_end < clip_end:
                if buffer and clip_start > buf_start:
                    # No upcoming clip reads the frames before
                    # ``clip_start``: release them before the next window
                    # is extracted (clone, so the old storage is freed).
                    buffer = {
                        key: value[clip_start - buf_start:].clone()
                        for key, value in buffer.items()
                    }
                buf_start = clip_start
                win_end = min(buf_end + self.window_size, video_length)
                window = frames[buf_end:win_end]
                if not isinstance(window, Tensor):
                    window = list(window)
                    self._check_window_sizes(window, buf_end, frame_shape,
                                             data_sample)
                    window = torch.stack(window)
                if prepare_window is not None:
                    window = prepare_window(window)
                with torch.no_grad(), self._stage('extract'):
                    feats = extract_frame_feats(window)
                new, shared = self._split_feats(feats, win_end - buf_end,
                                                buf_end)
                del window, feats
                buffer = self._append_frames(buffer, new)
                del new
                stats['num_extract_calls'] += 1
                stats['num_extracted_frames'] += win_end - buf_end
                buf_end = win_end
                stats['max_buffered_frames'] = max(
                    stats['max_buffered_frames'], buf_end - buf_start)

            ready = next_clip
            while ready < len(schedule) and schedule[ready][1] <= buf_end:
                ready += 1
            batch_size = self.decode_batch_size or (ready - next_clip)
            for first in range(next_clip, ready, batch_size):
                batch = schedule[first:min(first + batch_size, ready)]
                clip_inds = [[f - buf_start for f in range(s, e)]
                             for s, e in batch]
                with torch.no_grad(), self._stage('decode'):
                    outs = decode_clips({**shared, **buffer}, clip_inds)
                stats['num_decode_calls'] += 1
                if len(outs) != len(batch):
                    raise ValueError(
                        f'NearOnlineInferencer: decode_clips returned '
                        f'{len(outs)} results for {len(batch)} clips')
                for offset, (clip, out) in enumerate(zip(batch, outs)):
                    following = first + offset + 1
                    next_start = schedule[following][0] \
                        if following < len(schedule) else None
                    self._process_clip(out, clip, next_start)
                del outs
            next_clip = ready
        del buffer, shared
        with self._stage('rle'):
            return self._fill_predictions(data_sample)

    def _fill_predictions(self,
                          data_sample: TrackDataSample) -> TrackDataSample:
        result = self.aggregator.finalize()
        num_pairs = len(result['track_ids'])
        # The per-pair tensors are the same in every frame and shared
        # between the frames (read-only), so the output grows only by the
        # per-frame RLE lists and boxes.
        instances_id = torch.arange(num_pairs)
        for frame, rles in enumerate(result['frame_rles']):
            instances = InstanceData()
            instances.masks = rles
            instances.bboxes = rle_boxes(rles)
            instances.scores = result['scores']
            instances.labels = result['labels']
            instances.instances_id = instances_id
            instances.track_ids = result['track_ids']
            data_sample[frame].pred_track_instances = instances
        return data_sample

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_frames={self.num_frames}, '
                f'window_size={self.window_size}, cls_thr={self.cls_thr}, '
                f'max_dets={self.max_dets}, cover_tail={self.cover_tail}, '
                f'tracker={self.tracker!r}, aggregator={self.aggregator!r})')

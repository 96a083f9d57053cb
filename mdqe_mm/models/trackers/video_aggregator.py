# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
import torch
import torch.nn.functional as F
from mmdet.models.utils import aligned_bilinear
from torch import Tensor


class VideoResultAggregator:
    """Video-level aggregation of linked clips (MDQE_SPEC §5, "Aggregation"
    and "Video output"), streamed frame by frame.

    Masks: :meth:`add_final_frame` receives, for a frame that no later clip
    covers, each track's stride-4 mask logits averaged over the clips in
    which the track appeared and that cover the frame (see
    :meth:`ClipTracker.pop_final_frames`; across a window boundary the
    earlier window's clips count as one, see
    :meth:`ClipTracker.carry_over_window`). It upsamples them
    x``mask_stride`` with ``aligned_bilinear``, crops to the unpadded input
    size, resizes to the original frame size (nearest), thresholds
    ``sigmoid > mask_thr`` and RLE-encodes them at once, so only RLEs are
    kept for finished frames.

    Classes: the class probabilities of a track are aggregated as
    ``mean_weight * mean + (1 - mean_weight) * max``:

    - ``score_aggregation='window'`` (default, the reference's scheme): the
      clips are grouped into windows of ``window_size`` consecutive clip
      starts, a window's score is the mean over the track's clips in that
      window (0 if it has none), and mean and max run over all windows of
      the video, so a track seen in few windows of a long video scores low.
      With ``window_carry`` (default), as in the reference, a window's mean
      also enters the next window as one extra clip for the tracks whose
      clips in that window reach into the next one (the frames both windows
      share).
    - ``score_aggregation='clip'``: mean and max over the clips in which the
      track appeared. It does not depend on ``window_size``. For a video of
      at most ``window_size`` clips it differs from ``'window'`` only by the
      ``(1 - mean_weight) * (max - mean)`` term.

    Output (:meth:`finalize`): multi-label, the (N x K) track scores are
    flattened and the top ``max(#scores > output_score_thr,
    min_num_outputs)`` (track, class) pairs are kept, so a track may be
    output under several classes.

    Args:
        score_aggregation (str): ``'window'`` or ``'clip'``.
            Defaults to ``'window'``.
        window_size (int): Clip starts per window for ``'window'``.
            Defaults to 30.
        window_carry (bool): Carry a window's mean score into the next
            window (``'window'`` only). Defaults to True.
        mean_weight (float): Weight of the mean. Defaults to 0.75.
        output_score_thr (float): Defaults to 0.05.
        min_num_outputs (int): Defaults to 10.
        mask_stride (int): Upsampling factor of the mask logits.
            Defaults to 4.
        mask_thr (float): Threshold on the sigmoid. Defaults to 0.5.
    """

    def __init__(self,
                 score_aggregation: str = 'window',
                 window_size: int = 30,
                 window_carry: bool = True,
                 mean_weight: float = 0.75,
                 output_score_thr: float = 0.05,
                 min_num_outputs: int = 10,
                 mask_stride: int = 4,
                 mask_thr: float = 0.5) -> None:
        if score_aggregation not in ('clip', 'window'):
            raise ValueError('VideoResultAggregator: score_aggregation must '
                             f"be 'clip' or 'window', got "
                             f'{score_aggregation!r}')
        if window_size < 1 or mask_stride < 1 or min_num_outputs < 0:
            raise ValueError(
                'VideoResultAggregator: window_size and mask_stride must be '
                '>= 1 and min_num_outputs >= 0, got '
                f'{window_size}, {mask_stride}, {min_num_outputs}')
        self.score_aggregation = score_aggregation
        self.window_size = window_size
        self.window_carry = window_carry
        self.mean_weight = mean_weight
        self.output_score_thr = output_score_thr
        self.min_num_outputs = min_num_outputs
        self.mask_stride = mask_stride
        self.mask_thr = mask_thr
        self.start_video(1, (1, 1), (1, 1))

    def start_video(self, video_length: int, img_shape: Tuple[int, int],
                    ori_shape: Tuple[int, int]) -> None:
        """Reset the state for a new video.

        Args:
            video_length (int): Number of frames.
            img_shape (tuple[int, int]): Unpadded (h, w) of the model input.
            ori_shape (tuple[int, int]): Original (h, w) of the frames.
        """
        self.video_length = int(video_length)
        self.img_shape = (int(img_shape[0]), int(img_shape[1]))
        self.ori_shape = (int(ori_shape[0]), int(ori_shape[1]))
        self.num_classes: Optional[int] = None
        self._last_clip_start = -1
        # track id -> {'sum', 'count', 'max'} (clip) or
        # window -> [sum, count, last frame covered] (window)
        self._track_scores: Dict[int, dict] = {}
        self._track_rles: Dict[int, Dict[int, dict]] = {}
        self._finished_frames = set()
        empty = np.zeros(self.ori_shape + (1, ), dtype=np.uint8, order='F')
        self._empty_rle = mask_util.encode(empty)[0]

    def add_clip(self,
                 clip_start: int,
                 track_ids: Tensor,
                 cls_probs: Tensor,
                 clip_end: Optional[int] = None) -> None:
        """Record the class probabilities of the linked detections of one
        clip.

        Args:
            clip_start (int): First frame of the clip.
            track_ids (Tensor): Track id per detection, -1 when dropped,
                shape (D,).
            cls_probs (Tensor): Rescored class probabilities, shape (D, K).
            clip_end (int, optional): Last frame of the clip (inclusive);
                decides the window carry-over. Defaults to ``clip_start``.
        """
        clip_end = int(clip_start if clip_end is None else clip_end)
        if clip_end < clip_start:
            raise ValueError(f'VideoResultAggregator: clip_end {clip_end} '
                             f'is before clip_start {clip_start}')
        self._last_clip_start = max(self._last_clip_start, int(clip_start))
        if cls_probs.shape[0] == 0:
            return
        if self.num_classes is None:
            self.num_classes = cls_probs.shape[1]
        elif cls_probs.shape[1] != self.num_classes:
            raise ValueError(
                f'VideoResultAggregator: clip at frame {clip_start} has '
                f'{cls_probs.shape[1]} classes, earlier clips had '
                f'{self.num_classes}')
        probs = cls_probs.detach().cpu().double()
        window = int(clip_start) // self.window_size
        for det_id, track_id in enumerate(track_ids.tolist()):
            if track_id < 0:
                continue
            entry = self._track_scores.setdefault(track_id, {})
            if self.score_aggregation == 'clip':
                if not entry:
                    entry.update(
                        sum=probs[det_id].clone(),
                        count=1,
                        max=probs[det_id].clone())
                else:
                    entry['sum'] += probs[det_id]
                    entry['count'] += 1
                    entry['max'] = torch.maximum(entry['max'], probs[det_id])
            else:
                acc = entry.setdefault(window, [0.0, 0, -1])
                acc[0] = acc[0] + probs[det_id]
                acc[1] += 1
                acc[2] = max(acc[2], clip_end)

    def masks_to_rles(self, mask_logits: Tensor) -> List[dict]:
        """Turn stride-4 mask logits into RLEs at the original size.

        Args:
            mask_logits (Tensor): Mask logits, shape (n, h, w).

        Returns:
            list[dict]: n RLE dicts of binary masks of shape ``ori_shape``.
        """
        if mask_logits.shape[0] == 0:
            return []
        logits = aligned_bilinear(mask_logits[:, None].float(),
                                  self.mask_stride)
        img_h, img_w = self.img_shape
        if logits.shape[-2] < img_h or logits.shape[-1] < img_w:
            raise ValueError(
                'VideoResultAggregator: upsampled masks of size '
                f'{tuple(logits.shape[-2:])} are smaller than the input '
                f'image {self.img_shape}; check mask_stride')
        probs = logits[..., :img_h, :img_w].sigmoid()
        probs = F.interpolate(probs, size=self.ori_shape, mode='nearest')
        binary = (probs[:, 0] > self.mask_thr).cpu().numpy()
        binary = np.asfortranarray(binary.transpose(1, 2, 0).astype(np.uint8))
        return mask_util.encode(binary)

    def add_final_frame(self, frame_idx: int,
                        track_logits: Dict[int, Tensor]) -> None:
        """Encode the masks of a frame that no later clip covers.

        Args:
            frame_idx (int): Video frame index.
            track_logits (dict[int, Tensor]): Track id -> mean mask logits,
                shape (h, w).
        """
        if frame_idx in self._finished_frames:
            raise RuntimeError(
                f'VideoResultAggregator: frame {frame_idx} was finished twice')
        if not 0 <= frame_idx < self.video_length:
            raise ValueError(
                f'VideoResultAggregator: frame {frame_idx} is outside the '
                f'video of {self.video_length} frames')
        self._finished_frames.add(frame_idx)
        track_ids = list(track_logits)
        if not track_ids:
            return
        rles = self.masks_to_rles(
            torch.stack([track_logits[t] for t in track_ids]))
        for track_id, rle in zip(track_ids, rles):
            self._track_rles.setdefault(track_id, {})[frame_idx] = rle

    def track_scores(self) -> Tuple[List[int], Tensor]:
        """Video-level class scores of every track with a clip.

        Returns:
            tuple[list[int], Tensor]: Track ids and their scores, shape
            (N, K) float64.
        """
        track_ids = sorted(self._track_scores)
        if not track_ids:
            return [], torch.zeros((0, self.num_classes or 0),
                                   dtype=torch.float64)
        rows = []
        for track_id in track_ids:
            entry = self._track_scores[track_id]
            if self.score_aggregation == 'clip':
                mean = entry['sum'] / entry['count']
                top = entry['max']
            else:
                per_window = self._window_scores(entry)
                mean = per_window.mean(0)
                top = per_window.max(0)[0]
            rows.append(self.mean_weight * mean + (1 - self.mean_weight) * top)
        return track_ids, torch.stack(rows)

    def _window_scores(self, entry: Dict[int, list]) -> Tensor:
        """Per-window mean class scores of one track, shape (W, K)."""
        num_windows = self._last_clip_start // self.window_size + 1
        per_window = torch.zeros((num_windows, self.num_classes),
                                 dtype=torch.float64)
        carry = None
        for window in range(num_windows):
            total, count, last_frame = entry.get(window, (0.0, 0, -1))
            if carry is not None:
                total, count = total + carry, count + 1
            if count:
                per_window[window] = total / count
            reaches_next = last_frame >= (window + 1) * self.window_size
            carry = per_window[window] \
                if self.window_carry and reaches_next else None
        return per_window

    def finalize(self) -> dict:
        """Select the output (track, class) pairs.

        Returns:
            dict: ``track_ids`` (P,) long, ``labels`` (P,) long, ``scores``
            (P,) float32, best first, and ``frame_rles``: for every frame a
            list of P RLE dicts (an empty RLE where the track has no mask;
            the dicts are shared, read-only).
        """
        missing = sorted(set(range(self.video_length)) - self._finished_frames)
        if missing:
            raise RuntimeError(
                'VideoResultAggregator: frames never finished: '
                f'{missing[:10]}{"..." if len(missing) > 10 else ""}')
        track_ids, scores = self.track_scores()
        flat = scores.flatten()
        num_out = min(
            max(
                int((flat > self.output_score_thr).sum()),
                self.min_num_outputs), flat.numel())
        top_scores, top_inds = flat.topk(num_out)
        num_classes = scores.shape[1] if scores.numel() else 1
        pair_tracks = [
            track_ids[i] for i in (top_inds // num_classes).tolist()
        ]
        labels = top_inds % num_classes
        # The RLE dicts are shared between the pairs of one track and the
        # empty RLE between all frames, so the output stays small; treat
        # them as read-only (converting ``counts`` to str in place, as
        # mmdet's YouTubeVISMetric does, is harmless).
        frame_rles = []
        for frame in range(self.video_length):
            frame_rles.append([
                self._track_rles.get(t, {}).get(frame, self._empty_rle)
                for t in pair_tracks
            ])
        return dict(
            track_ids=torch.tensor(pair_tracks, dtype=torch.long),
            labels=labels.long(),
            scores=top_scores.float(),
            frame_rles=frame_rles)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'score_aggregation={self.score_aggregation!r}, '
                f'window_size={self.window_size}, '
                f'window_carry={self.window_carry}, '
                f'mean_weight={self.mean_weight}, '
                f'output_score_thr={self.output_score_thr}, '
                f'min_num_outputs={self.min_num_outputs}, '
                f'mask_stride={self.mask_stride}, mask_thr={self.mask_thr})')


def rle_boxes(rles: Sequence[dict]) -> Tensor:
    """Tight xyxy boxes of RLE masks (zeros for empty masks).

    Args:
        rles (Sequence[dict]): RLE dicts.

    Returns:
        Tensor: Boxes, shape (P, 4) float32.
    """
    if len(rles) == 0:
        return torch.zeros((0, 4))
    xywh = torch.from_numpy(mask_util.toBbox(list(rles))).float()
    return torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)

# Copyright (c) OpenMMLab. All rights reserved.
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
import torch
import torch.nn.functional as F
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

        The result equals, mask by mask: ``aligned_bilinear`` x
        ``mask_stride``, crop to ``img_shape``, sigmoid, nearest resize to
        ``ori_shape``, ``> mask_thr``. It is computed only inside the box of
        the low-resolution pixels whose logit can reach the threshold
        (bilinear values never exceed their four source pixels): the same
        interpolation on that crop gives the same values, everything
        outside is background. The work thus scales with the objects'
        area, not the frame's, and runs on the logits' device; only the
        binary crops go to the host.

        Args:
            mask_logits (Tensor): Mask logits, shape (n, h, w).

        Returns:
            list[dict]: n RLE dicts of binary masks of shape ``ori_shape``.
        """
        num = mask_logits.shape[0]
        if num == 0:
            return []
        stride = self.mask_stride
        height, width = mask_logits.shape[-2:]
        img_h, img_w = self.img_shape
        if stride * height < img_h or stride * width < img_w:
            raise ValueError(
                'VideoResultAggregator: upsampled masks of size '
                f'{(stride * height, stride * width)} are smaller than the '
                f'input image {self.img_shape}; check mask_stride')
        logits = mask_logits.float()
        ori_h, ori_w = self.ori_shape
        # source pixel of every output row / column of the nearest resize
        # (computed by the same kernel, so the selection is identical)
        rows_src, cols_src = self._nearest_sources()
        # Fortran (ori_h, ori_w, n) uint8 == C-contiguous (n, ori_w, ori_h)
        canvas = np.zeros((num, ori_w, ori_h), dtype=np.uint8)
        # low-res pixels that may reach the threshold, with a margin for
        # the rounding of sigmoid
        thr_logit = math.log(self.mask_thr / (1 - self.mask_thr)) \
            if 0 < self.mask_thr < 1 else None
        if thr_logit is None:
            candidates = torch.ones_like(logits, dtype=torch.bool)
        else:
            candidates = logits > thr_logit - 1e-3
        row_any = candidates.any(2)
        col_any = candidates.any(1)
        present = row_any.any(1)
        first_row = row_any.float().argmax(1)
        last_row = height - 1 - row_any.flip(1).float().argmax(1)
        first_col = col_any.float().argmax(1)
        last_col = width - 1 - col_any.flip(1).float().argmax(1)
        boxes = torch.stack(
            [present.long(), first_row, last_row, first_col, last_col],
            1).tolist()
        padded = F.pad(logits[:, None], (0, 1, 0, 1), mode='replicate')
        for idx, (is_present, r0, r1, c0, c1) in enumerate(boxes):
            if not is_present:
                continue
            rows = self._crop_axis(r0, r1, height, stride, img_h, rows_src)
            cols = self._crop_axis(c0, c1, width, stride, img_w, cols_src)
            if rows is None or cols is None:
                continue
            (a, b, pad_r, y0, y1, out_r0, out_r1) = rows
            (c, d, pad_c, x0, x1, out_c0, out_c1) = cols
            crop = padded[idx:idx + 1, :, a:b + 1, c:d + 1]
            up = F.interpolate(
                crop,
                size=(stride * (b - a) + 1, stride * (d - c) + 1),
                mode='bilinear',
                align_corners=True)
            if pad_r or pad_c:
                up = F.pad(
                    up, (stride // 2 if pad_c else 0, 0,
                         stride // 2 if pad_r else 0, 0),
                    mode='replicate')
            # final pixels [y0, y1) x [x0, x1) of the image-size mask
            probs = up[0, 0, :y1 - y0, :x1 - x0].sigmoid()
            binary = probs > self.mask_thr
            rsel = rows_src[out_r0:out_r1] - y0
            csel = cols_src[out_c0:out_c1] - x0
            block = binary.index_select(0, rsel).index_select(1, csel)
            canvas[idx, out_c0:out_c1, out_r0:out_r1] = \
                block.t().cpu().numpy()
        return mask_util.encode(canvas.transpose(2, 1, 0))

    def _nearest_sources(self) -> Tuple[Tensor, Tensor]:
        """Rows / columns of the image-size mask that the nearest resize
        to ``ori_shape`` reads, cached per video."""
        key = (self.img_shape, self.ori_shape)
        if getattr(self, '_nearest_key', None) != key:
            img_h, img_w = self.img_shape
            ori_h, ori_w = self.ori_shape
            grid = torch.arange(img_h * img_w, dtype=torch.float64).view(
                1, 1, img_h, img_w)
            src = F.interpolate(grid, size=(ori_h, ori_w), mode='nearest')
            rows = (src[0, 0, :, 0] // img_w).long()
            cols = (src[0, 0, 0, :] % img_w).long()
            self._nearest_key = key
            self._nearest_src = (rows, cols)
        return self._nearest_src

    @staticmethod
    def _crop_axis(first: int, last: int, size: int, stride: int,
                   img_size: int, sources: Tensor):
        """Extent along one axis of the crop computed for one mask.

        Low-res pixels ``[first, last]`` may be foreground. The upsampled
        map is ``up[i] = interp(P, i / stride)`` with P the input padded by
        one replicated pixel, and the final pixel ``y`` reads
        ``up[max(y - stride // 2, 0)]``. Returns the padded-input range
        ``[a, b]``, whether the final crop starts at pixel 0 (replicate pad),
        the final range ``[y0, y1)`` (within the image) and the output
        range ``[o0, o1)`` whose nearest sources fall in ``[y0, y1)``; None
        when nothing of the crop lies in the image.
        """
        shift = stride // 2
        a = max(first - 1, 0)
        b = min(last + 1, size)
        at_start = a == 0
        y0 = 0 if at_start else stride * a + shift
        y1 = min(stride * b + shift + 1, stride * size, img_size)
        if y1 <= y0:
            return None
        o0 = int(torch.searchsorted(sources, y0))
        o1 = int(torch.searchsorted(sources, y1))
        if o1 <= o0:
            return None
        return a, b, at_start, y0, y1, o0, o1

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

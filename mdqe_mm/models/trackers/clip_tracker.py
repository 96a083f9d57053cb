# Copyright (c) OpenMMLab. All rights reserved.
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.registry import MODELS
from mmengine.structures import InstanceData
from scipy.optimize import linear_sum_assignment
from torch import Tensor


def bi_softmax_similarity(track_embeds: Tensor, det_embeds: Tensor) -> Tensor:
    """Bi-softmax similarity between track memories and clip detections.

    ``0.5 * (softmax over tracks + softmax over detections)`` of the dot
    products. A softmax over an axis of length 1 is constantly 1 and carries
    no information, so (as in the reference ``get_ctt_similarity``) it is
    left out of the average when only one track or only one detection is
    present; with one of each the similarity is 1.

    Args:
        track_embeds (Tensor): Track memory embeddings, shape (Ns, C).
        det_embeds (Tensor): Clip-query embeddings, shape (Nd, C).

    Returns:
        Tensor: Similarity, shape (Ns, Nd).
    """
    logits = track_embeds @ det_embeds.t()
    num_tracks, num_dets = logits.shape
    if num_tracks == 0 or num_dets == 0:
        return logits
    over_tracks = logits.softmax(dim=0)
    over_dets = logits.softmax(dim=1)
    if num_tracks == 1 and num_dets == 1:
        return 0.5 * (over_tracks + over_dets)
    use_tracks = 1.0 if num_tracks > 1 else 0.0
    use_dets = 1.0 if num_dets > 1 else 0.0
    return (use_tracks * over_tracks + use_dets * over_dets) / (
        use_tracks + use_dets)


@MODELS.register_module()
class ClipTracker:
    """Near-online linking of overlapping clips (MDQE_SPEC §5, "Linking").

    MDQE-internal in its interface: it links *clips* (post-processed clip
    outputs with clip embeddings, through :class:`NearOnlineInferencer`),
    not frames, so it is not an mmdet ``BaseTracker`` and cannot be
    MaskTrackRCNN's ``tracker``. Other clip-level models reach it through
    the inferencer (e.g. ``NearOnlineMask2FormerVideo``).

    Each call of :meth:`update` receives the post-processed detections of one
    clip (clips start at consecutive frames) and assigns them to tracks by
    Hungarian matching on ``siou_weight * mask IoU + emb_weight * embedding
    similarity``:

    - Embedding score: :func:`bi_softmax_similarity` of the clip queries
      against a per-track memory embedding, the ``exp(memory_decay * i)``
      weighted mean of the track's embeddings from the last
      ``memory_clips`` (3) clips, ``i`` being the position of the clip in
      that span (0 = oldest). Tracks unseen for fewer than
      ``long_memory_clips`` (15) clips are scored; tracks unseen for fewer
      than ``short_memory_clips`` (``max(T, 5)``) clips get the average of
      that score and the bi-softmax recomputed over the short-memory tracks
      only.
    - Mask score: IoU of the binarised (``sigmoid > mask_thr``) masks on the
      frames of the new clip that earlier clips already cover, with all
      these frames flattened jointly; the track side is the mean of its
      logits over the clips in which it appeared and that cover the frame
      (binarising ``sigmoid(mean) > 0.5`` equals binarising the sum, so this
      matches the reference's sum divided by the track's clip count). The
      IoU is 0 when either side is empty.
    - Entries ``<= siou_weight * siou_thr + emb_weight * emb_thr`` are zeroed
      and only pairs above that threshold are accepted.
    - Unmatched detections with mask IoU > ``dup_siou_thr`` or embedding
      score > ``dup_emb_thr`` against some track are duplicates and dropped;
      the rest start tracks only if their score is > ``new_track_score_thr``
      (``2 * cls_thr``). As in the reference, while no track exists yet every
      detection starts a track (the score test is not applied).
    - At most ``max_num_instances`` tracks exist; detections that would
      need a slot beyond that are dropped (counted in
      ``num_dropped_for_capacity``; the reference would fail instead).

    The tracker also keeps, for every frame still covered by an upcoming
    clip ("open" frames), the running sum and count of each track's mask
    logits. :meth:`pop_final_frames` hands out the per-frame averages of
    frames that no later clip covers and forgets them, so its memory is
    bounded by ``T`` frames whatever the video length.
    :meth:`carry_over_window` reproduces the reference's window flush
    (called by :class:`NearOnlineInferencer` with ``window_carry``).

    Args:
        num_frames (int): Clip length T at test time. Defaults to 4.
        cls_thr (float): ``APPLY_CLS_THRES``. Defaults to 0.1.
        max_num_instances (int): Track slots (120 OVIS, 70 YTVIS).
            Defaults to 120.
        siou_thr (float): Mask-IoU part of the match threshold.
            Defaults to 0.1.
        emb_thr (float): Embedding part of the match threshold.
            Defaults to 0.5.
        siou_weight (float): Weight of the mask IoU. Defaults to 1.0.
        emb_weight (float): Weight of the embedding score. Defaults to 1.0.
        long_memory_clips (int): Defaults to 15.
        short_memory_clips (int, optional): Defaults to ``max(T, 5)``.
        memory_clips (int): Clips in the memory embedding. Defaults to 3.
        memory_decay (float): Weight exponent. Defaults to 0.25.
        dup_siou_thr (float): Defaults to 0.4.
        dup_emb_thr (float): Defaults to 0.6.
        new_track_score_thr (float, optional): Defaults to ``2 * cls_thr``.
        mask_thr (float): Binarisation threshold on sigmoid probabilities.
            Defaults to 0.5.
    """

    def __init__(self,
                 num_frames: int = 4,
                 cls_thr: float = 0.1,
                 max_num_instances: int = 120,
                 siou_thr: float = 0.1,
                 emb_thr: float = 0.5,
                 siou_weight: float = 1.0,
                 emb_weight: float = 1.0,
                 long_memory_clips: int = 15,
                 short_memory_clips: Optional[int] = None,
                 memory_clips: int = 3,
                 memory_decay: float = 0.25,
                 dup_siou_thr: float = 0.4,
                 dup_emb_thr: float = 0.6,
                 new_track_score_thr: Optional[float] = None,
                 mask_thr: float = 0.5) -> None:
        for name, value in (('num_frames', num_frames), ('max_num_instances',
                                                         max_num_instances),
                            ('long_memory_clips', long_memory_clips),
                            ('memory_clips', memory_clips)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f'ClipTracker: {name} must be a positive int, got '
                    f'{value!r}')
        if short_memory_clips is None:
            short_memory_clips = max(num_frames, 5)
        if short_memory_clips < 1:
            raise ValueError('ClipTracker: short_memory_clips must be >= 1, '
                             f'got {short_memory_clips}')
        if not 0 <= cls_thr < 1:
            raise ValueError(
                f'ClipTracker: cls_thr must be in [0, 1), got {cls_thr}')
        self.num_frames = num_frames
        self.cls_thr = cls_thr
        self.max_num_instances = max_num_instances
        self.siou_thr = siou_thr
        self.emb_thr = emb_thr
        self.siou_weight = siou_weight
        self.emb_weight = emb_weight
        self.long_memory_clips = long_memory_clips
        self.short_memory_clips = short_memory_clips
        self.memory_clips = memory_clips
        self.memory_decay = memory_decay
        self.dup_siou_thr = dup_siou_thr
        self.dup_emb_thr = dup_emb_thr
        self.new_track_score_thr = (2 * cls_thr if new_track_score_thr is None
                                    else new_track_score_thr)
        self.mask_thr = mask_thr
        # clips averaged into the embedding carried over a window boundary
        # (the reference's max(3, (T - 1) // stride) at stride 1)
        self._carry_clips = max(memory_clips, num_frames - 1)
        self.reset()

    @property
    def match_thr(self) -> float:
        """float: Threshold on the combined score."""
        return self.siou_weight * self.siou_thr + \
            self.emb_weight * self.emb_thr

    @property
    def num_tracks(self) -> int:
        """int: Number of tracks started so far."""
        return len(self._unseen_clips)

    @property
    def open_frames(self) -> List[int]:
        """list[int]: Frames whose mask memory is still held."""
        return sorted(self._open_frames)

    def reset(self) -> None:
        """Forget every track (call before each video)."""
        self.num_clips = 0
        self.num_dropped_for_capacity = 0
        # Per track: clips since it was last matched, and its recent
        # (clip index, embedding) pairs.
        self._unseen_clips: List[int] = []
        self._embed_history: List[List[Tuple[int, Tensor]]] = []
        self._memory_embeds: List[Tensor] = []
        # frame index -> track id -> [logit sum (h, w), clip count]
        self._open_frames: Dict[int, Dict[int, list]] = {}

    def memory_embeddings(self) -> Tensor:
        """Tensor: The tracks' memory embeddings, shape (N, C)."""
        return torch.stack(self._memory_embeds)

    def track_mean_logits(self, frame_idx: int) -> Dict[int, Tensor]:
        """Mean mask logits of every track in an open frame.

        Args:
            frame_idx (int): Video frame index.

        Returns:
            dict[int, Tensor]: Track id -> mean logits, shape (h, w), over
            the clips in which the track appeared and that cover the frame.
        """
        return {
            track_id: logit_sum / count
            for track_id, (logit_sum,
                           count) in self._open_frames[frame_idx].items()
        }

    def embedding_scores(self, det_embeds: Tensor) -> Tensor:
        """Long/short-memory bi-softmax scores.

        Args:
            det_embeds (Tensor): Clip queries, shape (D, C).

        Returns:
            Tensor: Scores, shape (N, D); zero for tracks unseen for
            ``>= long_memory_clips`` clips.
        """
        scores = det_embeds.new_zeros((self.num_tracks, det_embeds.shape[0]))
        if self.num_tracks == 0:
            return scores
        unseen = torch.tensor(self._unseen_clips, device=det_embeds.device)
        memory = self.memory_embeddings().to(det_embeds)
        long_ids = torch.nonzero(unseen < self.long_memory_clips).flatten()
        short_ids = torch.nonzero(unseen < self.short_memory_clips).flatten()
        if long_ids.numel() > 0:
            scores[long_ids] = bi_softmax_similarity(memory[long_ids],
                                                     det_embeds)
        if short_ids.numel() > 0:
            scores[short_ids] = 0.5 * (
                scores[short_ids] +
                bi_softmax_similarity(memory[short_ids], det_embeds))
        return scores

    def mask_iou_scores(self, det_mask_logits: Tensor,
                        frame_inds: Sequence[int]) -> Tensor:
        """Mask IoU on the frames that earlier clips already cover.

        Args:
            det_mask_logits (Tensor): Detection logits, shape (D, T, h, w).
            frame_inds (Sequence[int]): Video frame index of each clip frame.

        Returns:
            Tensor: IoU, shape (N, D); all zero without overlapping frames.
        """
        num_dets = det_mask_logits.shape[0]
        ious = det_mask_logits.new_zeros((self.num_tracks, num_dets),
                                         dtype=torch.float)
        overlap = [(local, frame) for local, frame in enumerate(frame_inds)
                   if frame in self._open_frames]
        if not overlap or self.num_tracks == 0 or num_dets == 0:
            return ious
        local_inds = [local for local, _ in overlap]
        det_masks = det_mask_logits[:, local_inds].float().sigmoid()
        det_masks = (det_masks > self.mask_thr).flatten(1).float()
        # Only tracks with stored logits on the overlap can have a non-zero
        # IoU; the others keep 0 without allocating their masks.
        present = sorted(set().union(*(self._open_frames[f].keys()
                                       for _, f in overlap)))
        if not present:
            return ious
        row_of = {track_id: row for row, track_id in enumerate(present)}
        track_masks = det_masks.new_zeros((len(present), len(overlap)) +
                                          det_mask_logits.shape[-2:])
        # every (track, frame) mean at once: the same division, sigmoid and
        # threshold per element as track_mean_logits, in one batch
        rows, slots, sums, counts = [], [], [], []
        for slot, (_, frame) in enumerate(overlap):
            for track_id, (logit_sum,
                           count) in self._open_frames[frame].items():
                rows.append(row_of[track_id])
                slots.append(slot)
                sums.append(logit_sum)
                counts.append(count)
        means = torch.stack(sums) / torch.tensor(
            counts, dtype=sums[0].dtype, device=sums[0].device)[:, None,
                                                                None]
        track_masks[rows, slots] = (means.float().sigmoid() >
                                    self.mask_thr).float()
        track_masks = track_masks.flatten(1)
        inter = track_masks @ det_masks.t()
        union = track_masks.sum(1)[:, None] + det_masks.sum(1)[None] - inter
        ious[torch.tensor(present, device=ious.device)] = inter / (
            union + 1e-6)
        return ious

    def update(self, detections: InstanceData,
               frame_inds: Sequence[int]) -> Tensor:
        """Link the detections of the next clip to the tracks.

        Args:
            detections (:obj:`InstanceData`): Post-processed detections of
                one clip with ``scores`` (D,), ``mask_logits`` (D, T, h, w)
                and ``embeds`` (D, C) (see :func:`postprocess_clip`).
            frame_inds (Sequence[int]): Video frame index of each of the T
                clip frames, increasing; the clip must start after the
                previous clip's start.

        Returns:
            Tensor: Track id of each detection, shape (D,) long; -1 for
            detections dropped as duplicates, low scores or lack of slots.
        """
        frame_inds = [int(f) for f in frame_inds]
        mask_logits = detections.mask_logits
        if mask_logits.dim() != 4 or mask_logits.shape[1] != len(frame_inds):
            raise ValueError(
                f'ClipTracker.update: clip {self.num_clips} has '
                f'{len(frame_inds)} frames but mask_logits of shape '
                f'{tuple(mask_logits.shape)} (expected (D, T, h, w))')
        if any(f < 0 for f in frame_inds) or any(
                b <= a for a, b in zip(frame_inds, frame_inds[1:])):
            raise ValueError(
                f'ClipTracker.update: frame indices of clip '
                f'{self.num_clips} must be increasing and >= 0, got '
                f'{frame_inds}')
        finished = [f for f in self._open_frames if f < frame_inds[0]]
        if finished:
            raise RuntimeError(
                f'ClipTracker.update: frames {sorted(finished)} precede '
                f'clip {self.num_clips} (starting at frame {frame_inds[0]}) '
                'but were not popped with pop_final_frames(); clips must '
                'arrive in order of their start frame')
        num_dets = len(detections)
        scores = detections.scores
        assigned = torch.full((num_dets, ), -1, dtype=torch.long)

        if self.num_tracks == 0:
            new_dets = list(range(num_dets))
        else:
            emb_scores = self.embedding_scores(detections.embeds.float())
            siou_scores = self.mask_iou_scores(mask_logits, frame_inds)
            combined = self.siou_weight * siou_scores + \
                self.emb_weight * emb_scores
            above = combined > self.match_thr
            combined = combined * above
            rows, cols = linear_sum_assignment(
                combined.detach().cpu().double().numpy(), maximize=True)
            for track_id, det_id in zip(rows.tolist(), cols.tolist()):
                if above[track_id, det_id]:
                    assigned[det_id] = track_id
            new_dets = []
            for det_id in range(num_dets):
                if assigned[det_id] >= 0:
                    continue
                duplicate = bool(
                    (siou_scores[:, det_id] > self.dup_siou_thr).any()
                    or (emb_scores[:, det_id] > self.dup_emb_thr).any())
                if not duplicate and \
                        float(scores[det_id]) > self.new_track_score_thr:
                    new_dets.append(det_id)

        for det_id in new_dets:
            if self.num_tracks >= self.max_num_instances:
                self.num_dropped_for_capacity += 1
                continue
            assigned[det_id] = self.num_tracks
            self._unseen_clips.append(0)
            self._embed_history.append([])
            self._memory_embeds.append(detections.embeds[det_id].float())

        self._update_memory(detections, frame_inds, assigned)
        self.num_clips += 1
        return assigned

    def _decayed_mean(self, history: List[Tuple[int, Tensor]],
                      oldest: int) -> Optional[Tensor]:
        """``exp(memory_decay * (c - oldest))`` weighted mean of the
        embeddings of clips ``c >= oldest``; None when there are none."""
        recent = [(c, e) for c, e in history if c >= oldest]
        if not recent:
            return None
        weights = [
            math.exp(self.memory_decay * (c - oldest)) for c, _ in recent
        ]
        return sum(w * e for w, (_, e) in zip(weights, recent)) / sum(weights)

    def _update_memory(self, detections: InstanceData, frame_inds: List[int],
                       assigned: Tensor) -> None:
        clip_idx = self.num_clips
        oldest = max(clip_idx - self.memory_clips + 1, 0)
        self._unseen_clips = [n + 1 for n in self._unseen_clips]
        for frame in frame_inds:
            self._open_frames.setdefault(frame, {})
        for det_id, track_id in enumerate(assigned.tolist()):
            if track_id < 0:
                continue
            self._unseen_clips[track_id] = 0
            # keep enough clips for a window carry-over; average fewer
            keep_from = clip_idx - self._carry_clips + 1
            history = [(c, e) for c, e in self._embed_history[track_id]
                       if c >= keep_from]
            history.append((clip_idx, detections.embeds[det_id].float()))
            self._embed_history[track_id] = history
            self._memory_embeds[track_id] = self._decayed_mean(history, oldest)
            logits = detections.mask_logits[det_id].float()
            for local, frame in enumerate(frame_inds):
                entry = self._open_frames[frame].get(track_id)
                if entry is None:
                    self._open_frames[frame][track_id] = [
                        logits[local].clone(), 1
                    ]
                else:
                    entry[0] += logits[local]
                    entry[1] += 1

    def carry_over_window(self, first_clip_frame: int) -> None:
        """Compress the memory at a window boundary, as the reference does.

        The reference tracker keeps one window of clips at a time. When it
        flushes a window, it carries into the next window, as one
        pseudo-clip:

        - per track and still-open frame (frames the next window shares),
          the window's mean mask logits, so later clips average with that
          mean instead of with every earlier clip;
        - per track, the ``exp(memory_decay * i)`` weighted mean of its
          embeddings in the last ``max(memory_clips, T - 1)`` clips, which
          then stands in the memory of the next two clips in place of
          those embeddings.

        Call it before the first clip of each window but the first.

        Args:
            first_clip_frame (int): Start frame of the window's first clip;
                every open frame must be at or after it.
        """
        stale = [f for f in self._open_frames if f < first_clip_frame]
        if stale:
            raise RuntimeError(
                f'ClipTracker.carry_over_window: frames {sorted(stale)} '
                f'precede the window starting at frame {first_clip_frame}; '
                'pop them with pop_final_frames() first')
        for entries in self._open_frames.values():
            for entry in entries.values():
                entry[0] = entry[0] / entry[1]
                entry[1] = 1
        carry_idx = self.num_clips - 1  # the pseudo-clip's place
        span = min(self._carry_clips, self.num_clips)
        oldest = self.num_clips - span
        for track_id, history in enumerate(self._embed_history):
            carried = self._decayed_mean(history, oldest)
            self._embed_history[track_id] = [] if carried is None \
                else [(carry_idx, carried)]

    def pop_final_frames(
        self,
        before_frame: Optional[int] = None
    ) -> List[Tuple[int, Dict[int, Tensor]]]:
        """Hand out and forget the frames no later clip will cover.

        Args:
            before_frame (int, optional): Start frame of the next clip; all
                open frames before it are final. ``None`` (end of the video)
                pops every open frame.

        Returns:
            list[tuple[int, dict[int, Tensor]]]: ``(frame index, {track id:
            mean mask logits (h, w)})`` in frame order.
        """
        frames = sorted(f for f in self._open_frames
                        if before_frame is None or f < before_frame)
        popped = []
        for frame in frames:
            popped.append((frame, self.track_mean_logits(frame)))
            del self._open_frames[frame]
        return popped

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_frames={self.num_frames}, '
                f'cls_thr={self.cls_thr}, '
                f'max_num_instances={self.max_num_instances}, '
                f'match_thr={self.match_thr}, '
                f'long_memory_clips={self.long_memory_clips}, '
                f'short_memory_clips={self.short_memory_clips}, '
                f'num_tracks={self.num_tracks})')

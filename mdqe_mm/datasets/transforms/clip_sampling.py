# Copyright (c) OpenMMLab. All rights reserved.
import copy
from collections import defaultdict
from typing import Dict, List, Optional

import numpy as np
from mmdet.datasets.transforms import BaseFrameSample
from mmdet.registry import TRANSFORMS


@TRANSFORMS.register_module()
class ClipFrameSample(BaseFrameSample):
    """Sample a T-frame training clip from a video the way MDQE does.

    A reference frame ``r`` is drawn uniformly from the video (or taken from
    ``key_frame_id`` when a sampler provides it). The other ``T - 1`` frames
    are drawn uniformly from ``[r - frame_range, r + frame_range]`` (clipped to
    the video) without ``r``; the ``T`` indices are then sorted. Draws are
    without replacement when the window holds enough frames and with
    replacement otherwise (short videos); ``always_replace=True`` draws with
    replacement every time, as the reference code's ``np.random.choice`` does.
    A one-frame video gives ``T`` copies of its frame. With
    ``whole_video=True`` every frame is taken in order (for debugging a
    training pipeline on full videos; inference gets whole videos from the
    dataset in test mode).

    Besides the keys of :class:`BaseFrameSample` (a dict of per-frame lists,
    ``video_length = T``, ``ori_video_length`` = the video's length), it
    writes ``clip_frame_index`` (0..T-1, the position in the clip, which the
    clip-level transforms use) and ``key_frame_flags`` (True for ``r``).

    Args:
        num_frames (int): Clip length T. Defaults to 4.
        frame_range (int): Half width of the sampling window. Defaults to 10.
        always_replace (bool): Always draw with replacement. Defaults to
            False.
        whole_video (bool): Take the whole video in order. Defaults to False.
        collect_video_keys (list[str]): Video-level keys copied to every
            frame. Defaults to ``['video_id', 'video_length']``.
    """

    def __init__(self,
                 num_frames: int = 4,
                 frame_range: int = 10,
                 always_replace: bool = False,
                 whole_video: bool = False,
                 collect_video_keys: Optional[List[str]] = None) -> None:
        if not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(
                f'num_frames must be a positive int, got {num_frames!r}')
        if not isinstance(frame_range, int) or frame_range < 0:
            raise ValueError('frame_range must be a non-negative int, got '
                             f'{frame_range!r}')
        if frame_range == 0 and num_frames > 1 and not whole_video:
            raise ValueError('frame_range=0 leaves no frame to sample besides'
                             f' the reference, but num_frames={num_frames}')
        super().__init__(
            collect_video_keys=list(collect_video_keys
                                    or ['video_id', 'video_length']))
        self.num_frames = num_frames
        self.frame_range = frame_range
        self.always_replace = always_replace
        self.whole_video = whole_video

    def sample_frame_ids(self,
                         video_length: int,
                         ref_frame_id: Optional[int] = None) -> List[int]:
        """Frame indices of one clip.

        Args:
            video_length (int): Number of frames in the video.
            ref_frame_id (int, optional): The reference frame; random if None.

        Returns:
            list[int]: T sorted frame indices (the whole video when
            ``whole_video``).
        """
        if video_length < 1:
            raise ValueError('cannot sample a clip from an empty video')
        if self.whole_video:
            return list(range(video_length))
        if ref_frame_id is None:
            ref_frame_id = int(np.random.randint(video_length))
        num_others = self.num_frames - 1
        left = max(0, ref_frame_id - self.frame_range)
        right = min(video_length - 1, ref_frame_id + self.frame_range)
        candidates = [i for i in range(left, right + 1) if i != ref_frame_id]
        if num_others == 0:
            others = []
        elif not candidates:
            others = [ref_frame_id] * num_others
        else:
            replace = self.always_replace or len(candidates) < num_others
            others = np.random.choice(
                candidates, num_others, replace=replace).tolist()
        return sorted([ref_frame_id] + [int(i) for i in others])

    def prepare_data(self, video_infos: dict,
                     sampled_inds: List[int]) -> Dict[str, list]:
        """Collate the sampled frames into per-frame lists.

        Unlike the parent, frames are copied, so a frame drawn twice does not
        share mutable state (e.g. its ``instances``) with its duplicate.
        """
        results = defaultdict(list)
        for index in sampled_inds:
            frame = copy.deepcopy(video_infos['images'][index])
            for key in self.collect_video_keys:
                if key == 'video_length':
                    frame['ori_video_length'] = video_infos[key]
                    frame['video_length'] = len(sampled_inds)
                else:
                    frame[key] = video_infos[key]
            for key, value in frame.items():
                results[key].append(value)
        return results

    def transform(self, video_infos: dict) -> Dict[str, list]:
        """Sample a clip.

        Args:
            video_infos (dict): One item of a video dataset's data list.

        Returns:
            dict: Per-frame lists of the sampled frames.
        """
        ref_frame_id = video_infos.get('key_frame_id')
        if ref_frame_id is not None:
            ref_frame_id = int(ref_frame_id)
            if not 0 <= ref_frame_id < video_infos['video_length']:
                raise ValueError(
                    f'key_frame_id {ref_frame_id} is outside video '
                    f'{video_infos.get("video_id")} of length '
                    f'{video_infos["video_length"]}')
        elif not self.whole_video:
            ref_frame_id = int(np.random.randint(video_infos['video_length']))
        frame_ids = self.sample_frame_ids(video_infos['video_length'],
                                          ref_frame_id)
        results = self.prepare_data(video_infos, frame_ids)
        results['clip_frame_index'] = list(range(len(frame_ids)))
        key_frame_flags = [False] * len(frame_ids)
        if ref_frame_id is not None:
            key_frame_flags[frame_ids.index(ref_frame_id)] = True
        else:
            key_frame_flags[0] = True
        results['key_frame_flags'] = key_frame_flags
        return dict(results)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_frames={self.num_frames}, '
                f'frame_range={self.frame_range}, '
                f'always_replace={self.always_replace}, '
                f'whole_video={self.whole_video}, '
                f'collect_video_keys={self.collect_video_keys})')

# Copyright (c) OpenMMLab. All rights reserved.
import math
from typing import Dict, Sequence, Tuple

import torch.nn.functional as F
from mmdet.models.data_preprocessors import TrackDataPreprocessor
from mmdet.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class VideoStreamDataPreprocessor(TrackDataPreprocessor):
    """Track data preprocessor that leaves whole test videos as uint8.

    In training mode it is exactly :class:`TrackDataPreprocessor` (clips are
    short). In predict mode a whole video would cost ``L x 3 x H x W`` float
    values on the device, so the frames stay uint8 on the CPU: ``inputs`` is
    the list of the videos' (L, 3, H, W) tensors as collated, and the frame
    metainfo gets ``batch_input_shape`` / ``pad_shape`` of the padded size
    that :meth:`prepare_window` will produce. The streaming inferencer then
    calls :meth:`prepare_window` on one window of frames at a time.

    Args are those of :class:`TrackDataPreprocessor` (``mean``, ``std``,
    ``bgr_to_rgb``, ``pad_size_divisor``, ``pad_value``, ...).
    """

    def forward(self, data: dict, training: bool = False) -> Dict:
        """Preprocess a batch.

        Args:
            data (dict): ``inputs``: list of uint8 tensors (T, 3, H, W), one
                per video; ``data_samples``: list of TrackDataSample.
            training (bool): Training mode. Defaults to False.

        Returns:
            dict: In training mode as :class:`TrackDataPreprocessor`. In
            predict mode ``inputs`` is the list of the unchanged CPU
            tensors (T, 3, H, W) and ``data_samples`` carry the pad shapes.
        """
        if training:
            return super().forward(data, training=True)
        inputs = data['inputs']
        if isinstance(inputs, Tensor):
            inputs = list(inputs) if inputs.dim() == 5 else [inputs]
        for idx, video in enumerate(inputs):
            if not isinstance(video, Tensor) or video.dim() != 4:
                shape = tuple(video.shape) if isinstance(video,
                                                         Tensor) else None
                raise ValueError(
                    'VideoStreamDataPreprocessor: predict inputs must be '
                    f'(T, C, H, W) tensors, video {idx} is {shape}')
        data_samples = data.get('data_samples')
        if data_samples is not None:
            for video, track_sample in zip(inputs, data_samples):
                pad_shape = self.padded_shape(video.shape[-2:])
                for frame in range(len(track_sample)):
                    track_sample[frame].set_metainfo(
                        dict(batch_input_shape=pad_shape, pad_shape=pad_shape))
        return dict(inputs=list(inputs), data_samples=data_samples)

    def padded_shape(self, hw: Sequence[int]) -> Tuple[int, int]:
        """(h, w) after padding to ``pad_size_divisor``."""
        divisor = max(self.pad_size_divisor, 1)
        return tuple(
            int(math.ceil(int(size) / divisor)) * divisor for size in hw)

    def prepare_window(self, frames: Tensor) -> Tensor:
        """Normalise, pad and move one window of frames to the device.

        Args:
            frames (Tensor): Frames (M, 3, H, W) of one video, any dtype.

        Returns:
            Tensor: Float frames (M, 3, H', W') on ``self.device``, channel
            converted, normalised, then padded with ``pad_value`` to a
            multiple of ``pad_size_divisor`` (same order as
            :class:`TrackDataPreprocessor`).
        """
        if frames.dim() != 4:
            raise ValueError(
                'VideoStreamDataPreprocessor.prepare_window '
                f'expects (M, C, H, W), got {tuple(frames.shape)}')
        frames = frames.to(self.device, non_blocking=True)
        if self._channel_conversion and frames.size(1) == 3:
            frames = frames[:, [2, 1, 0]]
        frames = frames.float()
        if self._enable_normalize:
            frames = (frames - self.mean) / self.std
        pad_h, pad_w = self.padded_shape(frames.shape[-2:])
        padding = [0, pad_w - frames.shape[-1], 0, pad_h - frames.shape[-2]]
        if any(padding):
            frames = F.pad(frames, padding, value=self.pad_value)
        return frames.contiguous()

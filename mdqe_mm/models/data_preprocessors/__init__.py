# Copyright (c) OpenMMLab. All rights reserved.
from .video_stream_data_preprocessor import VideoStreamDataPreprocessor

__all__ = ['VideoStreamDataPreprocessor']

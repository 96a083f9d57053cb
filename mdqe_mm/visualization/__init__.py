# Copyright (c) OpenMMLab. All rights reserved.
from .palette import get_palette, id_color, text_color
from .vis_local_visualizer import (VISLocalVisualizer, blend, decode_masks,
                                   label_rect)
from .vis_visualization_hook import VISVisualizationHook, frame_output_name

__all__ = [
    'VISLocalVisualizer', 'VISVisualizationHook', 'blend', 'decode_masks',
    'frame_output_name', 'get_palette', 'id_color', 'label_rect', 'text_color'
]

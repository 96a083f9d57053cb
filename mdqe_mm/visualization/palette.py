# Copyright (c) OpenMMLab. All rights reserved.
"""A small colour palette for tracks and classes (no seaborn needed).

Colours are a pure function of an integer id, so a track keeps its colour in
every frame of a video (and across runs), and consecutive ids get clearly
different hues: the hue steps by the golden ratio conjugate, which spreads
any number of ids evenly around the colour wheel, and saturation/value
alternate between three levels so that ids of similar hue still differ.
"""
import colorsys
from typing import List, Tuple

_GOLDEN = 0.618033988749895
_SATURATION = (0.85, 0.65, 1.0)
_VALUE = (0.95, 0.8, 1.0)

Color = Tuple[int, int, int]


def id_color(index: int) -> Color:
    """The RGB colour of an id.

    Args:
        index (int): Any integer (track id, class index, ...).

    Returns:
        tuple[int, int, int]: RGB values in [0, 255].
    """
    index = int(index)
    hue = (0.07 + index * _GOLDEN) % 1.0
    level = (index // 7) % 3
    r, g, b = colorsys.hsv_to_rgb(hue, _SATURATION[level], _VALUE[level])
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def get_palette(num_colors: int) -> List[Color]:
    """The RGB colours of ids ``0 .. num_colors - 1``."""
    if num_colors < 0:
        raise ValueError(f'num_colors must be >= 0, got {num_colors}')
    return [id_color(i) for i in range(num_colors)]


def text_color(background: Color) -> Color:
    """Black or white, whichever reads better on ``background`` (RGB)."""
    r, g, b = background
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    return (0, 0, 0) if luma > 140 else (255, 255, 255)

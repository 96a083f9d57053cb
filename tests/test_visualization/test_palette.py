# Copyright (c) OpenMMLab. All rights reserved.
import pytest

from mdqe_mm.visualization import get_palette, id_color, text_color


def test_id_color_is_a_deterministic_rgb_triple():
    for index in (0, 1, 7, 123, 10**6):
        color = id_color(index)
        assert color == id_color(index)
        assert len(color) == 3
        assert all(isinstance(c, int) and 0 <= c <= 255 for c in color)


def test_first_ids_get_distinct_colours():
    colors = get_palette(64)
    assert len(colors) == 64
    # pairwise L1 distance: neighbours in id order differ clearly, and no two
    # of the first 64 ids share a colour
    for i, a in enumerate(colors):
        for b in colors[i + 1:]:
            assert sum(abs(x - y) for x, y in zip(a, b)) > 0
    for a, b in zip(colors, colors[1:]):
        assert sum(abs(x - y) for x, y in zip(a, b)) >= 60


def test_get_palette_rejects_negative():
    with pytest.raises(ValueError, match='num_colors'):
        get_palette(-1)


def test_text_color_contrast():
    assert text_color((255, 255, 0)) == (0, 0, 0)
    assert text_color((0, 0, 128)) == (255, 255, 255)

# Copyright (c) OpenMMLab. All rights reserved.
import sys

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from mmdet.registry import VISUALIZERS
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mdqe_mm.visualization import VISLocalVisualizer, decode_masks, id_color

H, W = 90, 140
FONT_SCALE = 0.35
ALPHA = 0.5


def _image(seed=0):
    return np.random.default_rng(seed).integers(
        0, 256, size=(H, W, 3), dtype=np.uint8)


def _masks():
    yy, xx = np.mgrid[:H, :W]
    disc = (yy - 60)**2 + (xx - 35)**2 <= 15**2
    rect = np.zeros((H, W), bool)
    rect[40:80, 80:125] = True
    faint = np.zeros((H, W), bool)
    faint[5:15, 5:20] = True  # scores below the threshold
    return np.stack([disc, rect, faint])


def _rle(mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


def _expected_label_box(text, mask):
    """Independent reference: the label box sits right above the mask's
    box, left-aligned, sized by OpenCV's text metrics plus 1 px padding."""
    (tw, th), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX,
                                         FONT_SCALE, 1)
    ys, xs = np.nonzero(mask)
    x0, y1 = xs.min(), ys.min()
    return x0, y1 - (th + baseline + 2), x0 + tw + 2, y1


def _interior(mask):
    """Mask pixels whose 4 neighbours are in the mask too."""
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    inner[0], inner[-1], inner[:, 0], inner[:, -1] = False, False, False, \
        False
    return inner


@pytest.fixture
def visualizer():
    vis = VISUALIZERS.build(
        dict(
            type='VISLocalVisualizer',
            name=f'test_vis_{np.random.randint(1 << 30)}',
            alpha=ALPHA,
            font_scale=FONT_SCALE))
    vis.dataset_meta = dict(classes=('disc', 'square', 'triangle', 'cross'))
    return vis


def test_pred_pixels_png(visualizer, tmp_path, monkeypatch):
    # drawing must not need seaborn (mmdet's TrackLocalVisualizer does)
    monkeypatch.setitem(sys.modules, 'seaborn', None)
    image = _image()
    masks = _masks()
    sample = DetDataSample()
    sample.pred_track_instances = InstanceData(
        masks=[_rle(m) for m in masks],
        scores=torch.tensor([0.9, 0.8, 0.1]),
        labels=torch.tensor([0, 1, 3]),
        track_ids=torch.tensor([3, 7, 11]),
        instances_id=torch.tensor([0, 1, 2]))
    out_file = str(tmp_path / 'frame.png')
    visualizer.add_datasample(
        'frame', image, sample, out_file=out_file, pred_score_thr=0.3)
    drawn = cv2.imread(out_file)[..., ::-1]  # lossless PNG, back to RGB
    assert drawn.shape == image.shape
    np.testing.assert_array_equal(drawn, visualizer.get_image())

    changed_allowed = np.zeros((H, W), bool)
    for mask, track, label, score in ((masks[0], 3, 'disc', 0.9),
                                      (masks[1], 7, 'square', 0.8)):
        color = np.array(id_color(track), np.float64)
        # interior: translucent fill, exactly (1 - a) * pixel + a * colour
        inner = _interior(mask)
        expected = np.rint(image[inner].astype(np.float64) * (1 - ALPHA) +
                           color * ALPHA)
        np.testing.assert_array_equal(drawn[inner], expected)
        # boundary: the outline, in the track colour
        edge = mask & ~inner
        np.testing.assert_array_equal(drawn[edge],
                                      np.broadcast_to(color, (edge.sum(), 3)))
        x0, y0, x1, y1 = _expected_label_box(f'{track} {label} {score:.2f}',
                                             mask)
        # the label box is filled with the colour around the text
        np.testing.assert_array_equal(drawn[y0, x0], color)
        np.testing.assert_array_equal(drawn[y1 - 1, x1 - 1], color)
        changed_allowed[y0:y1, x0:x1] = True
        changed_allowed |= mask
    # everything else, including the low-score mask, is untouched
    np.testing.assert_array_equal(drawn[~changed_allowed],
                                  image[~changed_allowed])
    assert (drawn[masks[2]] == image[masks[2]]).all()


def test_same_id_same_colour_across_frames(visualizer):
    masks = _masks()[:2]
    colours = []
    for seed in range(3):
        image = _image(seed)
        out = visualizer.draw_vis_instances(image, masks, [5, 5])
        inner = _interior(masks[0])
        # recover the fill colour: c = (out - (1 - a) * img) / a
        est = (out[inner].astype(np.float64) -
               (1 - ALPHA) * image[inner]) / ALPHA
        colours.append(np.median(est, axis=0))
    for c in colours:
        np.testing.assert_allclose(c, id_color(5), atol=1.0)


def test_gt_and_pred_side_by_side(visualizer):
    image = _image()
    masks = _masks()[:2]
    sample = DetDataSample()
    sample.gt_instances = InstanceData(
        masks=masks,
        labels=np.array([0, 1]),
        instances_ids=np.array([21, 22]),
        occlusion=['no_occlusion', 'severe_occlusion'])
    sample.pred_track_instances = InstanceData(
        masks=torch.from_numpy(masks[:1]),
        scores=torch.tensor([0.95]),
        labels=torch.tensor([0]),
        instances_id=torch.tensor([4]))
    visualizer.add_datasample('f', image, sample, pred_score_thr=0.3)
    drawn = visualizer.get_image()
    assert drawn.shape == (H, 2 * W, 3)
    left, right = drawn[:, :W], drawn[:, W:]
    inner = _interior(masks[1])
    inner[:70] = False  # clear of the labels (stacked down to row 66)
    # the rectangle is ground truth only: coloured left, untouched right
    np.testing.assert_array_equal(
        left[inner],
        np.rint(image[inner] * (1 - ALPHA) + np.array(id_color(22)) * ALPHA))
    np.testing.assert_array_equal(right[inner], image[inner])
    # pred ids fall back to instances_id without track_ids
    inner0 = _interior(masks[0])
    np.testing.assert_array_equal(
        right[inner0],
        np.rint(image[inner0] * (1 - ALPHA) + np.array(id_color(4)) * ALPHA))
    # only gt / only pred
    visualizer.add_datasample('f', image, sample, draw_gt=False)
    assert visualizer.get_image().shape == (H, W, 3)


def test_overlapping_labels_are_stacked(visualizer):
    image = _image()
    mask = np.zeros((2, H, W), bool)
    mask[:, 50:70, 40:90] = True
    visualizer.draw_vis_instances(image, mask, [1, 2], ['1 a', '2 b'])
    (a, b) = visualizer.label_rects
    assert a[3] <= b[1] or b[3] <= a[1]  # no vertical overlap


def test_decode_masks_formats():
    masks = _masks()
    rle = _rle(masks[0])
    rle_bytes = dict(size=rle['size'], counts=rle['counts'].encode())
    uncompressed = dict(size=[H, W], counts=[0, H * W])  # all foreground
    polygon = [[80.0, 40.0, 125.0, 40.0, 125.0, 80.0, 80.0, 80.0]]
    out = decode_masks([rle, rle_bytes, None, masks[1], uncompressed, polygon],
                       (H, W))
    assert out.shape == (6, H, W) and out.dtype == bool
    np.testing.assert_array_equal(out[0], masks[0])
    np.testing.assert_array_equal(out[1], masks[0])
    assert not out[2].any()
    np.testing.assert_array_equal(out[3], masks[1])
    assert out[4].all()
    # the polygon covers the rectangle (pycocotools rasterises the border)
    assert out[5][masks[1]].mean() > 0.9
    np.testing.assert_array_equal(
        decode_masks(torch.from_numpy(masks).float(), (H, W)), masks)
    assert decode_masks([], (H, W)).shape == (0, H, W)
    with pytest.raises(ValueError, match='size'):
        decode_masks([_rle(np.zeros((10, 10), bool))], (H, W))


def test_bad_arguments():
    with pytest.raises(ValueError, match='alpha'):
        VISLocalVisualizer(name='bad_alpha', alpha=1.5)
    vis = VISLocalVisualizer(name='bad_shapes')
    with pytest.raises(ValueError, match='masks but'):
        vis.draw_vis_instances(_image(), _masks(), [1])
    with pytest.raises(ValueError, match='shape'):
        vis.draw_vis_instances(_image(), np.zeros((1, 5, 5), bool), [1])

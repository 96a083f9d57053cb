# Copyright (c) OpenMMLab. All rights reserved.
import pytest
import torch
from mmdet.registry import TASK_UTILS

from mdqe_mm.models.task_modules import ClipPeakAssigner


def ref_assign(binary, boxes, labels, valid, height, width, num_classes,
               overwrite):
    """Loops over frames, instances and pixels, in float64."""
    num_g, num_t = len(boxes), len(boxes[0])
    pixels = [(i, j) for i in range(height) for j in range(width)]

    def wh(b):
        return b[2] - b[0], b[3] - b[1]

    areas = [
        sum(wh(b)[0] * wh(b)[1] for b in boxes[g]) / num_t
        for g in range(num_g)
    ]
    order = sorted(range(num_g), key=lambda g: areas[g])
    usable = [
        any(wh(b)[0] > 0 and wh(b)[1] > 0 for b in boxes[g]) and labels[g] >= 0
        for g in range(num_g)
    ]
    d = {}
    for g in range(num_g):
        for t in range(num_t):
            b = boxes[g][t]
            cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
            w, h = max(wh(b)[0], 0.05), max(wh(b)[1], 0.05)
            for (i, j) in pixels:
                px, py = (j + 0.5) / width, (i + 0.5) / height
                d[g, t, i, j] = ((cx - px) / w)**2 + ((cy - py) / h)**2
    out_labels = torch.full((num_t, height, width), -1)
    out_ids = torch.full((num_t, height, width), -1)
    out_dist = torch.zeros(num_t, height, width, dtype=torch.float64)
    out_class = torch.zeros(
        num_t, height, width, num_classes, dtype=torch.float64)
    for t in range(num_t):
        claimed = set()
        for g in order:
            if not usable[g] or not valid[g][t]:
                continue
            cands = [
                (i, j) for (i, j) in pixels
                if binary[g][t][i][j] and (overwrite or (i, j) not in claimed)
            ]
            if not cands:
                cands = [min(pixels, key=lambda p: d[g, t, p[0], p[1]])]
            for (i, j) in cands:
                val = 1 - 2 * min(max(d[g, t, i, j], 0.0), 0.5)
                out_labels[t, i, j] = labels[g]
                out_ids[t, i, j] = g
                out_dist[t, i, j] = val
                out_class[t, i, j, labels[g]] = val
            for (i, j) in cands:
                claimed.add((i, j))
                for g2 in range(num_g):
                    d[g2, t, i, j] = 1e9
    return out_labels, out_ids, out_dist, out_class


def hand_made_clip():
    """8x8 map, T=2. A (small, class 1) lies inside B (large, class 2)."""
    size = 8
    masks = torch.zeros(4, 2, size, size)
    boxes = torch.zeros(4, 2, 4)
    valid = torch.zeros(4, 2, dtype=torch.bool)
    labels = torch.tensor([2, 1, 0, 1])
    # B: rows/cols 1..5 in both frames.
    masks[0, :, 1:6, 1:6] = 1
    boxes[0, :] = torch.tensor([1 / 8, 1 / 8, 6 / 8, 6 / 8])
    valid[0] = True
    # A: rows/cols 2..3 in frame 0, absent in frame 1.
    masks[1, 0, 2:4, 2:4] = 1
    boxes[1, 0] = torch.tensor([2 / 8, 2 / 8, 4 / 8, 4 / 8])
    valid[1, 0] = True
    # C: a thin object whose mask vanishes at stride 8 -> nearest pixel.
    boxes[2, :] = torch.tensor([0.86, 0.83, 0.90, 0.95])
    valid[2] = True
    # D: never has a box -> ignored even though a mask is given.
    masks[3, :, 6:, :2] = 1
    return masks, boxes, labels, valid


@pytest.mark.parametrize('overwrite', [True, False])
def test_hand_made_clip_matches_reference(overwrite):
    masks, boxes, labels, valid = hand_made_clip()
    assigner = TASK_UTILS.build(
        dict(
            type='ClipPeakAssigner',
            num_classes=3,
            overwrite_claimed_pixels=overwrite))
    out = assigner.assign(masks, boxes, labels, valid, (8, 8))
    exp = ref_assign((masks > 0.5).tolist(),
                     boxes.double().tolist(), labels.tolist(), valid.tolist(),
                     8, 8, 3, overwrite)
    assert torch.equal(out['labels'], exp[0])
    assert torch.equal(out['inst_ids'], exp[1])
    assert torch.allclose(out['dist'].double(), exp[2], atol=1e-6)
    assert torch.allclose(out['class_dist'].double(), exp[3], atol=1e-6)

    # C falls back to the single pixel nearest its centre (row 7, col 7).
    assert (out['inst_ids'] == 2).sum(dim=(1, 2)).tolist() == [1, 1]
    assert out['inst_ids'][0, 7, 7] == 2
    assert (out['inst_ids'] == 3).sum() == 0
    # A is absent in frame 1.
    assert (out['inst_ids'][1] == 1).sum() == 0
    a_pixels = out['inst_ids'][0, 2:4, 2:4]
    if overwrite:
        # The larger B overwrites A's pixels with distance target 0, and the
        # class-1 channel keeps A's value.
        assert (a_pixels == 0).all()
        assert (out['labels'][0, 2:4, 2:4] == 2).all()
        assert (out['dist'][0, 2:4, 2:4] == 0).all()
        assert (out['class_dist'][0, 2:4, 2:4, 1] > 0).all()
    else:
        assert (a_pixels == 1).all()
        assert (out['labels'][0, 2:4, 2:4] == 1).all()
        assert (out['dist'][0, 2:4, 2:4] > 0).all()
    # The squared normalised distance: B's pixel (row 1, col 3) in frame 1
    # has offsets (0, 2/5), so d = 0.16 and dist = 0.68 (0.2 with a plain
    # norm).
    assert out['dist'][1, 1, 3].item() == pytest.approx(0.68, abs=1e-6)


def test_masks_are_resized_bilinearly():
    masks, boxes, labels, valid = hand_made_clip()
    # 2x block-constant masks: bilinear (align_corners=False) downsampling
    # by 2 averages each 2x2 block, so the stride-8 masks are unchanged.
    big = masks.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    assigner = ClipPeakAssigner()
    small_out = assigner.assign(masks, boxes, labels, valid, (8, 8))
    big_out = assigner.assign(big, boxes, labels, valid, (8, 8))
    for key in ('labels', 'inst_ids', 'dist'):
        assert torch.equal(small_out[key], big_out[key])
    assert 'class_dist' not in small_out


def test_random_clip_matches_reference():
    gen = torch.Generator().manual_seed(0)
    num_g, num_t, height, width = 5, 3, 6, 7
    xy = torch.rand(num_g, num_t, 2, generator=gen) * 0.6
    box_wh = torch.rand(num_g, num_t, 2, generator=gen) * 0.4 + 0.02
    boxes = torch.cat([xy, xy + box_wh], -1)
    valid = torch.rand(num_g, num_t, generator=gen) > 0.2
    boxes[~valid] = 0
    masks = (torch.rand(num_g, num_t, height, width, generator=gen)
             > 0.7).float()
    masks[~valid] = 0
    labels = torch.randint(0, 4, (num_g, ), generator=gen)
    for overwrite in (True, False):
        out = ClipPeakAssigner(
            num_classes=4,
            overwrite_claimed_pixels=overwrite).assign(masks, boxes, labels,
                                                       valid, (height, width))
        exp = ref_assign((masks > 0.5).tolist(),
                         boxes.double().tolist(), labels.tolist(),
                         valid.tolist(), height, width, 4, overwrite)
        assert torch.equal(out['labels'], exp[0])
        assert torch.equal(out['inst_ids'], exp[1])
        assert torch.allclose(out['dist'].double(), exp[2], atol=1e-5)
        assert torch.allclose(out['class_dist'].double(), exp[3], atol=1e-5)


def test_empty_and_errors():
    assigner = ClipPeakAssigner(num_classes=3)
    out = assigner.assign(
        torch.zeros(0, 2, 8, 8), torch.zeros(0, 2, 4),
        torch.zeros(0, dtype=torch.long), torch.zeros(0, 2, dtype=torch.bool),
        (4, 5))
    assert out['labels'].shape == (2, 4, 5) and (out['labels'] == -1).all()
    assert out['class_dist'].shape == (2, 4, 5, 3)
    masks, boxes, labels, valid = hand_made_clip()
    with pytest.raises(ValueError, match='gt_boxes'):
        assigner.assign(masks, boxes[:, :1], labels, valid, (8, 8))
    with pytest.raises(ValueError, match='out of range'):
        assigner.assign(masks, boxes, labels + 2, valid, (8, 8))
    with pytest.raises(ValueError):
        ClipPeakAssigner(min_box_size=0)


@pytest.mark.parametrize('device', [
    'cpu',
    pytest.param(
        'cuda',
        marks=pytest.mark.skipif(
            not torch.cuda.is_available(), reason='requires CUDA'))
])
def test_device_consistency(device):
    masks, boxes, labels, valid = hand_made_clip()
    assigner = ClipPeakAssigner(num_classes=3)
    ref = assigner.assign(masks, boxes, labels, valid, (8, 8))
    out = assigner.assign(
        masks.to(device), boxes.to(device), labels.to(device),
        valid.to(device), (8, 8))
    for key, value in ref.items():
        assert out[key].device.type == device
        assert torch.allclose(out[key].cpu().double(), value.double())

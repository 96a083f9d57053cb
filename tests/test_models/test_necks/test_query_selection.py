# Copyright (c) OpenMMLab. All rights reserved.
import math
from unittest import TestCase

import numpy as np
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import mdqe_mm  # noqa: F401
from mdqe_mm.models.necks import GridQuerySelection, split_levels


def build_neck(**kwargs):
    cfg = dict(
        num_classes=3,
        embed_dims=16,
        num_queries=196,
        embed_channels=8,
        train_window=2)
    cfg.update(kwargs)
    return GridQuerySelection(**cfg)


def bilinear_resize_ref(img, out_h, out_w):
    """float64 bilinear resize, align_corners=False (half-pixel)."""
    in_h, in_w = img.shape
    out = np.zeros((out_h, out_w))
    for i in range(out_h):
        sy = max((i + 0.5) * in_h / out_h - 0.5, 0.0)
        y0 = min(int(math.floor(sy)), in_h - 1)
        y1 = min(y0 + 1, in_h - 1)
        ly = sy - y0
        for j in range(out_w):
            sx = max((j + 0.5) * in_w / out_w - 0.5, 0.0)
            x0 = min(int(math.floor(sx)), in_w - 1)
            x1 = min(x0 + 1, in_w - 1)
            lx = sx - x0
            out[i, j] = ((1 - ly) * (1 - lx) * img[y0, x0] +
                         (1 - ly) * lx * img[y0, x1] + ly *
                         (1 - lx) * img[y1, x0] + ly * lx * img[y1, x1])
    return out


def grid_peaks_ref(logits, grid, tol=1e-6):
    """float64 loops: the argmax set (values within ``tol`` of the cell max)
    of every grid cell of the upsampled objectness map.

    Returns:
        tuple: (up_h, up_w, list of sets of (row, col) per cell, row-major).
    """
    height, width, _ = logits.shape
    score = (1 / (1 + np.exp(-logits))).max(-1)
    up_h = (2 * height // grid + 1) * grid
    up_w = (2 * width // grid + 1) * grid
    up = bilinear_resize_ref(score, up_h, up_w)
    cell_h, cell_w = up_h // grid, up_w // grid
    peaks = []
    for gr in range(grid):
        for gc in range(grid):
            cell = up[gr * cell_h:(gr + 1) * cell_h,
                      gc * cell_w:(gc + 1) * cell_w]
            best = cell.max()
            peaks.append({(gr * cell_h + r, gc * cell_w + c)
                          for r, c in zip(*np.nonzero(cell >= best - tol))})
    return up_h, up_w, peaks


def bilinear_sample_border_ref(fmap, x, y):
    """float64 grid_sample(bilinear, border, align_corners=False)."""
    channels, height, width = fmap.shape
    px = min(max(x * width - 0.5, 0.0), width - 1)
    py = min(max(y * height - 0.5, 0.0), height - 1)
    x0, y0 = int(math.floor(px)), int(math.floor(py))
    x1, y1 = min(x0 + 1, width - 1), min(y0 + 1, height - 1)
    lx, ly = px - x0, py - y0
    return ((1 - ly) * (1 - lx) * fmap[:, y0, x0] +
            (1 - ly) * lx * fmap[:, y0, x1] + ly * (1 - lx) * fmap[:, y1, x0] +
            ly * lx * fmap[:, y1, x1])


def associate_ref(embeds, grid, window):
    """float64 loops of the windowed association to the centre frame."""
    num_clips, num_frames, num_queries, _ = embeds.shape
    centre = (num_frames - 1) // 2
    out = np.zeros((num_clips, num_frames, num_queries), dtype=np.int64)
    for n in range(num_clips):
        for t in range(num_frames):
            gap = abs(t - centre)
            for k in range(num_queries):
                kr, kc = divmod(k, grid)
                best, best_q = -np.inf, None
                for q in range(num_queries):
                    qr, qc = divmod(q, grid)
                    if abs(qr - kr) > window * gap or \
                            abs(qc - kc) > window * gap:
                        continue
                    val = float(embeds[n, t, q] @ embeds[n, centre, k])
                    if val > best:
                        best, best_q = val, q
                out[n, t, k] = best_q
    return out


class TestGridQuerySelection(TestCase):

    @classmethod
    def setUpClass(cls):
        init_default_scope('mmdet')

    def test_init_validation(self):
        with self.assertRaisesRegex(ValueError, 'perfect square'):
            build_neck(num_queries=200)
        with self.assertRaisesRegex(ValueError, 'windows'):
            build_neck(train_window=-1)
        neck = build_neck(train_window=5)
        self.assertEqual(neck.test_window, 2.5)
        self.assertEqual(neck.num_grid, 14)

    def test_grid_peaks_vs_reference(self):
        rng = np.random.RandomState(0)
        neck = build_neck()
        # 9x13 map: upsampled to 28x28, cells of 2x2
        # 24x40 map: upsampled to 56x84, cells of 4x6
        for height, width in ((9, 13), (24, 40)):
            logits = rng.randn(2, height, width, 3) * 3
            logits[0, 3, 5, 1] = 12.0  # a clear peak
            for quirk in (True, False):
                neck.true_division_y = quirk
                got = neck.select_grid_peaks(
                    torch.tensor(logits, dtype=torch.float32)).double()
                self.assertEqual(tuple(got.shape), (2, 196, 2))
                for m in range(2):
                    up_h, up_w, peaks = grid_peaks_ref(logits[m], 14)
                    # exact ties happen where the bilinear upsampling clamps
                    # at the borders; any member of the argmax set is right
                    unique = 0
                    for q, (x, y) in enumerate(got[m].tolist()):
                        col = int(round(x * up_w))
                        row = int(math.floor(y * up_h + 0.5 / up_w)) if quirk \
                            else int(round(y * up_h))
                        self.assertIn((row, col), peaks[q], f'cell {q}')
                        self.assertAlmostEqual(x, col / up_w, places=6)
                        ref_y = (row * up_w + col) / up_w / up_h if quirk \
                            else row / up_h
                        self.assertAlmostEqual(y, ref_y, places=6)
                        unique += len(peaks[q]) == 1
                    self.assertGreater(unique, 150)

    def test_true_division_y_quirk(self):
        # one peak per cell at a known place: the y quirk adds col/W_up/H_up
        neck = build_neck()
        logits = torch.full((1, 6, 6, 1), -5.0)  # upsampled to 14x14
        logits[0, 3, 4, 0] = 5.0
        neck.true_division_y = True
        quirk = neck.select_grid_peaks(logits)
        neck.true_division_y = False
        plain = neck.select_grid_peaks(logits)
        np.testing.assert_allclose(quirk[..., 0], plain[..., 0])
        # 1x1 cells: query q sits at row q // 14, col q % 14
        rows = torch.arange(196) // 14
        cols = torch.arange(196) % 14
        np.testing.assert_allclose(plain[0, :, 0], cols / 14., atol=1e-7)
        np.testing.assert_allclose(plain[0, :, 1], rows / 14., atol=1e-7)
        np.testing.assert_allclose(
            quirk[0, :, 1] - plain[0, :, 1], cols / 14. / 14., atol=1e-6)

    def test_sample_query_features_vs_reference(self):
        rng = np.random.RandomState(1)
        shapes = [(6, 8), (3, 4), (2, 2), (1, 1)]
        maps = [rng.randn(2, 5, h, w) for h, w in shapes]
        memory = torch.cat([
            torch.tensor(m, dtype=torch.float32).flatten(2).transpose(1, 2)
            for m in maps
        ], 1)
        spatial_shapes = torch.tensor(shapes)
        starts = torch.tensor([0, 48, 60, 64])
        xy = rng.rand(2, 7, 2)
        xy[0, 0] = (0.0, 0.999)  # border region
        got = GridQuerySelection.sample_query_features(
            memory, torch.tensor(xy, dtype=torch.float32), spatial_shapes,
            starts)
        self.assertEqual(tuple(got.shape), (2, 7, 5))
        for m in range(2):
            for q in range(7):
                ref = np.mean([
                    bilinear_sample_border_ref(level[m], *xy[m, q])
                    for level in maps
                ], 0)
                np.testing.assert_allclose(
                    got[m, q].numpy(), ref, rtol=0, atol=1e-5)
        # split_levels is the inverse of the flattening
        for level, ref in zip(
                split_levels(memory, spatial_shapes, starts), maps):
            np.testing.assert_allclose(level.numpy(), ref, atol=1e-6)

    def test_association_vs_reference(self):
        rng = np.random.RandomState(2)
        neck = build_neck(num_queries=16)  # 4x4 grid
        embeds = rng.randn(2, 3, 16, 4)
        for window in (0, 1, 1.5, 5):
            got = neck.associate(
                torch.tensor(embeds, dtype=torch.float32), window)
            ref = associate_ref(embeds, 4, window)
            np.testing.assert_array_equal(got.numpy(), ref)
        # the centre frame maps to itself whatever the similarity
        got = neck.associate(torch.tensor(embeds, dtype=torch.float32), 1)
        np.testing.assert_array_equal(got[:, 1].numpy(),
                                      np.tile(np.arange(16), (2, 1)))

    def test_association_window(self):
        neck = build_neck(num_queries=16)  # 4x4 grid
        embeds = torch.zeros(1, 3, 16, 2)
        embeds[0, 1, 0] = torch.tensor([1., 0.])  # centre query k=0 (0, 0)
        # frame 0: a very similar query far away (cell (3, 3)) and a weaker
        # one inside the window (cell (1, 1)); frame 2: only far ones
        embeds[0, 0, 15] = torch.tensor([10., 0.])
        embeds[0, 0, 5] = torch.tensor([1., 0.])
        embeds[0, 2, 15] = torch.tensor([10., 0.])
        inds = neck.associate(embeds, window=1)
        self.assertEqual(int(inds[0, 0, 0]), 5)  # outside window ignored
        self.assertNotEqual(int(inds[0, 2, 0]), 15)
        inds = neck.associate(embeds, window=3)
        self.assertEqual(int(inds[0, 0, 0]), 15)  # now inside
        self.assertEqual(int(inds[0, 2, 0]), 15)
        # not one-to-one: centre queries 0 and 1 both pick query 15
        embeds[0, 1, 1] = torch.tensor([1., 0.])
        inds = neck.associate(embeds, window=3)
        self.assertEqual(int(inds[0, 0, 0]), int(inds[0, 0, 1]))

    def test_forward_and_loss(self):
        torch.manual_seed(0)
        neck = build_neck(num_queries=64)
        neck.init_weights()
        self.assertTrue(
            torch.allclose(neck.rpn_cls_embed.layers[-1].bias,
                           torch.full((3, ), -math.log(99.))))
        shapes = torch.tensor([[8, 12], [4, 6], [2, 3], [1, 2]])
        starts = torch.tensor([0, 96, 120, 126])
        num_clips, num_frames = 2, 3
        memory = torch.randn(
            num_clips * num_frames, 128, 16, requires_grad=True)
        neck.train()
        outs = neck(memory, shapes, starts, num_frames=num_frames)
        expected = dict(
            sem_logits=(6, 8, 12, 3),
            query=(6, 64, 16),
            query_xy=(6, 64, 2),
            query_embeds=(2, 3, 64, 8),
            query_xy_unaligned=(6, 64, 2),
            assoc_inds=(2, 3, 64))
        for key, shape in expected.items():
            self.assertEqual(tuple(outs[key].shape), shape, key)
        unaligned = neck.sample_query_features(memory,
                                               outs['query_xy_unaligned'],
                                               shapes, starts)
        flat = outs['assoc_inds'].flatten(0, 1)
        for row in range(6):
            torch.testing.assert_close(outs['query'][row],
                                       unaligned[row, flat[row]])
            torch.testing.assert_close(
                outs['query_xy'][row], outs['query_xy_unaligned'][row,
                                                                  flat[row]])
        with self.assertRaisesRegex(ValueError, 'num_frames'):
            neck(memory, shapes, starts, num_frames=4)

        # clip targets at a 64x96 padded input
        targets = []
        for _ in range(num_clips):
            masks = torch.zeros(2, num_frames, 64, 96)
            masks[0, :, 8:32, 8:40] = 1
            masks[1, :2, 30:60, 50:90] = 1
            boxes = torch.tensor([[8 / 96, 8 / 64, 40 / 96, 32 / 64],
                                  [50 / 96, 30 / 64, 90 / 96, 60 / 64]])
            boxes = boxes[:, None].repeat(1, num_frames, 1)
            boxes[1, 2] = 0
            present = torch.tensor([[True] * 3, [True, True, False]])
            targets.append(
                InstanceData(
                    labels=torch.tensor([0, 2]),
                    masks=masks,
                    boxes=boxes,
                    present=present))
        losses = neck.loss(outs, targets)
        self.assertEqual(
            set(losses), {'loss_sem', 'loss_reid_ctt', 'loss_reid_aux'})
        total = sum(losses.values())
        self.assertTrue(torch.isfinite(total))
        self.assertGreater(float(losses['loss_sem']), 0)
        total.backward()
        self.assertIsNotNone(memory.grad)
        self.assertIsNotNone(neck.rpn_cls_embed.layers[0].weight.grad)
        self.assertIsNotNone(neck.track_embed.layers[0].weight.grad)

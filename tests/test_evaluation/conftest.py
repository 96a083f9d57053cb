# Copyright (c) OpenMMLab. All rights reserved.
"""Shared builders of YouTube-VIS style ground truth / results for the
evaluation tests, and the mmdet 3.3.0 reference evaluator."""
import contextlib
import copy
import io

import numpy as np
import pytest
from pycocotools import mask as mask_utils

OCC_LABELS = ('no_occlusion', 'slight_occlusion', 'severe_occlusion')


def box_rle(x, y, w, h, height, width):
    """Compressed RLE (str counts) of an axis-aligned box."""
    rle = mask_utils.frPyObjects(
        np.array([[x, y, w, h]], np.float64), height, width)[0]
    return dict(size=list(rle['size']), counts=rle['counts'].decode())


def rle_area(rle):
    return None if rle is None else int(mask_utils.area(rle))


def make_annotation(ann_id, video_id, category_id, segs, iscrowd=0,
                    occlusion=None):
    ann = dict(
        id=ann_id,
        video_id=video_id,
        category_id=category_id,
        iscrowd=iscrowd,
        segmentations=segs,
        areas=[rle_area(s) for s in segs],
        bboxes=[
            None if s is None else mask_utils.toBbox(s).tolist()
            for s in segs
        ])
    if occlusion is not None:
        ann['occlusion'] = occlusion
    return ann


def random_vis_dataset(seed,
                       num_videos=6,
                       num_cats=3,
                       height=480,
                       width=640,
                       occlusion=False,
                       max_gt=4,
                       max_dt=12,
                       crowd=True,
                       max_frames=5):
    """Random GT and results: jittered copies of GT tracks (some with the
    wrong category or missing frames), random false positives, tied scores,
    crowd ground truth and boxes of all three size bins."""
    rng = np.random.default_rng(seed)
    videos, anns, results = [], [], []
    ann_id = 1
    for v in range(num_videos):
        length = int(rng.integers(2, max_frames + 1))
        video_id = 10 + 3 * v
        videos.append(
            dict(
                id=video_id,
                height=height,
                width=width,
                length=length,
                file_names=[f'{video_id}/{t}.jpg' for t in range(length)]))
        gts = []
        for _ in range(int(rng.integers(0, max_gt + 1))):
            cat = int(rng.integers(1, num_cats + 1))
            scale = int(rng.choice([40, 150, min(height, width)]))
            boxes = []
            for t in range(length):
                if rng.random() < 0.2:
                    boxes.append(None)
                    continue
                w = int(rng.integers(5, scale))
                h = int(rng.integers(5, min(scale, height)))
                x = int(rng.integers(0, width - min(w, width - 1)))
                y = int(rng.integers(0, height - min(h, height - 1)))
                boxes.append((x, y, min(w, width - x), min(h, height - y)))
            if all(b is None for b in boxes):
                boxes[0] = (1, 1, 10, 10)
            segs = [
                None if b is None else box_rle(*b, height, width)
                for b in boxes
            ]
            occ = None
            if occlusion:
                occ = [
                    None if s is None else str(rng.choice(OCC_LABELS))
                    for s in segs
                ]
            anns.append(
                make_annotation(ann_id, video_id, cat, segs,
                                int(crowd and rng.random() < 0.1), occ))
            ann_id += 1
            gts.append((cat, boxes))
        for _ in range(int(rng.integers(0, max_dt + 1))):
            if gts and rng.random() < 0.7:
                cat, boxes = gts[int(rng.integers(len(gts)))]
                if rng.random() < 0.2:
                    cat = int(rng.integers(1, num_cats + 1))
                segs = []
                for b in boxes:
                    if b is None or rng.random() < 0.1:
                        segs.append(None if rng.random() < 0.7 else box_rle(
                            0, 0, 8, 8, height, width))
                        continue
                    j = rng.integers(-6, 7, 4)
                    x = int(np.clip(b[0] + j[0], 0, width - 2))
                    y = int(np.clip(b[1] + j[1], 0, height - 2))
                    w = int(np.clip(b[2] + j[2], 1, width - x))
                    h = int(np.clip(b[3] + j[3], 1, height - y))
                    segs.append(box_rle(x, y, w, h, height, width))
            else:
                cat = int(rng.integers(1, num_cats + 1))
                side = min(50, height // 2, width // 2)
                segs = [
                    box_rle(
                        int(rng.integers(0, width - side)),
                        int(rng.integers(0, height - side)),
                        int(rng.integers(1, side)), int(rng.integers(
                            1, side)), height, width)
                    if rng.random() < 0.8 else None for _ in range(length)
                ]
            score = float(rng.choice(
                [0.5, 0.25, 0.9])) if rng.random() < 0.15 else float(
                    rng.random())
            results.append(
                dict(
                    video_id=video_id,
                    category_id=cat,
                    score=score,
                    segmentations=segs))
    cats = [dict(id=c, name=f'cat{c}') for c in range(1, num_cats + 1)]
    return dict(videos=videos, annotations=anns, categories=cats), results


def run_mmdet_ytviseval(gt, results, monkeypatch, evaluator_cls=None):
    """mmdet 3.3.0's copy of the official evaluator, ``np.float`` aliased
    for the duration of the call only."""
    from mmdet.evaluation.functional import YTVIS, YTVISeval
    monkeypatch.setattr(np, 'float', float, raising=False)
    cls = evaluator_cls or YTVISeval
    with contextlib.redirect_stdout(io.StringIO()):
        ytvis = YTVIS(copy.deepcopy(gt))
        dets = ytvis.loadRes(copy.deepcopy(results))
        evaluator = cls(ytvis, dets, 'segm')
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


@pytest.fixture
def vis_builders():
    """The builder functions above, for tests in sub-folders."""
    return dict(
        box_rle=box_rle,
        make_annotation=make_annotation,
        random_vis_dataset=random_vis_dataset,
        run_mmdet_ytviseval=run_mmdet_ytviseval)

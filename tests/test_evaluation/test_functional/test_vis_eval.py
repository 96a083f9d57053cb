# Copyright (c) OpenMMLab. All rights reserved.
import copy

import numpy as np
import pytest

from mdqe_mm.evaluation.functional import (VISEval, evaluate_vis,
                                           load_vis_ground_truth,
                                           load_vis_results)

YTVIS_STATS = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10',
               'AR100', 'ARs', 'ARm', 'ARl')
IOU_THRS = np.linspace(0.5, 0.95, 10)
REC_THRS = np.linspace(0.0, 1.0, 101)


def reference_ap(is_tp, num_gt):
    """101-point interpolated AP of one ranked list, written plainly."""
    tp = fp = 0
    precisions, recalls = [], []
    for flag in is_tp:
        tp, fp = tp + bool(flag), fp + (not flag)
        precisions.append(tp / (tp + fp))
        recalls.append(tp / num_gt)
    total = 0.0
    for r in REC_THRS:
        reachable = [p for p, rc in zip(precisions, recalls) if rc >= r]
        total += max(reachable) if reachable else 0.0
    return total / len(REC_THRS)


def plain_occ_score(labels):
    score = {
        'no_occlusion': 0.0,
        'slight_occlusion': 0.25,
        'severe_occlusion': 0.75
    }
    values = sorted(score[x] for x in labels if x is not None)
    keep = (len(values) + 1) // 2
    return sum(values[len(values) - keep:]) / keep


def _gt(videos, anns, num_cats=2):
    return dict(
        videos=videos,
        annotations=anns,
        categories=[
            dict(id=c, name=f'cat{c}') for c in range(1, num_cats + 1)
        ])


def _video(video_id, length, height=400, width=500):
    return dict(id=video_id, height=height, width=width, length=length)


def _result(video_id, category_id, score, segs):
    return dict(
        video_id=video_id,
        category_id=category_id,
        score=score,
        segmentations=copy.deepcopy(segs))


def test_perfect_prediction_scores_one(vis_builders):
    box, ann = vis_builders['box_rle'], vis_builders['make_annotation']
    g1 = [box(10, 10, 50, 40, 400, 500), None, box(12, 10, 50, 40, 400, 500)]
    g2 = [
        None,
        box(200, 100, 150, 150, 400, 500),
        box(200, 90, 150, 150, 400, 500)
    ]
    g3 = [box(0, 0, 30, 30, 400, 500), box(1, 1, 30, 30, 400, 500)]
    gt = _gt([_video(1, 3), _video(2, 2)],
             [ann(1, 1, 1, g1), ann(2, 1, 2, g2), ann(3, 2, 1, g3)])
    results = [
        _result(1, 1, 0.9, g1),
        _result(1, 2, 0.6, g2),
        _result(2, 1, 0.3, g3)
    ]
    stats = evaluate_vis(gt, results).stats
    for name in ('AP', 'AP50', 'AP75', 'APs', 'APm', 'AR1', 'AR10', 'AR100',
                 'ARs', 'ARm'):
        assert stats[name] == pytest.approx(1.0, abs=1e-12), name
    # no ground truth above 256^2: undefined, not zero
    assert stats['APl'] == -1 and stats['ARl'] == -1
    assert 'APso' not in stats


def test_swapped_identities_do_not_match(vis_builders):
    box, ann = vis_builders['box_rle'], vis_builders['make_annotation']
    a = [box(0, 0, 40, 40, 400, 500) for _ in range(4)]
    b = [box(200, 200, 40, 40, 400, 500) for _ in range(4)]
    gt = _gt([_video(1, 4)], [ann(1, 1, 1, a), ann(2, 1, 1, b)])
    # each prediction follows A for two frames and B for the other two:
    # IoU = 2a / (2a + 4a) = 1/3 with either object
    results = [
        _result(1, 1, 0.9, a[:2] + b[2:]),
        _result(1, 1, 0.8, b[:2] + a[2:]),
        _result(1, 1, 0.7, a),
    ]
    result = evaluate_vis(gt, results)
    expected = reference_ap([False, False, True], 2)
    assert result.stats['AP'] == pytest.approx(expected, abs=1e-12)
    assert result.stats['AP50'] == pytest.approx(expected, abs=1e-12)
    assert result.stats['AR100'] == pytest.approx(0.5, abs=1e-12)
    assert expected < 0.2


def test_track_missing_frames_halves_iou(vis_builders):
    box, ann = vis_builders['box_rle'], vis_builders['make_annotation']
    g = [box(5, 5, 60, 60, 400, 500) for _ in range(4)]
    gt = _gt([_video(1, 4)], [ann(1, 1, 1, g)])
    stats = evaluate_vis(gt, [_result(1, 1, 0.9, g[:2] + [None, None])]).stats
    # IoU = 2 frames / 4 frames = 0.5: a hit at 0.50 only
    assert stats['AP'] == pytest.approx(np.mean(0.5 >= IOU_THRS), abs=1e-12)
    assert stats['AP50'] == pytest.approx(1.0)
    assert stats['AP75'] == pytest.approx(0.0)


@pytest.mark.parametrize('extra_frame', [False, True])
def test_none_frames_on_both_sides(vis_builders, extra_frame):
    box, ann = vis_builders['box_rle'], vis_builders['make_annotation']
    g = [box(5, 5, 60, 60, 400, 500) for _ in range(4)]
    g[2] = None
    pred = list(g)
    if extra_frame:
        # a frame only the prediction has adds its area to the union
        pred[2] = box(5, 5, 60, 60, 400, 500)
    gt = _gt([_video(1, 4)], [ann(1, 1, 1, g)])
    stats = evaluate_vis(gt, [_result(1, 1, 0.9, pred)]).stats
    iou = 3 / 4 if extra_frame else 1.0
    assert stats['AP'] == pytest.approx(np.mean(iou >= IOU_THRS), abs=1e-12)


def test_two_categories(vis_builders):
    box, ann = vis_builders['box_rle'], vis_builders['make_annotation']
    g1 = [box(0, 0, 50, 50, 400, 500), box(2, 0, 50, 50, 400, 500)]
    g2 = [box(300, 200, 80, 60, 400, 500), box(300, 210, 80, 60, 400, 500)]
    gt = _gt([_video(7, 2)], [ann(1, 7, 1, g1), ann(2, 7, 2, g2)])
    # the second object is found but labelled with the first category
    results = [_result(7, 1, 0.9, g1), _result(7, 1, 0.8, g2)]
    result = evaluate_vis(gt, results)
    assert result.per_category_ap['cat1'] == pytest.approx(
        reference_ap([True, False], 1))
    assert result.per_category_ap['cat2'] == pytest.approx(0.0)
    assert result.stats['AP'] == pytest.approx(0.5)
    flat = result.to_dict()
    assert flat['AP_cat1'] == result.per_category_ap['cat1']
    assert set(YTVIS_STATS) <= set(flat)


def test_size_bins_use_average_mask_area(vis_builders):
    box, ann = vis_builders['box_rle'], vis_builders['make_annotation']
    size = (700, 700)
    small = [box(0, 0, 100, 100, *size) for _ in range(3)]  # 10000
    # 150^2 = 22500 on its two annotated frames: medium; counting the absent
    # frame as 0 would make it small
    medium = [box(200, 0, 150, 150, *size), None, box(200, 0, 150, 150, *size)]
    large = [box(0, 300, 300, 300, *size) for _ in range(3)]  # 90000
    false_pos = [box(400, 400, 150, 150, *size) for _ in range(3)]
    videos = [_video(1, 3, *size)]
    gt = _gt(videos, [
        ann(1, 1, 1, small),
        ann(2, 1, 1, medium),
        ann(3, 1, 1, large)
    ])
    results = [
        _result(1, 1, 0.9, small),
        _result(1, 1, 0.8, false_pos),
        _result(1, 1, 0.7, large),
        _result(1, 1, 0.5, medium)
    ]
    stats = evaluate_vis(gt, results).stats
    # out-of-range ground truths are ignored, so are dets matched to them
    # and unmatched dets whose own average area is out of range
    assert stats['APs'] == pytest.approx(1.0)
    assert stats['APm'] == pytest.approx(reference_ap([False, True], 1))
    assert stats['APl'] == pytest.approx(1.0)
    assert stats['AP'] == pytest.approx(
        reference_ap([True, False, True, True], 3))
    assert stats['ARs'] == stats['ARm'] == stats['ARl'] == 1.0


def test_occlusion_bins(vis_builders):
    box, ann = vis_builders['box_rle'], vis_builders['make_annotation']
    no, sl, se = 'no_occlusion', 'slight_occlusion', 'severe_occlusion'
    tracks = dict(
        a=([box(0, 0, 40, 40, 400, 500)] * 4, [no, no, no, no]),
        b=([box(100, 0, 40, 40, 400, 500)] * 3 + [None], [sl, sl, no, None]),
        c=([box(200, 0, 40, 40, 400, 500)] * 4, [no, no, sl, se]),
        d=([box(300, 0, 40, 40, 400, 500)] * 4, [se, no, no, no]))
    anns = [
        ann(i + 1, 1, 1, segs, occlusion=occ)
        for i, (segs, occ) in enumerate(tracks.values())
    ]
    gt = _gt([_video(1, 4)], anns)
    parsed = load_vis_ground_truth(gt)
    assert parsed.has_occlusion
    np.testing.assert_allclose(
        parsed.tracks[1].occlusion_scores,
        [plain_occ_score(o) for _, o in tracks.values()])
    np.testing.assert_allclose(parsed.tracks[1].occlusion_scores,
                               [0.0, 0.25, 0.5, 0.375])
    fp = [box(400, 300, 40, 40, 400, 500)] * 4
    results = [
        _result(1, 1, 0.95, fp),
        _result(1, 1, 0.9, tracks['a'][0]),
        _result(1, 1, 0.8, tracks['c'][0]),
        _result(1, 1, 0.7, tracks['d'][0])
    ]
    stats = evaluate_vis(parsed, results).stats
    # light [0, .25]: a, b; medium [.25, .5]: b, c, d; heavy [.5, 1]: c.
    # The false positive counts in every occlusion bin.
    assert stats['APso'] == pytest.approx(reference_ap([False, True], 2))
    assert stats['APmo'] == pytest.approx(
        reference_ap([False, True, True], 3))
    assert stats['APho'] == pytest.approx(reference_ap([False, True], 1))
    assert stats['ARso'] == pytest.approx(0.5)
    assert stats['ARmo'] == pytest.approx(2 / 3)
    assert stats['ARho'] == pytest.approx(1.0)


def test_empty_results_give_zero_not_crash(vis_builders):
    gt, _ = vis_builders['random_vis_dataset'](3, crowd=False)
    result = evaluate_vis(gt, [])
    assert result.stats['AP'] == 0.0 and result.stats['AR100'] == 0.0


@pytest.mark.parametrize('seed', range(12))
def test_matches_mmdet_ytviseval(vis_builders, monkeypatch, seed):
    """Randomised parity with mmdet's copy of the official ytvoseval.

    The ground truth passed to both carries ``areas`` = the exact mask areas
    (mmdet's YouTubeVISMetric would put box areas there; YTVISeval itself
    uses whatever ``areas`` holds), so the size-binned stats are comparable
    as well.
    """
    gt, results = vis_builders['random_vis_dataset'](seed)
    if not results:
        pytest.skip('mmdet cannot load an empty results list')
    reference = vis_builders['run_mmdet_ytviseval'](gt, results, monkeypatch)
    result = evaluate_vis(gt, results)
    ours = np.array([result.stats[n] for n in YTVIS_STATS])
    np.testing.assert_allclose(ours, reference.stats, rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        result.precision[:, :, :, :4], reference.eval['precision'], atol=1e-9)
    np.testing.assert_allclose(
        result.recall[:, :, :4], reference.eval['recall'], atol=1e-9)


def test_matches_mmdet_when_truncating_to_max_dets(vis_builders, monkeypatch):
    box, ann = vis_builders['box_rle'], vis_builders['make_annotation']
    rng = np.random.default_rng(0)
    gts = [[box(10 * i, 5, 9, 9 + i % 3, 60, 80) for _ in range(2)]
           for i in range(6)]
    gt = _gt([_video(1, 2, 60, 80)],
             [ann(i + 1, 1, 1, g) for i, g in enumerate(gts)], 1)
    results = []
    for k in range(130):  # more than maxDets=100 for one (video, category)
        target = gts[k % 6]
        jitter = int(rng.integers(0, 3))
        segs = [
            box(10 * (k % 6) + jitter, 5, 9, 9, 60, 80) if rng.random() < .8
            else target[t] for t in range(2)
        ]
        results.append(_result(1, 1, float(rng.random()), segs))
    reference = vis_builders['run_mmdet_ytviseval'](gt, results, monkeypatch)
    ours = evaluate_vis(gt, results)
    np.testing.assert_allclose([ours.stats[n] for n in YTVIS_STATS],
                               reference.stats,
                               atol=1e-9)


@pytest.mark.parametrize('seed', range(4))
def test_occlusion_matches_official_rule(vis_builders, monkeypatch, seed):
    """OVIS bins against the official code path.

    oviseval.py is ytvoseval.py plus one more ground-truth ignore condition
    (occlusion score outside the bin) under area range 'all'. Running
    mmdet's YTVISeval with each ground truth's ``avg_area`` replaced by an
    order-preserving code of its (independently computed) occlusion score,
    the area range set to the code of the bin and every prediction's area
    set inside it (so no prediction is ignored by area) reproduces that.
    """
    from mmdet.evaluation.functional import YTVISeval
    gt, results = vis_builders['random_vis_dataset'](
        100 + seed, occlusion=True)
    if not results:
        pytest.skip('mmdet cannot load an empty results list')
    occ = {
        a['id']: plain_occ_score(a['occlusion'])
        for a in gt['annotations']
    }
    ours = evaluate_vis(gt, results).stats
    bins = dict(so=(0.0, 0.25), mo=(0.25, 0.5), ho=(0.5, 1.0))
    for name, (low, high) in bins.items():

        class OcclusionBinEval(YTVISeval):

            def _prepare(self):
                super()._prepare()
                for anns in self._gts.values():
                    for g in anns:
                        g['avg_area'] = 1 + 1000 * occ[g['id']]
                for anns in self._dts.values():
                    for d in anns:
                        d['avg_area'] = 1 + 1000 * low
                self.params.areaRng = [[1 + 1000 * low, 1 + 1000 * high]]
                self.params.areaRngLbl = ['all']

        reference = vis_builders['run_mmdet_ytviseval'](gt, results,
                                                        monkeypatch,
                                                        OcclusionBinEval)
        assert ours[f'AP{name}'] == pytest.approx(
            reference.stats[0], abs=1e-9), name
        assert ours[f'AR{name}'] == pytest.approx(
            reference.stats[8], abs=1e-9), name


def test_restricting_videos_and_custom_params(vis_builders):
    gt, results = vis_builders['random_vis_dataset'](5, crowd=False)
    parsed = load_vis_ground_truth(gt)
    keep = sorted(parsed.videos)[:3]
    subset = [r for r in results if r['video_id'] in keep]
    sub_gt = dict(gt)
    sub_gt['videos'] = [v for v in gt['videos'] if v['id'] in keep]
    sub_gt['annotations'] = [
        a for a in gt['annotations'] if a['video_id'] in keep
    ]
    restricted = VISEval(parsed).evaluate(
        load_vis_results(subset, parsed, keep), keep)
    standalone = evaluate_vis(sub_gt, subset)
    assert restricted.stats == standalone.stats
    with pytest.raises(ValueError, match='not being evaluated'):
        VISEval(parsed).evaluate(load_vis_results(results, parsed), keep)
    with pytest.raises(ValueError, match='max_dets'):
        VISEval(parsed, max_dets=(10, 1, 100))

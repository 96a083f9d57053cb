# Copyright (c) OpenMMLab. All rights reserved.
import copy
import json
import zipfile

import numpy as np
import pytest
import torch
from mmdet.registry import METRICS
from mmdet.structures import DetDataSample, TrackDataSample
from mmengine.structures import InstanceData
from pycocotools import mask as mask_utils

from mdqe_mm.evaluation import VISMetric
from mdqe_mm.evaluation.functional import VISFormatError, evaluate_vis


def _write(tmp_path, gt, name='ann.json'):
    path = tmp_path / name
    path.write_text(json.dumps(gt))
    return str(path)


def _track_samples(gt, results, dense=False, label_of=None):
    """TrackDataSamples (one per video) holding ``results`` as per-frame
    pred_track_instances, the way a VIS model's predict emits them."""
    label_of = label_of or (lambda cat: cat - 1)
    samples = []
    for video in gt['videos']:
        tracks = [r for r in results if r['video_id'] == video['id']]
        frames = []
        for t in range(video['length']):
            keep = [(k, r) for k, r in enumerate(tracks)
                    if r['segmentations'][t] is not None]
            pred = InstanceData()
            pred.scores = torch.tensor([r['score'] for _, r in keep],
                                       dtype=torch.float64)
            pred.labels = torch.tensor(
                [label_of(r['category_id']) for _, r in keep],
                dtype=torch.long)
            pred.instances_id = torch.tensor([k for k, _ in keep],
                                             dtype=torch.long)
            rles = [copy.deepcopy(r['segmentations'][t]) for _, r in keep]
            if dense:
                pred.masks = torch.from_numpy(
                    np.stack([mask_utils.decode(m) for m in rles]).astype(
                        bool)) if rles else torch.zeros(
                            (0, video['height'], video['width']),
                            dtype=torch.bool)
            else:
                for rle in rles:
                    rle['counts'] = rle['counts'].encode()
                pred.masks = rles
            frame = DetDataSample(
                metainfo=dict(
                    video_id=video['id'],
                    frame_id=t,
                    ori_shape=(video['height'], video['width']),
                    video_length=video['length'],
                    ori_video_length=video['length']))
            frame.pred_track_instances = pred
            frames.append(frame)
        sample = TrackDataSample()
        sample.video_data_samples = frames
        samples.append(sample)
    return samples


def _representable(results):
    """Tracks with at least one mask (the only ones a model can emit)."""
    return [
        r for r in results if any(s is not None for s in r['segmentations'])
    ]


@pytest.mark.parametrize('dense', [False, True])
def test_metric_matches_functional(vis_builders, tmp_path, dense):
    gt, results = vis_builders['random_vis_dataset'](
        7, height=48, width=64, occlusion=True)
    results = _representable(results)
    metric = METRICS.build(
        dict(type='VISMetric', ann_file=_write(tmp_path, gt)))
    metric.dataset_meta = dict(classes=('cat1', 'cat2', 'cat3'))
    for sample in _track_samples(gt, results, dense=dense):
        metric.process(dict(), [sample.to_dict()])
    metrics = metric.evaluate(size=len(gt['videos']))
    expected = evaluate_vis(gt, results).stats
    assert set(metrics) == {f'vis/{k}' for k in expected}
    for name, value in expected.items():
        assert metrics[f'vis/{name}'] == pytest.approx(value, abs=1e-12)
    assert 0 < expected['AP'] < 1 and 'APho' in expected


def test_frames_over_several_calls_and_label_names(vis_builders, tmp_path):
    gt, results = vis_builders['random_vis_dataset'](
        8, height=48, width=64, crowd=False)
    results = _representable(results)
    # the model's classes in another order than the category ids
    classes = ('cat3', 'cat1', 'cat2')
    metric = VISMetric(
        ann_file=_write(tmp_path, gt), metric_items=['AP', 'AR10'])
    metric.dataset_meta = dict(classes=classes)
    samples = _track_samples(
        gt, results, label_of=lambda cat: classes.index(f'cat{cat}'))
    for sample in reversed(samples):  # videos and frames in any order
        for frame in reversed(sample.video_data_samples):
            metric.process(dict(), [frame])
    metrics = metric.evaluate(size=1)
    expected = evaluate_vis(gt, results).stats
    assert list(metrics) == ['vis/AP', 'vis/AR10']
    assert metrics['vis/AP'] == pytest.approx(expected['AP'], abs=1e-12)


def test_perfect_predictions(vis_builders, tmp_path):
    gt, _ = vis_builders['random_vis_dataset'](
        9, height=48, width=64, crowd=False)
    perfect = [
        dict(
            video_id=a['video_id'],
            category_id=a['category_id'],
            score=0.5 + 0.01 * i,
            segmentations=a['segmentations'])
        for i, a in enumerate(gt['annotations'])
    ]
    metric = VISMetric(ann_file=_write(tmp_path, gt), prefix='ovis')
    metric.process(dict(), _track_samples(gt, perfect))
    metrics = metric.evaluate(size=1)
    assert metrics['ovis/AP'] == pytest.approx(1.0)
    assert metrics['ovis/AR100'] == pytest.approx(1.0)


def test_format_only_writes_codalab_zip(vis_builders, tmp_path):
    gt, results = vis_builders['random_vis_dataset'](
        10, height=48, width=64)
    results = _representable(results)
    hidden = dict(gt, annotations=None)  # like the official valid.json
    prefix = str(tmp_path / 'out' / 'results')
    metric = VISMetric(
        ann_file=_write(tmp_path, hidden),
        format_only=True,
        outfile_prefix=prefix)
    metric.process(dict(), _track_samples(gt, results))
    assert metric.evaluate(size=1) == {}
    with zipfile.ZipFile(prefix + '.submission_file.zip') as zf:
        assert zf.namelist() == ['results.json']
        written = json.loads(zf.read('results.json'))
    assert written == json.load(open(prefix + '.json'))
    assert len(written) == len(results)
    # the written file evaluates to the same numbers as the source results
    assert evaluate_vis(gt, written).stats == evaluate_vis(gt, results).stats
    assert all(
        set(r) == {'video_id', 'category_id', 'score', 'segmentations'}
        for r in written)

    evaluating = VISMetric(
        ann_file=_write(tmp_path, hidden, 'hidden.json'),
        outfile_prefix=str(tmp_path / 'again'))
    evaluating.process(dict(), _track_samples(gt, results))
    with pytest.raises(ValueError, match='format_only=True'):
        evaluating.evaluate(size=1)
    assert (tmp_path / 'again.json').exists()


def test_bad_configuration_and_input(vis_builders, tmp_path):
    gt, results = vis_builders['random_vis_dataset'](
        11, height=48, width=64)
    ann_file = _write(tmp_path, gt)
    with pytest.raises(ValueError, match='outfile_prefix'):
        VISMetric(ann_file=ann_file, format_only=True)
    with pytest.raises(KeyError, match='unknown metric items'):
        VISMetric(ann_file=ann_file, metric_items=['mAP'])
    samples = _track_samples(gt, _representable(results))
    frame = next(f for s in samples for f in s.video_data_samples
                 if len(f.pred_track_instances))
    where = f'video_id {frame.video_id}, frame {frame.frame_id}'
    frame.set_metainfo(dict(ori_shape=(10, 10)))
    with pytest.raises(ValueError, match=where):
        VISMetric(ann_file=ann_file).process(dict(), [frame])
    frame.set_metainfo(dict(ori_shape=(48, 64), video_id=12345))
    metric = VISMetric(ann_file=ann_file)
    metric.process(dict(), samples)
    with pytest.raises(VISFormatError, match='video_id 12345'):
        metric.evaluate(size=1)


def _with_duplicate_detection(samples, box_rle):
    """Give one frame a second, lower-scored detection with a taken id
    (as MaskTrackRCNN can); returns its (video_id, frame_id, id)."""
    for sample in samples:
        for frame in sample.video_data_samples:
            pred = frame.pred_track_instances
            if len(pred) == 0:
                continue
            h, w = frame.ori_shape
            junk = box_rle(0, 0, 3, 3, h, w)
            junk['counts'] = junk['counts'].encode()
            dup = InstanceData()
            dup.scores = pred.scores[:1] * 0.5
            dup.labels = pred.labels[:1]
            dup.instances_id = pred.instances_id[:1]
            dup.masks = [junk]
            merged = InstanceData()
            merged.scores = torch.cat([pred.scores, dup.scores])
            merged.labels = torch.cat([pred.labels, dup.labels])
            merged.instances_id = torch.cat(
                [pred.instances_id, dup.instances_id])
            merged.masks = list(pred.masks) + dup.masks
            frame.pred_track_instances = merged
            return frame.video_id, frame.frame_id, int(dup.instances_id[0])
    raise AssertionError('no frame with a prediction')


def test_duplicate_ids_in_a_frame(vis_builders, tmp_path):
    gt, results = vis_builders['random_vis_dataset'](
        13, height=48, width=64, crowd=False)
    results = _representable(results)
    ann_file = _write(tmp_path, gt)
    expected = evaluate_vis(gt, results).stats

    def run(rule):
        samples = _track_samples(gt, results)
        where = _with_duplicate_detection(samples,
                                          vis_builders['box_rle'])
        kwargs = {} if rule is None else dict(duplicate_ids=rule)
        metric = VISMetric(ann_file=ann_file, classwise=False, **kwargs)
        metric.dataset_meta = dict(classes=('cat1', 'cat2', 'cat3'))
        metric.process(dict(), samples)
        return metric, where

    metric, (video_id, frame_id, inst) = run(None)
    with pytest.raises(VISFormatError,
                       match=f'video_id {video_id}, frame {frame_id}: '
                       f'instances_id {inst} appears twice.*duplicate_ids'):
        metric.evaluate(size=1)
    # keeping the higher-scored one restores the original predictions
    metric, _ = run('keep_highest')
    metrics = metric.evaluate(size=1)
    for name, value in expected.items():
        assert metrics[f'vis/{name}'] == pytest.approx(value, abs=1e-12)
    # keeping the last one (mmdet's rule) keeps the junk box instead
    metric, _ = run('keep_last')
    pred, _ = metric.format_results(metric.results, metric.ground_truth)
    junk = vis_builders['box_rle'](0, 0, 3, 3, 48, 64)['counts']
    at_frame = [
        r['segmentations'][frame_id]['counts'] for r in pred
        if r['video_id'] == video_id and r['segmentations'][frame_id]
    ]
    assert at_frame.count(junk) == 1
    with pytest.raises(ValueError, match='duplicate_ids must be one of'):
        VISMetric(ann_file=ann_file, duplicate_ids='first')

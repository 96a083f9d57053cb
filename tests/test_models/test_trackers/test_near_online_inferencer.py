# Copyright (c) OpenMMLab. All rights reserved.
"""End-to-end streaming inference with a fake model (see conftest.py)."""
import json

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, TrackDataSample

from mdqe_mm.models.trackers import NearOnlineInferencer, clip_schedule


def ref_schedule(length, num_frames, cover_tail):
    """The reference loop: stop after the first clip that hits the end."""
    clips = []
    for start in range(length):
        end = start + num_frames
        if end > length:
            clips.append((start, length))
            if not cover_tail:
                break
        else:
            clips.append((start, end))
    return clips


@pytest.mark.parametrize('length', [1, 2, 3, 4, 5, 9])
@pytest.mark.parametrize('num_frames', [1, 2, 4])
@pytest.mark.parametrize('cover_tail', [False, True])
def test_clip_schedule(length, num_frames, cover_tail):
    assert clip_schedule(length, num_frames,
                         cover_tail) == ref_schedule(length, num_frames,
                                                     cover_tail)


def video_sample(length, img_shape, ori_shape, video_id=7):
    frames = [
        DetDataSample(
            metainfo=dict(
                frame_id=f,
                video_id=video_id,
                img_id=100 + f,
                video_length=length,
                ori_video_length=length,
                img_shape=img_shape,
                ori_shape=ori_shape)) for f in range(length)
    ]
    return TrackDataSample(video_data_samples=frames)


def box_pixels(box, ori_shape, stride=4, img_shape=(32, 48)):
    """Expected binary mask of a stride-4 box at the original size."""
    y0, x0, y1, x1 = box
    mask = np.zeros(img_shape, dtype=bool)
    mask[y0 * stride:y1 * stride, x0 * stride:x1 * stride] = True
    ys = np.arange(ori_shape[0]) * img_shape[0] // ori_shape[0]
    xs = np.arange(ori_shape[1]) * img_shape[1] // ori_shape[1]
    return mask[ys][:, xs]


def iou(a, b):
    union = np.logical_or(a, b).sum()
    return np.logical_and(a, b).sum() / union if union else 1.0


def test_tracks_persist_and_reappear(fake_model_cls, make_obj):
    length = 20
    a = make_obj(0,
                 torch.eye(16)[0] * 4, range(length), lambda f:
                 (1, f // 4, 4, f // 4 + 3))
    b_frames = list(range(0, 8)) + list(range(14, 20))
    b = make_obj(2,
                 torch.eye(16)[1] * 4, b_frames, lambda f: (5, 1, 8, 4)
                 if f < 8 else (5, 8, 8, 11))
    model = fake_model_cls([a, b], mask_size=(8, 12))
    inferencer = NearOnlineInferencer(num_frames=4, window_size=6)
    ori_shape = (48, 72)
    out = inferencer.predict(
        model.make_frames(length, 32, 48),
        model.extract_frame_feats,
        model.decode_clips,
        data_sample=video_sample(length, (32, 48), ori_shape))

    assert isinstance(out, TrackDataSample) and len(out) == length
    preds = [out[f].pred_track_instances for f in range(length)]
    first = preds[0]
    # one pair per (track, class); the two objects are the top pairs and
    # b is ONE track although it vanished for 6 frames
    assert inferencer.tracker.num_tracks == 2
    assert first.scores[0] > 0.8 and first.scores[1] > 0.8
    assert sorted(first.labels[:2].tolist()) == [0, 2]
    assert len(first.scores) == 2 * 3  # min 10 pairs, only 6 exist
    assert first.instances_id.tolist() == list(range(6))
    for pred in preds:
        assert torch.equal(pred.labels, first.labels)
        assert torch.equal(pred.track_ids, first.track_ids)
        assert len(pred.masks) == len(pred.scores) == len(pred.bboxes)
    for frame in range(length):
        masks = {
            label: mask_util.decode(rle).astype(bool)
            for label, rle in zip(preds[frame].labels[:2].tolist(),
                                  preds[frame].masks[:2])
        }
        assert masks[0].shape == ori_shape
        assert iou(masks[0], box_pixels(a['boxes'][frame], ori_shape)) > 0.7
        if frame in b['boxes']:
            assert iou(masks[2], box_pixels(b['boxes'][frame],
                                            ori_shape)) > 0.7
        else:
            assert not masks[2].any()
    # the box of a mask is its tight box
    rle = preds[5].masks[0]
    x, y, w, h = mask_util.toBbox(rle)
    torch.testing.assert_close(preds[5].bboxes[0],
                               torch.tensor([x, y, x + w, y + h]).float())


def ref_window_carry_means(emitted, schedule, window_size, track=0):
    """Per-frame mask logits as the reference's tracker averages them: a
    list of clip logits per frame, and at every window boundary the frames
    the new window shares with the old one keep only their mean."""
    stored = {}
    for start, end in schedule:
        if start > 0 and start % window_size == 0:
            for frame in stored:
                if frame >= start:
                    stored[frame] = [sum(stored[frame]) / len(stored[frame])]
        for frame in range(start, end):
            stored.setdefault(frame,
                              []).append(emitted[(start,
                                                  track)][frame - start])
    return {f: sum(v) / len(v) for f, v in stored.items()}


@pytest.mark.parametrize('cover_tail,window_carry', [(False, False),
                                                     (True, False),
                                                     (False, True)])
def test_aggregation_averages_exactly_the_covering_clips(
        fake_model_cls, make_obj, cover_tail, window_carry):
    length, num_frames = 9, 4
    obj = make_obj(1,
                   torch.eye(16)[3] * 4, range(length), lambda f: (2, 3, 6, 8))
    model = fake_model_cls([obj], noise=1.5, seed=3)
    inferencer = NearOnlineInferencer(
        num_frames=num_frames,
        window_size=3,
        cover_tail=cover_tail,
        window_carry=window_carry)
    received = {}
    add_final_frame = inferencer.aggregator.add_final_frame

    def spy(frame, track_logits):
        received[frame] = {k: v.clone() for k, v in track_logits.items()}
        add_final_frame(frame, track_logits)

    inferencer.aggregator.add_final_frame = spy
    inferencer.predict(
        model.make_frames(length), model.extract_frame_feats,
        model.decode_clips)
    assert sorted(received) == list(range(length))
    schedule = ref_schedule(length, num_frames, cover_tail)
    carried = ref_window_carry_means(model.emitted, schedule, 3)
    differs = 0
    for frame in range(length):
        covering = [(s, e) for s, e in schedule if s <= frame < e]
        ref = sum(model.emitted[(s, 0)][frame - s]
                  for s, _ in covering) / len(covering)
        differs += not torch.allclose(carried[frame], ref)
        if window_carry:
            ref = carried[frame]
        assert list(received[frame]) == [0]
        torch.testing.assert_close(
            received[frame][0].double(), ref, rtol=1e-5, atol=1e-5)
    # frames 3, 4 (after the boundary at 3) and 6, 7 (at 6) keep the mean
    # of the earlier window's clips as one clip
    assert differs == 4
    # the tail is covered by fewer clips than the middle without cover_tail
    counts = [sum(s <= f < e for s, e in schedule) for f in range(length)]
    assert counts[4] == 4 and counts[-1] == (4 if cover_tail else 2)


@pytest.mark.parametrize('length', [1, 2])
def test_videos_shorter_than_a_clip(fake_model_cls, make_obj, length):
    obj = make_obj(0,
                   torch.eye(16)[0] * 4, range(length), lambda f: (1, 1, 5, 6))
    model = fake_model_cls([obj])
    inferencer = NearOnlineInferencer(num_frames=4, window_size=30)
    out = inferencer.predict(
        model.make_frames(length), model.extract_frame_feats,
        model.decode_clips)
    assert len(out) == length
    assert inferencer.last_stats['num_clips'] == 1
    for frame in range(length):
        pred = out[frame].pred_track_instances
        assert pred.labels[0] == 0 and pred.scores[0] > 0.8
        assert mask_util.area(pred.masks[0]) > 0
        assert out[frame].metainfo['frame_id'] == frame


@pytest.mark.parametrize('length,window,num_frames,batch', [(25, 6, 4, None),
                                                            (10, 2, 4, None),
                                                            (7, 30, 4, None),
                                                            (13, 5, 1, None),
                                                            (23, 5, 3, 2)])
def test_memory_bookkeeping(fake_model_cls, make_obj, length, window,
                            num_frames, batch):
    obj = make_obj(0,
                   torch.eye(16)[0] * 4, range(length), lambda f: (1, 1, 5, 6))
    model = fake_model_cls([obj])
    inferencer = NearOnlineInferencer(
        num_frames=num_frames, window_size=window, decode_batch_size=batch)
    inferencer.predict(
        model.make_frames(length), model.extract_frame_feats,
        model.decode_clips)
    stats = inferencer.last_stats
    # every frame is extracted exactly once, in order
    assert model.extracted == list(range(length))
    assert stats['num_extract_calls'] == -(-length // window)
    # never more than W + T - 1 frames of features are held or decoded
    bound = min(window + num_frames - 1, length)
    assert stats['max_buffered_frames'] <= bound
    assert model.max_rows_decoded <= bound
    # the tracker forgets final frames: at most T - 1 stay open
    assert stats['max_open_frames'] <= num_frames - 1
    assert inferencer.tracker.open_frames == []
    if batch is not None:
        assert stats['num_decode_calls'] >= stats['num_clips'] / batch


def test_uint8_frames_through_the_preprocessor(fake_model_cls, make_obj):
    preprocessor = MODELS.build(
        dict(
            type='VideoStreamDataPreprocessor',
            mean=[0.0, 0.0, 0.0],
            std=[1.0, 1.0, 1.0],
            pad_size_divisor=32))
    length = 6
    frames = fake_model_cls.make_frames(length, 30, 45).to(torch.uint8)
    obj = make_obj(0,
                   torch.eye(16)[0] * 4, range(length), lambda f: (1, 1, 5, 6))
    model = fake_model_cls([obj], mask_size=(8, 16))
    sizes = []

    def extract(window):
        sizes.append((window.dtype, tuple(window.shape)))
        return model.extract_frame_feats(window)

    inferencer = NearOnlineInferencer(num_frames=4, window_size=4)
    out = inferencer.predict(
        frames,
        extract,
        model.decode_clips,
        data_sample=video_sample(length, (30, 45), (30, 45)),
        prepare_window=preprocessor.prepare_window)
    assert sizes == [(torch.float32, (4, 3, 32, 64)),
                     (torch.float32, (2, 3, 32, 64))]
    pred = out[0].pred_track_instances
    assert mask_util.decode(pred.masks[0]).shape == (30, 45)


def test_bad_inputs_raise_clear_errors(fake_model_cls, make_obj):
    obj = make_obj(0, torch.eye(16)[0] * 4, range(3), lambda f: (1, 1, 5, 6))
    model = fake_model_cls([obj])
    inferencer = NearOnlineInferencer(num_frames=2, window_size=2)
    frames = model.make_frames(3)
    with pytest.raises(ValueError, match='video 7 has 3 frames'):
        inferencer.predict(
            frames,
            model.extract_frame_feats,
            model.decode_clips,
            data_sample=video_sample(4, (32, 48), (32, 48)))

    def bad_decode(feats, inds):
        outs = model.decode_clips(feats, inds)
        for out in outs:
            out['mask_logits'] = out['mask_logits'][:, :1]
        return outs

    with pytest.raises(ValueError, match=r'clip \(0, 2\)'):
        inferencer.predict(frames, model.extract_frame_feats, bad_decode)

    def bad_extract(window):
        feats = model.extract_frame_feats(window)
        feats['memory'] = feats['memory'][:1]
        return feats

    with pytest.raises(ValueError, match="feature 'memory'"):
        inferencer.predict(frames, bad_extract, model.decode_clips)
    with pytest.raises(ValueError, match='window_size'):
        NearOnlineInferencer(window_size=0)


def test_registry_build_passes_settings_to_tracker():
    inferencer = MODELS.build(
        dict(
            type='NearOnlineInferencer',
            num_frames=2,
            cls_thr=0.2,
            tracker=dict(type='ClipTracker', max_num_instances=70)))
    assert inferencer.tracker.num_frames == 2
    assert inferencer.tracker.cls_thr == 0.2
    assert inferencer.tracker.max_num_instances == 70
    assert 'NearOnlineInferencer' in repr(inferencer)


def test_predictions_round_trip_through_vis_metric(fake_model_cls, make_obj,
                                                   tmp_path):
    vis_metric = pytest.importorskip('mdqe_mm.evaluation.metrics')
    length, ori_shape = 12, (48, 72)
    objs = [
        make_obj(0,
                 torch.eye(16)[0] * 4, range(length), lambda f:
                 (1, f // 3, 4, f // 3 + 4)),
        make_obj(2,
                 torch.eye(16)[1] * 4, range(3, length), lambda f:
                 (5, 6, 8, 11)),
    ]
    annotations = []
    for idx, obj in enumerate(objs):
        segs, areas, boxes = [], [], []
        for frame in range(length):
            if frame not in obj['boxes']:
                segs.append(None)
                areas.append(None)
                boxes.append(None)
                continue
            mask = box_pixels(obj['boxes'][frame], ori_shape)
            rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
            rle['counts'] = rle['counts'].decode('ascii')
            segs.append(rle)
            areas.append(float(mask.sum()))
            boxes.append([float(v) for v in mask_util.toBbox(rle)])
        annotations.append(
            dict(
                id=idx + 1,
                video_id=7,
                category_id=obj['label'] + 1,
                segmentations=segs,
                areas=areas,
                bboxes=boxes,
                iscrowd=0))
    gt = dict(
        videos=[
            dict(
                id=7,
                width=ori_shape[1],
                height=ori_shape[0],
                length=length,
                file_names=[f'v/{f:05d}.jpg' for f in range(length)])
        ],
        categories=[dict(id=k + 1, name=f'c{k}') for k in range(3)],
        annotations=annotations)
    ann_file = tmp_path / 'gt.json'
    ann_file.write_text(json.dumps(gt))

    model = fake_model_cls(objs)
    out = NearOnlineInferencer(
        num_frames=4, window_size=5).predict(
            model.make_frames(length),
            model.extract_frame_feats,
            model.decode_clips,
            data_sample=video_sample(length, (32, 48), ori_shape))
    metric = vis_metric.VISMetric(
        ann_file=str(ann_file), outfile_prefix=str(tmp_path / 'res'))
    metric.dataset_meta = dict(classes=('c0', 'c1', 'c2'))
    metric.process({}, [out])
    stats = metric.compute_metrics(metric.results)
    # both objects are found with the right class, track and frames
    assert stats['AP50'] == pytest.approx(1.0)
    assert stats['AP'] > 0.5
    results = json.loads((tmp_path / 'res.json').read_text())
    best = sorted(results, key=lambda r: -r['score'])[:2]
    assert sorted(r['category_id'] for r in best) == [1, 3]
    for res in best:
        present = [
            s is not None and mask_util.area(s) > 0
            for s in res['segmentations']
        ]
        obj = objs[0] if res['category_id'] == 1 else objs[1]
        assert present == [f in obj['boxes'] for f in range(length)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('merge_on_cpu', [False, True])
def test_cuda_outputs_give_the_cpu_result(fake_model_cls, make_obj,
                                          merge_on_cpu):
    length = 10
    objs = [
        make_obj(0,
                 torch.eye(16)[0] * 4, range(length), lambda f:
                 (1, f // 3, 4, f // 3 + 4)),
        make_obj(1,
                 torch.eye(16)[1] * 4, range(2, 8), lambda f: (5, 6, 8, 11)),
    ]
    results = []
    for device in ('cpu', 'cuda'):
        model = fake_model_cls(objs, noise=0.5, seed=1)

        def decode(feats, inds):
            return [{
                k: v.to(device)
                for k, v in out.items()
            } for out in model.decode_clips(feats, inds)]

        out = NearOnlineInferencer(
            num_frames=4, window_size=4, merge_on_cpu=merge_on_cpu).predict(
                model.make_frames(length), model.extract_frame_feats, decode)
        results.append([out[f].pred_track_instances for f in range(length)])
    for cpu, cuda in zip(*results):
        assert torch.equal(cpu.labels.cpu(), cuda.labels.cpu())
        assert torch.equal(cpu.track_ids.cpu(), cuda.track_ids.cpu())
        torch.testing.assert_close(cpu.scores.cpu(), cuda.scores.cpu())
        for a, b in zip(cpu.masks, cuda.masks):
            # float rounding may flip pixels right at the 0.5 boundary
            assert iou(mask_util.decode(a), mask_util.decode(b)) > 0.99

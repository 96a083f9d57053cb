# Copyright (c) OpenMMLab. All rights reserved.
import filecmp
import json
import math
import os
import os.path as osp
import runpy
import sys

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import pytest
from mmengine.registry import init_default_scope

from mdqe_mm.datasets import (SYNTHETIC_VIS_CLASSES, SyntheticVISDataset,
                              VISDataset, ensure_synthetic_vis,
                              generate_synthetic_vis)
from mdqe_mm.datasets.synthetic import (SyntheticObject, make_synthetic_video,
                                        occlusion_statistics, render_video,
                                        video_annotations)

init_default_scope('mmdet')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
OCCLUSION_VALUES = ('no_occlusion', 'slight_occlusion', 'severe_occlusion')


def expected_label(occluded):
    # the documented thresholds, written out independently
    if occluded < 0.05:
        return 'no_occlusion'
    return 'slight_occlusion' if occluded <= 0.5 else 'severe_occlusion'


def validate_vis_file(ann_file, img_root):
    """Check a file against the OVIS schema; returns the loaded dict."""
    with open(ann_file) as f:
        data = json.load(f)
    assert set(data) >= {'videos', 'annotations', 'categories'}
    cats = {c['id']: c['name'] for c in data['categories']}
    assert tuple(cats[i] for i in sorted(cats)) == SYNTHETIC_VIS_CLASSES
    videos = {}
    for video in data['videos']:
        assert video['id'] not in videos
        videos[video['id']] = video
        assert len(video['file_names']) == video['length']
        for name in video['file_names']:
            img = cv2.imread(osp.join(img_root, name))
            assert img is not None and img.shape == (video['height'],
                                                     video['width'], 3)
    masks_per_frame = {}
    ann_ids = set()
    for ann in data['annotations']:
        assert ann['id'] not in ann_ids
        ann_ids.add(ann['id'])
        video = videos[ann['video_id']]
        assert ann['category_id'] in cats and ann['iscrowd'] == 0
        h, w, length = video['height'], video['width'], video['length']
        for key in ('segmentations', 'bboxes', 'areas', 'occlusion'):
            assert len(ann[key]) == length
        assert any(s is not None for s in ann['segmentations'])
        for t in range(length):
            segm = ann['segmentations'][t]
            if segm is None:
                assert ann['bboxes'][t] is None and ann['areas'][t] is None
                assert ann['occlusion'][t] is None
                continue
            assert segm['size'] == [h, w] and isinstance(segm['counts'], str)
            mask = mask_utils.decode(segm)
            assert mask.shape == (h, w)
            ys, xs = np.nonzero(mask)
            assert ann['areas'][t] == mask.sum() > 0
            assert ann['bboxes'][t] == [
                xs.min(),
                ys.min(),
                xs.max() - xs.min() + 1,
                ys.max() - ys.min() + 1
            ]
            assert ann['occlusion'][t] in OCCLUSION_VALUES
            masks_per_frame.setdefault((video['id'], t), []).append(mask)
    # visible parts of different objects never overlap
    for masks in masks_per_frame.values():
        total = np.sum(masks, axis=0)
        assert total.max() <= 1
    return data


def test_generated_files_follow_the_schema_and_load(synthetic_root):
    for split in ('train', 'valid'):
        validate_vis_file(
            osp.join(synthetic_root, 'annotations', f'{split}.json'),
            osp.join(synthetic_root, split, 'JPEGImages'))
    ds = VISDataset(
        data_root=str(synthetic_root),
        ann_file='annotations/valid.json',
        data_prefix=dict(img_path='valid/JPEGImages'),
        preset='synthetic_vis',
        pipeline=[])
    assert len(ds) == 2 and ds.get_data_info(0)['video_length'] == 8


def test_output_is_deterministic_for_a_seed(tmp_path):
    kwargs = dict(
        num_train_videos=2,
        num_valid_videos=1,
        num_frames=4,
        height=40,
        width=56)
    generate_synthetic_vis(str(tmp_path / 'a'), seed=5, **kwargs)
    generate_synthetic_vis(str(tmp_path / 'b'), seed=5, **kwargs)
    generate_synthetic_vis(str(tmp_path / 'c'), seed=6, **kwargs)
    for rel in ('annotations/train.json', 'annotations/valid.json',
                'train/JPEGImages/vid_0001/00003.jpg'):
        assert filecmp.cmp(
            tmp_path / 'a' / rel, tmp_path / 'b' / rel, shallow=False)
    assert not filecmp.cmp(
        tmp_path / 'a' / 'annotations/train.json',
        tmp_path / 'c' / 'annotations/train.json',
        shallow=False)


def circle_overlap(r, big_r, d):
    """Area of the intersection of two discs (float64 formula)."""
    if d >= r + big_r:
        return 0.0
    if d <= abs(big_r - r):
        return math.pi * min(r, big_r)**2
    a = r * r * math.acos((d * d + r * r - big_r * big_r) / (2 * d * r))
    b = big_r * big_r * math.acos(
        (d * d + big_r * big_r - r * r) / (2 * d * big_r))
    c = 0.5 * math.sqrt(
        (-d + r + big_r) * (d + r - big_r) * (d - r + big_r) * (d + r + big_r))
    return a + b - c


def test_occlusion_labels_follow_disc_geometry():
    rear = SyntheticObject(
        category=0,
        size=10.0,
        anchor=(50.0, 30.0),
        anchor_time=0.0,
        velocity=(0.0, 0.0),
        depth=1.0,
        color=(0, 0, 200))
    front = SyntheticObject(
        category=0,
        size=16.0,
        anchor=(6.0, 30.0),
        anchor_time=0.0,
        velocity=(4.0, 0.0),
        depth=2.0,
        color=(200, 0, 0))
    num_frames = 20
    video = render_video([rear, front], num_frames, 60, 100)
    anns = video_annotations(video)
    disc_area = math.pi * 10.0**2
    checked = set()
    for t in range(num_frames):
        d = abs(6.0 + 4.0 * t - 50.0)
        occluded = circle_overlap(10.0, 16.0, d) / disc_area
        label = anns[0]['occlusion'][t]
        if d <= 6.0 - 1.0:  # inside the front disc: fully hidden
            assert anns[0]['segmentations'][t] is None and label is None
            checked.add('hidden')
            continue
        visible = video['visible'][0, t].sum()
        assert abs(visible / disc_area - (1 - occluded)) < 0.06
        if d >= 10.0 + 16.0 + 1.5:  # clearly apart
            assert label == 'no_occlusion'
            checked.add(label)
        elif min(abs(occluded - 0.05), abs(occluded - 0.5)) > 0.06:
            assert label == expected_label(occluded), (t, occluded)
            checked.add(label)
        # the front disc is never occluded
        assert anns[1]['occlusion'][t] in (None, 'no_occlusion')
    assert checked == {'hidden', *OCCLUSION_VALUES}


def test_random_video_visibility_matches_independent_compositing():
    rng = np.random.default_rng(11)
    num_frames, height, width = 8, 64, 96
    for _ in range(3):
        video = make_synthetic_video(
            rng,
            num_frames,
            height,
            width,
            crossing_prob=0.9,
            crossing_time_spread=0.1)
        objects = video['objects']
        anns = video_annotations(video)
        for t in range(num_frames):
            shapes = [o.shape_mask(t, height, width) for o in objects]
            for k, obj in enumerate(objects):
                nearer = np.zeros((height, width), bool)
                for j, other in enumerate(objects):
                    if other.depth > obj.depth:
                        nearer |= shapes[j]
                visible = shapes[k] & ~nearer
                np.testing.assert_array_equal(video['visible'][k, t], visible)
                if visible.sum() == 0:
                    assert anns[k]['occlusion'][t] is None
                else:
                    occluded = 1 - visible.sum() / shapes[k].sum()
                    assert anns[k]['occlusion'][t] == expected_label(occluded)
        # frames show the objects: a visible pixel has its object's colour
        for k, obj in enumerate(objects):
            t = int(np.argmax(video['visible'][k].sum(axis=(1, 2))))
            pixels = video['frames'][t][video['visible'][k, t]].astype(float)
            mean = pixels.mean(0)
            dominant = int(np.argmax(obj.color))
            assert int(np.argmax(mean)) == dominant


def test_default_set_has_occlusion_entries_and_exits(tmp_path):
    paths = generate_synthetic_vis(str(tmp_path))
    stats = occlusion_statistics(paths['train'])
    assert stats['num_videos'] == 36
    assert stats['severe_occlusion'] > 0.05
    assert stats['slight_occlusion'] > 0.05
    assert stats['no_occlusion'] > 0.4
    assert stats['hidden_gap_frames'] > 0
    with open(paths['train']) as f:
        data = json.load(f)
    per_video = {}
    enters = leaves = 0
    for ann in data['annotations']:
        per_video[ann['video_id']] = per_video.get(ann['video_id'], 0) + 1
        segms = ann['segmentations']
        enters += segms[0] is None and segms[-1] is not None
        leaves += segms[0] is not None and segms[-1] is None
    assert min(per_video.values()) >= 1 and max(per_video.values()) <= 4
    assert enters > 0 and leaves > 0
    assert {a['category_id'] for a in data['annotations']} == {1, 2, 3, 4}
    with open(paths['valid']) as f:
        assert len(json.load(f)['videos']) == 10


def test_ensure_synthetic_vis_generates_once(tmp_path):
    root = str(tmp_path / 'synth')
    kwargs = dict(
        num_train_videos=2,
        num_valid_videos=1,
        num_frames=3,
        height=32,
        width=48)
    assert ensure_synthetic_vis(root, **kwargs) == root
    ann = osp.join(root, 'annotations', 'train.json')
    stamp = os.stat(ann).st_mtime_ns
    ensure_synthetic_vis(root, **kwargs)
    assert os.stat(ann).st_mtime_ns == stamp
    ds = SyntheticVISDataset(
        data_root=str(tmp_path / 'other'),
        generator_cfg=kwargs,
        ann_file='annotations/train.json',
        data_prefix=dict(img_path='train/JPEGImages'),
        pipeline=[])
    assert len(ds) == 2
    assert ds.metainfo['classes'] == SYNTHETIC_VIS_CLASSES


def test_cli_writes_the_data_set(tmp_path, monkeypatch, capsys):
    out = tmp_path / 'cli'
    monkeypatch.setattr(sys, 'argv', [
        'make_synthetic_vis.py', '--out',
        str(out), '--num-videos', '2', '--num-valid-videos', '1',
        '--num-frames', '3', '--height', '32', '--width', '48', '--seed', '1'
    ])
    runpy.run_path(
        osp.join(REPO, 'tools', 'dataset_converters', 'make_synthetic_vis.py'),
        run_name='__main__')
    assert 'train' in capsys.readouterr().out
    data = validate_vis_file(out / 'annotations' / 'train.json',
                             out / 'train' / 'JPEGImages')
    assert len(data['videos']) == 2 and data['videos'][0]['length'] == 3


def test_bad_generator_arguments(tmp_path):
    with pytest.raises(ValueError):
        generate_synthetic_vis(str(tmp_path), num_train_videos=-1)
    with pytest.raises(TypeError, match='unknown scene arguments'):
        make_synthetic_video(np.random.default_rng(0), crossing=1)


def _ensure_in_subprocess(args):
    root, kwargs = args
    return ensure_synthetic_vis(root, **kwargs)


def test_ensure_synthetic_vis_is_safe_for_concurrent_ranks(tmp_path):
    """Every rank of a distributed run may generate at once: the result is
    complete and identical to a single-process generation."""
    import multiprocessing as mp
    kwargs = dict(
        num_train_videos=3,
        num_valid_videos=1,
        num_frames=3,
        height=32,
        width=48)
    shared = str(tmp_path / 'shared')
    ctx = mp.get_context('fork')
    with ctx.Pool(3) as pool:
        assert pool.map(_ensure_in_subprocess,
                        [(shared, kwargs)] * 3) == [shared] * 3
    single = ensure_synthetic_vis(str(tmp_path / 'single'), **kwargs)

    def tree(root):
        out = {}
        for dirpath, _, files in os.walk(root):
            for name in files:
                path = osp.join(dirpath, name)
                with open(path, 'rb') as f:
                    out[osp.relpath(path, root)] = f.read()
        return out

    shared_files, single_files = tree(shared), tree(single)
    assert sorted(shared_files) == sorted(single_files)
    assert all(shared_files[k] == single_files[k] for k in single_files)
    # no temporary folders are left behind
    assert not [n for n in os.listdir(tmp_path) if n.startswith('.synthetic')]


def test_presets_resolve_and_reject_unknown_names():
    from mdqe_mm.datasets.synthetic import (SYNTHETIC_PRESETS,
                                            resolve_synthetic_args)
    small = resolve_synthetic_args()
    assert small['preset'] == 'small' and small['num_valid_videos'] == 10
    bench = resolve_synthetic_args('occlusion_benchmark', num_frames=5)
    assert bench['num_frames'] == 5  # an override wins over the preset
    assert bench['num_valid_videos'] == SYNTHETIC_PRESETS[
        'occlusion_benchmark']['num_valid_videos']
    assert bench['same_category_prob'] > 0
    with pytest.raises(ValueError, match='unknown synthetic preset'):
        resolve_synthetic_args('huge')
    with pytest.raises(TypeError, match='num_vidoes'):
        generate_synthetic_vis('/nonexistent', num_vidoes=3)


def test_existing_set_with_other_arguments_is_refused(tmp_path):
    """A config never silently trains or tests on another set than the
    one its generator_cfg names."""
    root = str(tmp_path / 'synth')
    kwargs = dict(
        num_train_videos=1,
        num_valid_videos=1,
        num_frames=3,
        height=32,
        width=48)
    ensure_synthetic_vis(root, **kwargs)
    ensure_synthetic_vis(root, preset='small', **kwargs)  # same set
    with pytest.raises(ValueError, match=r'num_frames=3 \(asked: 4\)'):
        ensure_synthetic_vis(root, **dict(kwargs, num_frames=4))
    with pytest.raises(ValueError, match='preset'):
        ensure_synthetic_vis(root, preset='occlusion_benchmark', **kwargs)
    with pytest.raises(ValueError, match='crossing_prob'):
        SyntheticVISDataset(
            data_root=root,
            generator_cfg=dict(kwargs, crossing_prob=0.1),
            ann_file='annotations/train.json',
            data_prefix=dict(img_path='train/JPEGImages'),
            pipeline=[])
    # a set written before presets existed records no preset: 'small'
    ann_file = osp.join(root, 'annotations', 'valid.json')
    with open(ann_file) as f:
        data = json.load(f)
    for key in ('preset', 'num_train_videos', 'num_valid_videos'):
        data['info'].pop(key)
    data['info']['scene'].pop('same_category_prob')
    with open(ann_file, 'w') as f:
        json.dump(data, f)
    ensure_synthetic_vis(root, **kwargs)
    with pytest.raises(ValueError, match='preset'):
        ensure_synthetic_vis(root, preset='occlusion_benchmark', **kwargs)


def test_track_occlusion_counts_match_the_evaluation(tmp_path):
    """occlusion_statistics' track counts are the APso / APmo / APho groups
    of the evaluation (computed here from its ground-truth loader)."""
    from mdqe_mm.evaluation.functional.vis_eval import DEFAULT_OCCLUSION_RANGES
    from mdqe_mm.evaluation.functional.vis_tracks import load_vis_ground_truth
    paths = generate_synthetic_vis(
        str(tmp_path),
        preset='occlusion_benchmark',
        num_train_videos=0,
        num_valid_videos=12)
    stats = occlusion_statistics(paths['valid'])
    ground_truth = load_vis_ground_truth(paths['valid'])
    scores = np.concatenate(
        [tracks.occlusion_scores for tracks in ground_truth.tracks.values()])
    assert len(scores) == stats['num_instances']
    for name, (low, high) in DEFAULT_OCCLUSION_RANGES:
        expected = int(((scores >= low) & (scores <= high)).sum())
        assert stats[f'tracks_{name}'] == expected


def test_benchmark_preset_is_occluded_and_has_look_alike_crossings(tmp_path):
    """The benchmark preset's documented character, on a 40-video sample:
    a large share of heavily occluded tracks, objects hidden and coming
    back, and crossing objects of one category."""
    paths = generate_synthetic_vis(
        str(tmp_path),
        preset='occlusion_benchmark',
        num_train_videos=0,
        num_valid_videos=40)
    stats = occlusion_statistics(paths['valid'])
    assert stats['num_instances'] >= 40 * 2.5
    assert stats['tracks_heavy'] / stats['num_instances'] > 0.2
    assert stats['instances_hidden_and_back'] >= 3
    assert stats['hidden_gap_frames'] > stats['instances_hidden_and_back']
    with open(paths['valid']) as f:
        data = json.load(f)
    same_category_overlaps = 0
    by_video = {}
    for ann in data['annotations']:
        by_video.setdefault(ann['video_id'], []).append(ann)
    for anns in by_video.values():
        for i, a in enumerate(anns):
            for b in anns[i + 1:]:
                if a['category_id'] != b['category_id']:
                    continue
                # boxes of one frame overlap: the two look-alikes meet
                for box_a, box_b in zip(a['bboxes'], b['bboxes']):
                    if box_a is None or box_b is None:
                        continue
                    ax, ay, aw, ah = box_a
                    bx, by, bw, bh = box_b
                    if (min(ax + aw, bx + bw) > max(ax, bx)
                            and min(ay + ah, by + bh) > max(ay, by)):
                        same_category_overlaps += 1
                        break
    assert same_category_overlaps >= 8


def test_small_preset_ignores_the_same_category_knob_draws(tmp_path):
    """same_category_prob=0 (the small preset) draws nothing extra: the
    scene of every other knob is unchanged by the knob's existence."""
    a = make_synthetic_video(np.random.default_rng(3), num_frames=4)
    b = make_synthetic_video(
        np.random.default_rng(3), num_frames=4, same_category_prob=0.0)
    np.testing.assert_array_equal(a['frames'], b['frames'])
    c = make_synthetic_video(
        np.random.default_rng(3),
        num_frames=4,
        crossing_prob=1.0,
        num_objects=(4, 4),
        same_category_prob=1.0)
    assert len({obj.category for obj in c['objects']}) == 1


def test_occluder_hides_crossing_objects_for_several_frames(tmp_path):
    """occluder_prob=1: every video gets a large object in front of all the
    others, and objects vanish behind it and come back."""
    plain = generate_synthetic_vis(
        str(tmp_path / 'plain'),
        preset='occlusion_benchmark',
        num_train_videos=0,
        num_valid_videos=20)
    hidden = generate_synthetic_vis(
        str(tmp_path / 'occluder'),
        preset='occlusion_benchmark',
        num_train_videos=0,
        num_valid_videos=20,
        occluder_prob=1.0)
    before = occlusion_statistics(plain['valid'])
    after = occlusion_statistics(hidden['valid'])
    assert after['instances_hidden_and_back'] > 2 * max(
        before['instances_hidden_and_back'], 1)
    assert after['hidden_gap_frames'] > before['hidden_gap_frames']
    rng = np.random.default_rng(0)
    video = make_synthetic_video(rng, num_frames=6, occluder_prob=1.0)
    occluder = max(video['objects'], key=lambda obj: obj.depth)
    assert all(occluder.size >= obj.size for obj in video['objects'])


def test_cli_preset_and_scene_options(tmp_path, monkeypatch, capsys):
    out = tmp_path / 'cli'
    monkeypatch.setattr(sys, 'argv', [
        'make_synthetic_vis.py', '--out',
        str(out), '--preset', 'occlusion_benchmark', '--num-videos', '1',
        '--num-valid-videos', '2', '--occluder-prob', '0.5',
        '--same-category-prob', '0.25'
    ])
    runpy.run_path(
        osp.join(REPO, 'tools', 'dataset_converters', 'make_synthetic_vis.py'),
        run_name='__main__')
    assert 'tracks_heavy' in capsys.readouterr().out
    with open(out / 'annotations' / 'valid.json') as f:
        info = json.load(f)['info']
    assert info['preset'] == 'occlusion_benchmark'
    assert info['num_frames'] == 12 and info['num_valid_videos'] == 2
    assert info['scene']['occluder_prob'] == 0.5
    assert info['scene']['same_category_prob'] == 0.25
    # the existing set is reused only when asked for with the same options
    ensure_synthetic_vis(
        str(out),
        preset='occlusion_benchmark',
        num_train_videos=1,
        num_valid_videos=2,
        occluder_prob=0.5,
        same_category_prob=0.25)
    with pytest.raises(ValueError, match='occluder_prob'):
        ensure_synthetic_vis(
            str(out),
            preset='occlusion_benchmark',
            num_train_videos=1,
            num_valid_videos=2,
            same_category_prob=0.25)

# Copyright (c) OpenMMLab. All rights reserved.
import json
import math
import os

import cv2
import numpy as np
import pytest

BROWSE = 'tools/analysis_tools/browse_vis.py'
SCORES = {
    'no_occlusion': 0.0,
    'slight_occlusion': 0.25,
    'severe_occlusion': 0.75
}


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    from mdqe_mm.datasets import ensure_synthetic_vis
    root = str(tmp_path_factory.mktemp('browse') / 'synthetic')
    ensure_synthetic_vis(
        root,
        num_train_videos=1,
        num_valid_videos=2,
        num_frames=4,
        height=128,
        width=192)
    ann_file = os.path.join(root, 'annotations', 'valid.json')
    with open(ann_file) as f:
        ann = json.load(f)
    # "perfect" results: every ground-truth track, with its annotation id
    results = [
        dict(
            video_id=a['video_id'],
            category_id=a['category_id'],
            score=0.9,
            track_id=a['id'],
            segmentations=a['segmentations']) for a in ann['annotations']
    ]
    res_file = os.path.join(root, 'results.json')
    with open(res_file, 'w') as f:
        json.dump(results, f)
    return dict(root=root, ann_file=ann_file, ann=ann, res_file=res_file)


def _count_frames(path):
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def test_ground_truth_videos_and_occlusion_levels(data, tmp_path, load_tool,
                                                  capsys):
    browse = load_tool(BROWSE)
    out = str(tmp_path / 'gt')
    assert browse.main([data['ann_file'], '--out', out, '--strip-frames',
                        '3']) == 0
    printed = capsys.readouterr().out
    for video in data['ann']['videos']:
        name = video['file_names'][0].split('/')[0]
        frames = _count_frames(os.path.join(out, name + '.mp4'))
        assert len(frames) == video['length']
        assert frames[0].shape == (video['height'], video['width'], 3)
        strip = cv2.imread(os.path.join(out, name + '_strip.png'))
        assert strip.shape == (video['height'], 3 * video['width'] + 8, 3)
    with open(os.path.join(out, 'index.json')) as f:
        index = json.load(f)
    listed = {i['id']: i for v in index for i in v['instances']}
    assert set(listed) == {a['id'] for a in data['ann']['annotations']}
    for ann in data['ann']['annotations']:
        # independent reference: OVIS score = mean of the top half
        scores = sorted(SCORES[o] for o in ann['occlusion'] if o)
        top = scores[len(scores) - math.ceil(len(scores) / 2):]
        expected = sum(top) / len(top)
        inst = listed[ann['id']]
        assert inst['occlusion_score'] == pytest.approx(expected)
        level = 'light' if expected <= 0.25 else \
            'medium' if expected <= 0.5 else 'heavy'
        assert inst['occlusion_level'] == level
        assert f'id {ann["id"]}: ' in printed


def test_results_next_to_ground_truth_as_frames(data, tmp_path, load_tool):
    browse = load_tool(BROWSE)
    out = tmp_path / 'both'
    assert browse.main([
        data['ann_file'], '--results', data['res_file'], '--out',
        str(out), '--format', 'frames', '--videos', 'vid_0001'
    ]) == 0
    video = data['ann']['videos'][1]
    assert sorted(p for p in os.listdir(out)
                  if not p.endswith('.json')) == ['vid_0001']
    names = sorted(os.listdir(out / 'vid_0001'))
    assert names == [f'{t:05d}.jpg' for t in range(video['length'])]
    image = cv2.imread(str(out / 'vid_0001' / names[0]))
    width = video['width']
    assert image.shape == (video['height'], 2 * width, 3)
    # perfect results: the two panels show the same masks in the same
    # colours (same ids); JPEG noise aside they match except at the labels
    # ("id class occ:level" vs "id class score")
    left, right = image[:, :width].astype(int), image[:, width:].astype(int)
    close = np.abs(left - right).max(-1) <= 12
    assert close.mean() > 0.8
    # and the masks are drawn: the panels differ from the raw frame there
    frame = cv2.imread(
        os.path.join(data['root'], 'valid', 'JPEGImages',
                     video['file_names'][0])).astype(int)
    assert (np.abs(right - frame).max(-1) > 12).mean() > 0.05


@pytest.mark.parametrize(
    'case',
    ['unknown_video', 'no_img_root', 'out_is_img_root', 'unknown_name'])
def test_bad_inputs(data, tmp_path, load_tool, capsys, case):
    browse = load_tool(BROWSE)
    args = [data['ann_file'], '--out', str(tmp_path / 'out')]
    if case == 'unknown_video':
        bad = tmp_path / 'bad.json'
        bad.write_text(
            json.dumps([
                dict(
                    video_id=99,
                    category_id=1,
                    score=0.5,
                    segmentations=[None] * 4)
            ]))
        args += ['--results', str(bad)]
        message = 'video_id'
    elif case == 'no_img_root':
        args += ['--img-root', str(tmp_path / 'nowhere')]
        message = '--img-root'
    elif case == 'out_is_img_root':
        img_root = os.path.join(data['root'], 'valid', 'JPEGImages')
        args = [data['ann_file'], '--out', img_root]
        message = 'image root'
    else:
        args += ['--videos', 'no_such_video']
        message = 'no_such_video'
    assert browse.main(args) == 1
    err = capsys.readouterr().err
    assert message in err
    assert not (tmp_path / 'out').exists()

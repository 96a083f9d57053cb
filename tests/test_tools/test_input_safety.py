# Copyright (c) OpenMMLab. All rights reserved.
"""Bad input to the data tools: a clear message, and no file changed.

Each case runs the tool's ``main(argv)`` in-process and checks the message
and the bytes of every file the tool could have touched.
"""
import hashlib
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from .conftest import REPO_ROOT


def snapshot(folder):
    """{relative path: sha1} of every file under ``folder``."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = osp.join(root, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path,
                                folder)] = hashlib.sha1(f.read()).hexdigest()
    return out


@pytest.fixture(scope='module')
def tools(load_tool):
    return dict(
        eval_vis=load_tool('tools/analysis_tools/eval_vis.py'),
        split=load_tool('tools/dataset_converters/split_vis_train.py'),
        png=load_tool('tools/dataset_converters/png_masks_to_vis.py'),
        synth=load_tool('tools/dataset_converters/make_synthetic_vis.py'),
        convert=load_tool('tools/model_converters/mdqe_reference_to_mmdet.py'))


@pytest.fixture
def vis_files(tmp_path, synthetic_root):
    """ann.json (synthetic ground truth), res.json (its tracks as
    results) and an earlier metrics.json, in tmp_path/d."""
    folder = tmp_path / 'd'
    folder.mkdir()
    ann = folder / 'ann.json'
    shutil.copy(osp.join(synthetic_root, 'annotations', 'valid.json'), ann)
    gt = json.loads(ann.read_text())
    results = [
        dict(
            video_id=a['video_id'],
            category_id=a['category_id'],
            score=0.9,
            segmentations=a['segmentations']) for a in gt['annotations']
    ]
    res = folder / 'res.json'
    res.write_text(json.dumps(results))
    (folder / 'metrics.json').write_text('{"AP": 0.5}')
    return folder


def test_eval_vis_never_writes_over_its_inputs(tools, vis_files, capsys):
    main = tools['eval_vis'].main
    before = snapshot(vis_files)
    ann, res = str(vis_files / 'ann.json'), str(vis_files / 'res.json')
    os.symlink(ann, vis_files.parent / 'link.json')
    for out in (ann, res, str(vis_files.parent / 'link.json'),
                str(vis_files / '..' / 'd' / 'ann.json')):
        assert main([ann, res, '--out', out]) == 2
        err = capsys.readouterr().err
        assert 'eval_vis.py: output' in err and 'is the input file' in err
    assert snapshot(vis_files) == before

    # --out is checked before the (long) evaluation
    def no_evaluation(*args, **kwargs):
        raise AssertionError('evaluated before checking --out')

    real = tools['eval_vis'].VISEval
    tools['eval_vis'].VISEval = no_evaluation
    try:
        assert main([ann, res, '--out',
                     str(vis_files / 'no_dir' / 'm.json')]) == 2
        assert 'folder' in capsys.readouterr().err
        assert main([ann, res, '--out', str(vis_files)]) == 2
        assert 'is a folder' in capsys.readouterr().err
    finally:
        tools['eval_vis'].VISEval = real

    # a failed run leaves the earlier metrics as they were
    bad = vis_files.parent / 'bad.json'
    bad.write_text('[{"video_id": 1,')
    metrics = str(vis_files / 'metrics.json')
    assert main([ann, str(bad), '--out', metrics]) == 2
    assert f'{bad}: not valid JSON' in capsys.readouterr().err
    assert snapshot(vis_files) == before

    # empty results: scored, with a warning
    empty = vis_files.parent / 'empty.json'
    empty.write_text('[]')
    assert main([ann, str(empty), '--out', metrics]) == 0
    assert 'holds no prediction' in capsys.readouterr().err
    assert json.loads((vis_files / 'metrics.json').read_text())['AP'] == 0
    assert main([ann, res, '--out', metrics]) == 0
    assert json.loads((vis_files / 'metrics.json').read_text())['AP'] == 1
    assert sorted(
        os.listdir(vis_files)) == ['ann.json', 'metrics.json',
                                   'res.json']  # no temporary files left


def split_input(num_videos, categories=True):
    videos = [
        dict(
            id=v,
            height=8,
            width=8,
            length=2,
            file_names=[f'v{v}/0.jpg', f'v{v}/1.jpg'])
        for v in range(1, num_videos + 1)
    ]
    anns = [
        dict(
            id=v,
            video_id=v,
            category_id=1,
            segmentations=[None, None],
            bboxes=[None, None],
            areas=[None, None]) for v in range(1, num_videos + 1)
    ]
    data = dict(videos=videos, annotations=anns)
    if categories:
        data['categories'] = [dict(id=1, name='a')]
    return data


def test_split_vis_train_refuses_bad_input_and_keeps_files(
        tools, tmp_path, capsys):
    main = tools['split'].main
    out = tmp_path / 'out'
    out.mkdir()
    src = out / 'train_sub.json'
    src.write_text(json.dumps(split_input(20)))
    before = snapshot(tmp_path)
    # the input is one of the outputs (also through 'out/../out')
    for out_dir in (str(out), str(out / '..' / 'out')):
        with pytest.raises(
                SystemExit, match='train_sub.json is the input '
                'file'):
            main([str(src), '--out-dir', out_dir])
    assert snapshot(tmp_path) == before

    good = tmp_path / 'train.json'
    good.write_text(json.dumps(split_input(20)))
    main([str(good), '--out-dir', str(tmp_path / 'split')])
    assert 'valid_sub.json: 2 videos' in capsys.readouterr().out
    before = snapshot(tmp_path)

    cases = [
        (split_input(20, categories=False), 'the file has no "categories" '
         'list'),
        (split_input(1), 'valid_sub would be empty: none of the 1 videos'),
    ]
    unknown = split_input(20)
    unknown['annotations'][3]['category_id'] = 7
    cases.append((unknown, r'annotations use category ids \[7\] that '
                  r'"categories" does not list \(first: annotation 4 of '
                  r'video 4\)'))
    bad = tmp_path / 'bad.json'
    for data, message in cases:
        bad.write_text(json.dumps(data))
        with pytest.raises(SystemExit, match=f'{bad}: {message}'):
            main([str(bad), '--out-dir', str(tmp_path / 'split')])
    bad.write_text('{"videos": [')
    with pytest.raises(SystemExit, match=f'{bad} is not valid JSON'):
        main([str(bad), '--out-dir', str(tmp_path / 'split')])
    now = snapshot(tmp_path)
    del now['bad.json']
    assert now == before  # earlier train_sub/valid_sub untouched


def write_video(root, video, sizes, mask_sizes=None, ids=1):
    (root / 'JPEGImages' / video).mkdir(parents=True, exist_ok=True)
    (root / 'Annotations' / video).mkdir(parents=True, exist_ok=True)
    for t, (h, w) in enumerate(sizes):
        cv2.imwrite(
            str(root / 'JPEGImages' / video / f'{t:05d}.jpg'),
            np.zeros((h, w, 3), np.uint8))
        if mask_sizes is not None:
            mh, mw = mask_sizes[t]
            mask = np.zeros((mh, mw), np.uint8)
            mask[1:4, 1:4] = ids
            Image.fromarray(
                mask,
                mode='L').save(root / 'Annotations' / video / f'{t:05d}.png')


def test_png_masks_to_vis_checks_sizes_and_frames(tools, tmp_path, capsys):
    main = tools['png'].main
    root = tmp_path / 'root'
    write_video(root, 'a', [(20, 30)] * 2, [(20, 30)] * 2)
    out = tmp_path / 'out.json'
    main([str(root), '--out', str(out), '--default-category', 'x'])
    data = json.loads(out.read_text())
    assert (data['videos'][0]['height'], data['videos'][0]['width']) == (20,
                                                                         30)
    earlier = out.read_bytes()

    def fails(message, *extra):
        with pytest.raises(SystemExit, match=message):
            main([str(root), '--out',
                  str(out), '--default-category', 'x'] + list(extra))
        assert out.read_bytes() == earlier  # the earlier output is kept

    # masks of another size than their frames
    write_video(root, 'b', [(20, 30)] * 2, [(20, 30), (30, 20)])
    fails(r'video b: mask .*b/00001.png is 30x20 \(h x w\) but its frame '
          r'.*b/00001.jpg is 20x30')
    shutil.rmtree(root / 'JPEGImages' / 'b')
    shutil.rmtree(root / 'Annotations' / 'b')
    # frames of different sizes in one video
    write_video(root, 'c', [(20, 30), (22, 30)])
    fails(r'video c: frame .*c/00001.jpg is 22x30 \(h x w\) but 00000.jpg '
          'is 20x30')
    shutil.rmtree(root / 'JPEGImages' / 'c')
    # an unreadable frame
    (root / 'JPEGImages' / 'a' / '00002.jpg').write_bytes(b'not a jpeg')
    fails(r'video a: unreadable frame: .*a/00002.jpg is not an image')
    os.remove(root / 'JPEGImages' / 'a' / '00002.jpg')
    # the output is the --meta input, or lies in a frame folder
    meta = tmp_path / 'meta.json'
    meta.write_text('{"videos": {}}')
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit, match='meta.json is the input file'):
        main([
            str(root), '--out',
            str(meta), '--meta',
            str(meta), '--default-category', 'x'
        ])
    with pytest.raises(SystemExit, match='inside the input folder'):
        main([
            str(root), '--out',
            str(root / 'Annotations' / 'o.json'), '--default-category', 'x'
        ])
    assert snapshot(tmp_path) == before
    # empty input: no videos, or no instance in any mask
    empty = tmp_path / 'empty'
    (empty / 'JPEGImages').mkdir(parents=True)
    (empty / 'Annotations').mkdir()
    with pytest.raises(SystemExit, match='no video with frames'):
        main([str(empty), '--out', str(tmp_path / 'e.json')])
    write_video(empty, 'v', [(8, 8)], [(8, 8)], ids=0)
    with pytest.raises(SystemExit, match='no instance in the PNG masks'):
        main([str(empty), '--out', str(tmp_path / 'e.json')])
    assert not (tmp_path / 'e.json').exists()


def test_make_synthetic_vis_keeps_foreign_data(tools, tmp_path, capsys):
    main = tools['synth'].main
    small = [
        '--num-videos', '1', '--num-valid-videos', '1', '--num-frames', '2',
        '--height', '32', '--width', '32'
    ]
    real = tmp_path / 'ovis'
    (real / 'annotations').mkdir(parents=True)
    (real / 'annotations' / 'train.json').write_text('{"videos": []}')
    before = snapshot(tmp_path)
    with pytest.raises(
            SystemExit,
            match=r'holds files this tool did not '
            r'write \(.*annotations/train.json\)'):
        main(['--out', str(real)] + small)
    (tmp_path / 'file').write_text('x')
    with pytest.raises(SystemExit, match='did not write'):
        main(['--out', str(tmp_path / 'file')] + small)
    del before  # 'file' was added on purpose
    synth = tmp_path / 'synth'
    main(['--out', str(synth)] + small)
    main(['--out', str(synth), '--seed', '1'] + small)  # regenerated
    info = json.loads((synth / 'annotations' / 'valid.json').read_text())
    assert info['info']['seed'] == 1
    assert sorted(os.listdir(tmp_path)) == ['file', 'ovis', 'synth']
    assert (real / 'annotations' / 'train.json').read_text() == \
        '{"videos": []}'


def test_converter_refuses_dst_over_src_and_missing_parts(
        tools, tmp_path, capsys):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'reference_converter_test',
        osp.join(REPO_ROOT, 'tests', 'test_tools',
                 'test_reference_converter.py'))
    helpers = importlib.util.module_from_spec(spec)
    helpers.__package__ = 'tests.test_tools'
    import sys
    sys.path.insert(0, REPO_ROOT)
    try:
        spec.loader.exec_module(helpers)
    finally:
        sys.path.remove(REPO_ROOT)
    reference = helpers.random_reference_state_dict()
    main = tools['convert'].main
    src = tmp_path / 'ref.pth'
    torch.save(dict(model=reference), src)
    os.symlink(src, tmp_path / 'alias.pth')
    before = snapshot(tmp_path)
    for dst in (src, tmp_path / 'alias.pth', tmp_path / '.' / 'ref.pth'):
        with pytest.raises(SystemExit, match='is the input file'):
            main([str(src), str(dst)])
    assert snapshot(tmp_path) == before

    dst = tmp_path / 'out.pth'
    dst.write_bytes(b'earlier output')
    no_decoder = {
        k: v
        for k, v in reference.items()
        if not k.startswith('detr.transformer_dec.decoder.')
    }
    partial = tmp_path / 'partial.pth'
    torch.save(dict(model=no_decoder), partial)
    with pytest.raises(
            SystemExit,
            match=r'partial.pth lacks 1 parts of the MDQE model:'
            r'\n  track_head.decoder.layers\nNothing was written'):
        main([str(partial), str(dst)])
    assert dst.read_bytes() == b'earlier output'
    assert main([str(partial), str(dst), '--allow-missing']) == 0
    assert 'written anyway' in capsys.readouterr().out
    assert 'state_dict' in torch.load(dst, weights_only=False)

    ann = tmp_path / 'ann.json'
    ann.write_text('{"videos": []}')
    with pytest.raises(
            SystemExit,
            match=r'ann.json is not a checkpoint: it '
            'seems to be a JSON file'):
        main([str(ann), str(tmp_path / 'x.pth')])
    assert not (tmp_path / 'x.pth').exists()


@pytest.mark.skipif(shutil.which('bash') is None, reason='needs bash')
def test_launch_scripts_use_the_chosen_python(tmp_path, run_tool):
    log = tmp_path / 'calls.txt'
    fake = tmp_path / 'fake_python'
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    fake.chmod(0o755)
    for script, args in (('dist_train.sh', ['cfg.py', '2']),
                         ('dist_test.sh', ['cfg.py', 'c.pth', '2'])):
        out = run_tool(
            ['bash', osp.join('tools', script)] + args,
            env=dict(PYTHON=str(fake)))
        assert out.returncode == 0, out.stderr
    calls = log.read_text().splitlines()
    assert len(calls) == 2
    assert calls[0].startswith('-m torch.distributed.run')
    assert 'train.py cfg.py --launcher pytorch' in calls[0]
    assert 'test.py cfg.py c.pth --launcher pytorch' in calls[1]

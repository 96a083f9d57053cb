# Copyright (c) OpenMMLab. All rights reserved.
"""tools/test.py and tools/train.py stop on wrong weights, misspelled
settings, broken configs and outputs over inputs.

Most cases run the tool's ``main()`` in-process (a unique
``experiment_name`` each); one runs it as a user would, in a subprocess.
"""
import itertools
import os.path as osp
import sys

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

from .conftest import REPO_ROOT

QUICKSTART = osp.join(REPO_ROOT, 'configs', 'quickstart',
                      'mdqe_tiny_1xb2-4k_synthetic.py')
_names = itertools.count()


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """good / unrelated / coco80 (80-class heads) / json checkpoints."""
    init_default_scope('mmdet')
    folder = tmp_path_factory.mktemp('ckpts')
    state = MODELS.build(Config.fromfile(QUICKSTART).model).state_dict()
    coco = dict(state)
    heads = ('cls_embed.layers.2.weight', 'cls_embed.layers.2.bias')
    for key in coco:
        if key.endswith(heads):
            coco[key] = torch.zeros((80, ) + tuple(coco[key].shape[1:]))
    files = dict(
        good=dict(state_dict=state),
        unrelated=dict(state_dict={'fc.weight': torch.zeros(3, 3)}),
        coco80=dict(state_dict=coco))
    paths = {}
    for name, content in files.items():
        paths[name] = str(folder / f'{name}.pth')
        torch.save(content, paths[name])
    paths['json'] = str(folder / 'results.json')
    with open(paths['json'], 'w') as f:
        f.write('[{"video_id": 1}]')
    return paths


def run_main(tool, argv, monkeypatch, opts, tmp_path):
    """``tool.main()`` with ``argv`` and the quick-start options."""
    opts = opts + [f'experiment_name=safety_{next(_names)}']
    monkeypatch.setattr(
        sys, 'argv', [tool.__file__] + argv +
        ['--work-dir', str(tmp_path / 'work'), '--cfg-options'] + opts)
    tool.main()


@pytest.fixture(scope='module')
def test_tool(load_tool):
    return load_tool('tools/test.py')


@pytest.fixture(scope='module')
def train_tool(load_tool):
    return load_tool('tools/train.py')


def test_test_py_refuses_weights_that_do_not_fit(test_tool, checkpoints,
                                                 quickstart_opts, tmp_path,
                                                 monkeypatch):
    with pytest.raises(SystemExit) as info:
        run_main(test_tool, [QUICKSTART, checkpoints['unrelated']],
                 monkeypatch, quickstart_opts, tmp_path)
    message = str(info.value)
    assert message.startswith(f'test.py: error: checkpoint '
                              f'{checkpoints["unrelated"]} does not fit')
    assert "of the model's 320 tensors, 320 are missing from it" in message
    assert 'missing from the checkpoint: level_embed, backbone.conv1' \
        in message
    assert 'not in the model: fc.weight' in message
    assert '--allow-partial-load' in message

    with pytest.raises(
            SystemExit,
            match=r'0 are missing from it and 4 have '
            r'another shape(.|\n)*track_head.cls_embed.layers.2.'
            r'weight \(80, 32\) vs \(4, 32\)'):
        run_main(test_tool, [QUICKSTART, checkpoints['coco80']], monkeypatch,
                 quickstart_opts, tmp_path)

    # on purpose: tests, and dumps the predictions atomically
    out = tmp_path / 'preds.pkl'
    run_main(test_tool, [
        QUICKSTART, checkpoints['coco80'], '--allow-partial-load', '--out',
        str(out)
    ], monkeypatch, quickstart_opts, tmp_path)
    assert out.stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir()
            if p.name.startswith('.')] == []  # no temporary file left


def test_test_py_bad_files_and_settings(test_tool, checkpoints,
                                        quickstart_opts, synthetic_root,
                                        tmp_path, monkeypatch):
    with pytest.raises(
            SystemExit,
            match=r'test.py: checkpoint .*results.json is not a '
            'PyTorch checkpoint: it seems to be a JSON file'):
        run_main(test_tool, [QUICKSTART, checkpoints['json']], monkeypatch,
                 quickstart_opts, tmp_path)
    with pytest.raises(
            SystemExit,
            match=r"model.test_cfg: unknown key 'window_lenght' "
            r"\(did you mean 'window_length'\?\)"):
        run_main(test_tool, [QUICKSTART, checkpoints['good']], monkeypatch,
                 quickstart_opts + ['model.test_cfg.window_lenght=3'],
                 tmp_path)
    broken = tmp_path / 'broken.py'
    broken.write_text(f"_base_ = ['{QUICKSTART}']\nmodel = dict(\n"
                      "    test_cfg=dict(cls_thr=0.2)\n")
    with pytest.raises(
            SystemExit,
            match=rf'test.py: {broken}:2:\d+: syntax error in '
            'config'):
        run_main(test_tool, [str(broken), checkpoints['good']], monkeypatch,
                 quickstart_opts, tmp_path)

    # --out resolving to the checkpoint (plain, symlink, 'dir/..')
    ckpt = tmp_path / 'model.pkl'
    with open(checkpoints['good'], 'rb') as f:
        ckpt_bytes = f.read()
    ckpt.write_bytes(ckpt_bytes)
    (tmp_path / 'sub').mkdir()
    link = tmp_path / 'link.pkl'
    link.symlink_to(ckpt)
    for out in (ckpt, link, tmp_path / 'sub' / '..' / 'model.pkl'):
        with pytest.raises(
                SystemExit, match=r'test.py: output .* is the input file'):
            run_main(test_tool,
                     [QUICKSTART, str(ckpt), '--out',
                      str(out)], monkeypatch, quickstart_opts, tmp_path)
    assert ckpt.read_bytes() == ckpt_bytes
    # rendering into the frame folder would replace the frames
    frames = osp.join(synthetic_root, 'valid', 'JPEGImages')
    with pytest.raises(SystemExit, match=r'--show-dir: output .* lies inside '
                       'the input folder'):
        run_main(test_tool,
                 [QUICKSTART, checkpoints['good'], '--show-dir', frames],
                 monkeypatch, quickstart_opts, tmp_path)
    ann = osp.join(synthetic_root, 'annotations', 'valid.json')
    with pytest.raises(SystemExit, match='must end with .pkl'):
        run_main(test_tool, [QUICKSTART, checkpoints['good'], '--out', ann],
                 monkeypatch, quickstart_opts, tmp_path)
    with pytest.raises(
            SystemExit,
            match='cannot write .*model.pkl is a '
            'file, not a folder'):
        run_main(
            test_tool,
            [QUICKSTART, checkpoints['good'], '--out',
             str(ckpt / 'x.pkl')], monkeypatch, quickstart_opts, tmp_path)


def test_train_py_checks_load_from_and_resume(train_tool, checkpoints,
                                              quickstart_opts, tmp_path,
                                              monkeypatch, capsys):
    opts = quickstart_opts + ['train_cfg.max_iters=1']
    with pytest.raises(
            SystemExit,
            match=r'train.py: error: load_from .*unrelated.pth: '
            r'only 0.0% of the model.s values load .* below '
            'min_loaded_ratio=0.5'):
        run_main(train_tool, [QUICKSTART], monkeypatch,
                 opts + [f'load_from={checkpoints["unrelated"]}'], tmp_path)
    with pytest.raises(SystemExit, match='cannot resume from .*coco80.pth'):
        run_main(train_tool, [QUICKSTART, '--resume', checkpoints['coco80']],
                 monkeypatch, opts, tmp_path)
    with pytest.raises(
            SystemExit,
            match='load_from .*results.json is not a PyTorch '
            'checkpoint'):
        run_main(train_tool, [QUICKSTART], monkeypatch,
                 opts + [f'load_from={checkpoints["json"]}'], tmp_path)
    # COCO -> 4 classes: the class heads differ, the rest loads: trains
    run_main(train_tool, [QUICKSTART], monkeypatch,
             opts + [f'load_from={checkpoints["coco80"]}'], tmp_path)
    assert (tmp_path / 'work' / 'iter_1.pth').is_file()


def test_wrong_weights_exit_nonzero_without_traceback(checkpoints,
                                                      quickstart_opts,
                                                      tmp_path, run_tool):
    out = run_tool([
        osp.join('tools', 'test.py'), QUICKSTART, checkpoints['unrelated'],
        '--work-dir',
        str(tmp_path), '--cfg-options'
    ] + quickstart_opts)
    assert out.returncode == 1
    assert 'does not fit the model' in out.stderr
    assert 'Traceback' not in out.stderr
    assert 'vis/AP' not in out.stdout + out.stderr

# Copyright (c) OpenMMLab. All rights reserved.
"""mdqe_mm.utils.checkpoint_check: file sniffing and load reports."""
import gzip
import logging
import zipfile
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config

from mdqe_mm.utils import (CheckpointLoadCheckHook, CheckpointLoadError,
                           add_checkpoint_check, check_checkpoint_file,
                           compare_state_dict, describe_checkpoint_file)


def detector(num_classes=25):
    """A 'backbone' much larger than the class head, like MDQE."""
    return nn.ModuleDict(
        dict(
            backbone=nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64)),
            cls_head=nn.Linear(64, num_classes)))


def test_describe_checkpoint_file(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict=detector().state_dict()), good)
    assert describe_checkpoint_file(str(good)) is None
    legacy = tmp_path / 'legacy.pth'
    torch.save({'a': torch.zeros(1)},
               legacy,
               _use_new_zipfile_serialization=False)
    assert describe_checkpoint_file(str(legacy)) is None

    cases = {
        'empty.pth': (b'', 'empty file'),
        'ann.json': (b'\n {"videos": []}', 'a JSON file'),
        'notes.txt': (b'epoch 12: AP 30.1\nmore', "text file starting with "
                      "'epoch 12: AP 30.1'"),
        'page.pth': (b'<!DOCTYPE html><html>', 'HTML page'),
        'blob.bin': (b'\x00\x01\x02\xff\xfe', 'unknown binary data'),
        'half.pth': (good.read_bytes()[:100], 'truncated or damaged zip'),
        'w.pth.gz': (gzip.compress(b'xyz'), 'gzip-compressed'),
        'k.h5': (b'\x89HDF\r\n\x1a\n' + b'\x00' * 16, 'HDF5'),
    }
    for name, (content, expected) in cases.items():
        (tmp_path / name).write_bytes(content)
        assert expected in describe_checkpoint_file(str(tmp_path / name)), \
            name
    archive = tmp_path / 'weights.zip'
    with zipfile.ZipFile(archive, 'w') as zf:
        zf.writestr('model/weights.bin', b'123')
    found = describe_checkpoint_file(str(archive))
    assert 'zip archive without data.pkl' in found
    assert 'model/weights.bin' in found

    with pytest.raises(
            CheckpointLoadError,
            match=r'ann.json is not a PyTorch checkpoint: it '
            'seems to be a JSON file'):
        check_checkpoint_file(str(tmp_path / 'ann.json'))
    with pytest.raises(CheckpointLoadError, match='load_from not found'):
        check_checkpoint_file(str(tmp_path / 'nope.pth'), 'load_from')
    with pytest.raises(CheckpointLoadError, match='is a folder'):
        check_checkpoint_file(str(tmp_path))
    # remote files are left to mmengine
    check_checkpoint_file('https://example.com/x.pth')
    check_checkpoint_file('torchvision://resnet50')
    check_checkpoint_file(str(good))


def test_compare_state_dict_counts_and_lists_keys():
    model = detector(25)
    ckpt = {
        f'module.{k}': v.clone()
        for k, v in detector(80).state_dict().items()
    }
    del ckpt['module.backbone.1.running_var']
    ckpt['module.extra.weight'] = torch.zeros(2)
    report = compare_state_dict(model, dict(state_dict=ckpt), 'c.pth')
    assert report.missing == ['backbone.1.running_var']
    assert report.mismatched == [('cls_head.weight', (80, 64), (25, 64)),
                                 ('cls_head.bias', (80, ), (25, ))]
    assert report.unexpected == ['extra.weight']
    values = {k: v.numel() for k, v in model.state_dict().items()}
    total = sum(values.values())
    loaded = total - values['backbone.1.running_var'] - values[
        'cls_head.weight'] - values['cls_head.bias']
    assert report.loaded_values == loaded
    assert report.loaded_ratio == pytest.approx(loaded / total)
    summary = report.summary()
    assert 'loads 6 of 9 model tensors' in summary
    assert 'missing 1, shape-mismatched 2, unexpected 1' in summary
    details = report.details()
    assert 'cls_head.weight (80, 64) vs (25, 64)' in details
    assert 'not in the model: extra.weight' in details
    # a bare state dict (no 'state_dict' entry) is read too
    assert compare_state_dict(model, model.state_dict()).missing == []
    with pytest.raises(CheckpointLoadError, match='holds a list'):
        compare_state_dict(model, [1, 2], 'r.pkl')
    with pytest.raises(CheckpointLoadError, match='no model weights'):
        compare_state_dict(model, dict(meta=dict(epoch=1)), 'm.pth')


def fake_runner(model, resume=False, load_from='ckpt.pth'):
    return SimpleNamespace(
        model=model,
        _resume=resume,
        _load_from=load_from,
        work_dir='.',
        logger=logging.getLogger('checkpoint_check_test'))


def test_hook_rules_for_test_finetune_and_resume():
    model = detector(25)
    coco = dict(state_dict=detector(80).state_dict())  # other class count
    unrelated = dict(state_dict={'foo.weight': torch.zeros(3)})
    same = dict(state_dict=detector(25).state_dict())

    test_hook = CheckpointLoadCheckHook(mode='test')
    test_hook.after_load_checkpoint(fake_runner(model), same)
    assert test_hook.last_report.missing == []
    with pytest.raises(
            CheckpointLoadError,
            match=r'ckpt.pth does not fit the model: of the '
            r"model's 9 tensors, 0 are missing from it and 2 "
            'have another shape'):
        test_hook.after_load_checkpoint(fake_runner(model), coco)
    with pytest.raises(CheckpointLoadError, match='9 are missing'):
        test_hook.after_load_checkpoint(fake_runner(model), unrelated)
    partial = CheckpointLoadCheckHook(mode='test', allow_partial=True)
    partial.after_load_checkpoint(fake_runner(model), unrelated)  # logs

    finetune = CheckpointLoadCheckHook(mode='finetune')
    # COCO -> OVIS: only the class head differs, so fine-tuning loads
    finetune.after_load_checkpoint(fake_runner(model), coco)
    assert finetune.last_report.loaded_ratio > 0.5
    with pytest.raises(
            CheckpointLoadError,
            match=r'only 0.0% of the model.s values load .*'
            r'below min_loaded_ratio=0.5'):
        finetune.after_load_checkpoint(fake_runner(model), unrelated)
    # the threshold is a setting
    strict = CheckpointLoadCheckHook(mode='finetune', min_loaded_ratio=1.0)
    with pytest.raises(CheckpointLoadError, match='min_loaded_ratio=1.0'):
        strict.after_load_checkpoint(fake_runner(model), coco)
    CheckpointLoadCheckHook(
        mode='finetune', allow_partial=True).after_load_checkpoint(
            fake_runner(model), unrelated)

    # resuming is strict whatever the mode, even about extra tensors
    for hook in (finetune, partial):
        with pytest.raises(CheckpointLoadError, match='cannot resume'):
            hook.after_load_checkpoint(fake_runner(model, resume=True), coco)
    extra = dict(state_dict=dict(same['state_dict'], x=torch.zeros(1)))
    with pytest.raises(
            CheckpointLoadError, match='1 of its tensors are '
            'not in the model'):
        finetune.after_load_checkpoint(fake_runner(model, resume=True), extra)
    finetune.after_load_checkpoint(fake_runner(model, resume=True), same)

    with pytest.raises(ValueError, match='mode'):
        CheckpointLoadCheckHook(mode='strict')
    with pytest.raises(ValueError, match='min_loaded_ratio'):
        CheckpointLoadCheckHook(min_loaded_ratio=1.5)


def test_add_checkpoint_check_keeps_config_settings():
    cfg = Config(dict(custom_hooks=[dict(type='EMAHook')]))
    add_checkpoint_check(cfg, 'test', allow_partial=True)
    assert cfg.custom_hooks[-1] == dict(
        type='mmdet.CheckpointLoadCheckHook', mode='test', allow_partial=True)
    cfg = Config(
        dict(custom_hooks=[
            dict(type='CheckpointLoadCheckHook', min_loaded_ratio=0.3)
        ]))
    add_checkpoint_check(cfg, 'finetune')
    assert cfg.custom_hooks == [
        dict(
            type='CheckpointLoadCheckHook',
            min_loaded_ratio=0.3,
            mode='finetune',
            allow_partial=False)
    ]
    from mmdet.registry import HOOKS
    hook = HOOKS.build(cfg.custom_hooks[0])
    assert hook.min_loaded_ratio == 0.3 and hook.mode == 'finetune'

# Copyright (c) OpenMMLab. All rights reserved.
"""Misspelled MDQE train_cfg / test_cfg keys are errors, not ignored."""
import glob
import os.path as osp

import pytest
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mdqe_mm  # noqa: F401
from mdqe_mm.models.detectors.mdqe import check_mdqe_cfgs
from mdqe_mm.utils import ConfigKeyError

REPO = osp.join(osp.dirname(__file__), '..', '..', '..')
TINY = osp.join(REPO, 'configs', '_base_', 'models', 'mdqe_tiny.py')


def all_mdqe_configs():
    files = sorted(
        glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True) +
        glob.glob(osp.join(REPO, 'tests', 'data', 'configs', '*.py')))
    for path in files:
        try:
            cfg = Config.fromfile(path, import_custom_modules=False)
        except KeyError:  # conflicting bases: test_mdqe_configs reports it
            continue
        model = cfg.get('model')
        if isinstance(model, dict) and model.get('type') == 'MDQE':
            yield path, model


def test_every_config_uses_accepted_keys():
    found = list(all_mdqe_configs())
    assert len(found) >= 6
    for path, model in found:
        # raises ConfigKeyError, naming the key, if a config breaks
        check_mdqe_cfgs(model.get('train_cfg'), model.get('test_cfg'))
        assert model.get('test_cfg'), path


@pytest.mark.parametrize('path, value, message', [
    (('test_cfg', 'window_lenght'), 3,
     r"model.test_cfg: unknown key 'window_lenght' \(did you mean "
     r"'window_length'\?\)"),
    (('test_cfg', 'cls_thresh'), 0.9,
     r"unknown key 'cls_thresh' \(did you mean 'cls_thr'\?\)"),
    (('train_cfg', 'track_head', 'asigner'), dict(type='X'),
     r"model.train_cfg.track_head: unknown key 'asigner' \(did you mean "
     r"'assigner'\?\)"),
    (('train_cfg', 'query_selections'), dict(),
     r"model.train_cfg: unknown key 'query_selections' \(did you mean "
     r"'query_selection'\?\)"),
    (('test_cfg', 'inferencer', 'nms_iou'), 0.3,
     r"model.test_cfg.inferencer: unknown key 'nms_iou' \(did you mean "
     r"'nms_iou_thr'\?\)"),
    (('test_cfg', 'track_head', 'score_thr'), 0.3,
     r"model.test_cfg.track_head: unknown key 'score_thr'; accepted keys: "
     'none'),
])
def test_misspelled_key_stops_the_model_build(path, value, message):
    init_default_scope('mmdet')
    model = Config.fromfile(TINY).model.to_dict()
    target = model
    for key in path[:-1]:
        target = target.setdefault(key, dict())
    target[path[-1]] = value
    with pytest.raises(ConfigKeyError, match=message):
        MODELS.build(model)


def test_accepted_keys_still_build():
    init_default_scope('mmdet')
    model = Config.fromfile(TINY).model
    model.test_cfg.update(
        window_length=3, cls_thr=0.3, inferencer=dict(nms_iou_thr=0.4))
    detector = MODELS.build(model)
    assert detector.test_cfg['window_length'] == 3
    inferencer = detector.build_inferencer()
    assert inferencer.window_size == 3 and inferencer.nms_iou_thr == 0.4

# Copyright (c) OpenMMLab. All rights reserved.
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mdqe_mm.models.necks import LearnedQuerySelection

init_default_scope('mmdet')
QUICKSTART = osp.join(
    osp.dirname(__file__), '..', '..', '..', 'configs', 'quickstart',
    'mdqe_tiny_1xb2-4k_synthetic.py')


def test_queries_are_learned_and_shared_by_every_frame():
    torch.manual_seed(0)
    selection = LearnedQuerySelection(
        num_classes=3, embed_dims=8, num_queries=5)
    selection.init_weights()
    memory = torch.randn(6, 11, 8)  # N=3 clips of T=2 frames
    out = selection(memory, None, None, num_frames=2)
    assert out['query'].shape == (6, 5, 8)
    assert out['query_xy'].shape == (6, 5, 2)
    assert torch.equal(out['query'][0], out['query'][5])
    assert torch.equal(out['query_xy'][0], out['query_xy'][3])
    assert bool(((out['query_xy'] > 0) & (out['query_xy'] < 1)).all())
    # the points are spread by the random position embeddings
    assert out['query_xy'][0].std(0).min() > 0.05
    (out['query'].sum() + out['query_xy'].sum()).backward()
    for param in selection.parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0
    assert selection.loss(out, []) == {}
    with pytest.raises(ValueError, match='cannot be split'):
        selection(torch.randn(5, 11, 8), None, None, num_frames=2)


def test_mdqe_builds_with_learned_queries_from_a_grid_config():
    """The 'no-grid-init' ablation: a GridQuerySelection config switched
    to LearnedQuerySelection builds inside MDQE (its train_cfg with the
    grid assigner is accepted and unused). tests/test_tools/test_ablate.py
    trains and evaluates it."""
    cfg = Config.fromfile(QUICKSTART)
    cfg.model.query_selection = dict(
        type='LearnedQuerySelection', num_classes=4, num_queries=16)
    model = MODELS.build(cfg.model)
    assert isinstance(model.query_selection, LearnedQuerySelection)
    assert model.query_selection.embed_dims == 32  # MDQE's C
    assert 'LearnedQuerySelection(num_classes=4' in repr(model.query_selection)

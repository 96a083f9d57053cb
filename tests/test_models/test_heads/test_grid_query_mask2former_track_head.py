# Copyright (c) OpenMMLab. All rights reserved.
"""Mask2FormerVideo's head with grid-selected, associated queries."""
import os.path as osp

import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config

import mdqe_mm  # noqa: F401

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(__file__))))
CONFIG = osp.join(REPO_ROOT, 'configs', 'mixing',
                  'mask2former-video_r18-tiny_grid-query_synthetic.py')


def test_video_queries_are_frame_means_of_associated_contents():
    register_all_modules()
    cfg = Config.fromfile(CONFIG)
    model = MODELS.build(cfg.model)
    model.init_weights()
    head = model.track_head
    assert not hasattr(head, 'query_feat')
    assert head.query_selection.sem_level == 2  # the stride-8 memory
    torch.manual_seed(0)
    batch_size, num_frames, channels = 2, 2, head.query_embed.embedding_dim
    memorys = [
        torch.randn(batch_size * num_frames, channels, h, w)
        for h, w in ((3, 5), (6, 10), (12, 20))
    ]
    head.train()
    query, selection = head.select_queries(memorys, batch_size)
    # the plain way: one multi-level memory per frame, frame index fastest
    memory = torch.cat([m.flatten(2).transpose(1, 2) for m in memorys], 1)
    shapes = torch.tensor([[3, 5], [6, 10], [12, 20]])
    starts = torch.tensor([0, 15, 75])
    expected = head.query_selection(memory, shapes, starts, num_frames)
    torch.testing.assert_close(selection['query'], expected['query'])
    aligned = expected['query'].view(batch_size, num_frames, 9, channels)
    torch.testing.assert_close(query, (aligned[:, 0] + aligned[:, 1]) / 2)
    assert expected['assoc_inds'].shape == (batch_size, num_frames, 9)

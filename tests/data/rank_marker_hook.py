# Copyright (c) OpenMMLab. All rights reserved.
"""Test-only hook: every rank records the iterations it trained."""
import os
import os.path as osp

from mmdet.registry import HOOKS
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook


@HOOKS.register_module()
class RankMarkerHook(Hook):
    """Append ``iter`` to ``<work_dir>/rank_markers/rank<r>.txt``."""

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        folder = osp.join(runner.work_dir, 'rank_markers')
        os.makedirs(folder, exist_ok=True)
        with open(osp.join(folder, f'rank{get_rank()}.txt'), 'a') as f:
            f.write(f'{runner.iter + 1} {get_world_size()}\n')

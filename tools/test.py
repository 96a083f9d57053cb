# Copyright (c) OpenMMLab. All rights reserved.
"""Evaluate (or format results of) a trained model on a config's test set.

Examples:
    python tools/test.py CONFIG CHECKPOINT
    python tools/test.py CONFIG --checkpoint CHECKPOINT --work-dir out
    bash tools/dist_test.sh CONFIG CHECKPOINT 8
"""
import argparse
import os
import os.path as osp
import sys

from mmdet.utils import setup_cache_size_limit_of_dynamo
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mdqe_mm  # noqa: F401  (compat shims + registration)
from mdqe_mm.compat import adapt_cfg_for_cpu_distributed


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint', nargs='?', default=None, help='checkpoint file')
    parser.add_argument(
        '--checkpoint',
        dest='checkpoint_opt',
        default=None,
        help='checkpoint file (alternative to the positional argument)')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='dump raw predictions (per-video results) to a pickle file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if args.checkpoint and args.checkpoint_opt and \
            args.checkpoint != args.checkpoint_opt:
        parser.error('give the checkpoint once (positional or --checkpoint)')
    args.checkpoint = args.checkpoint or args.checkpoint_opt
    return args


def main() -> None:
    args = parse_args()
    setup_cache_size_limit_of_dynamo()
    if not osp.isfile(args.config):
        sys.exit(f'test.py: config file not found: {args.config}')
    if args.checkpoint is None:
        sys.exit('test.py: a checkpoint is required '
                 '(python tools/test.py CONFIG CHECKPOINT)')
    if not osp.isfile(args.checkpoint):
        sys.exit(f'test.py: checkpoint not found: {args.checkpoint}')

    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.launcher != 'none':
        adapt_cfg_for_cpu_distributed(cfg)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint

    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)

    if args.out is not None:
        assert args.out.endswith(('.pkl', '.pickle')), \
            'The dump file must be a pkl file.'
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    runner.test()


if __name__ == '__main__':
    main()

# Copyright (c) OpenMMLab. All rights reserved.
"""Evaluate (or format results of) a trained model on a config's test set.

Examples:
    python tools/test.py CONFIG CHECKPOINT
    python tools/test.py CONFIG --checkpoint CHECKPOINT --work-dir out
    python tools/test.py CONFIG CHECKPOINT --show-dir out/rendered
    bash tools/dist_test.sh CONFIG CHECKPOINT 8
"""
import argparse
import os
import os.path as osp
import sys

from mmdet.utils import setup_cache_size_limit_of_dynamo
from mmengine.config import DictAction
from mmengine.evaluator import DumpResults
from mmengine.fileio import dump
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mdqe_mm  # noqa: F401  (compat shims + registration)
from mdqe_mm.compat import adapt_cfg_for_cpu_distributed
from mdqe_mm.utils import (USER_INPUT_ERRORS, CheckpointLoadError,
                           add_checkpoint_check, atomic_write,
                           check_checkpoint_file, check_output_not_input,
                           check_writable, load_config)


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
        '--show-dir',
        help='render the predictions of every test video to '
        'SHOW_DIR/<video name>/<frame>.jpg')
    parser.add_argument(
        '--show-gt',
        action='store_true',
        help='with --show-dir: draw the ground truth left of the '
        'predictions')
    parser.add_argument(
        '--show-score-thr',
        type=float,
        default=0.3,
        help='with --show-dir: draw predictions scoring at least this '
        '(default: 0.3)')
    parser.add_argument(
        '--allow-partial-load',
        action='store_true',
        help='test even when model tensors are missing from the checkpoint '
        'or have another shape (by default that is an error)')
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
    if args.show_gt and not args.show_dir:
        parser.error('--show-gt needs --show-dir')
    return args


def _annotation_files(cfg) -> list:
    """Annotation files the test reads (never to be overwritten)."""
    files = []
    evaluators = cfg.get('test_evaluator') or []
    for evaluator in evaluators if isinstance(evaluators,
                                              (list, tuple)) else [evaluators]:
        if isinstance(evaluator, dict) and isinstance(
                evaluator.get('ann_file'), str):
            files.append(evaluator['ann_file'])
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    if isinstance(dataset.get('ann_file'), str):
        files.append(
            osp.join(dataset.get('data_root') or '', dataset['ann_file']))
    return files


class _AtomicDumpResults(DumpResults):
    """``DumpResults`` that writes through a temporary file, so a failed
    run leaves an earlier dump in place."""

    def compute_metrics(self, results: list) -> dict:
        os.makedirs(
            osp.dirname(osp.abspath(self.out_file_path)), exist_ok=True)
        with atomic_write(self.out_file_path, 'wb') as f:
            dump(results, f, file_format='pkl')
        return {}


def main() -> None:
    args = parse_args()
    setup_cache_size_limit_of_dynamo()
    if not osp.isfile(args.config):
        sys.exit(f'test.py: config file not found: {args.config}')
    if args.checkpoint is None:
        sys.exit('test.py: a checkpoint is required '
                 '(python tools/test.py CONFIG CHECKPOINT)')
    try:
        check_checkpoint_file(args.checkpoint)
        cfg = load_config(args.config)
    except (CheckpointLoadError, SyntaxError) as err:
        sys.exit(f'test.py: {err}')
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
    # fail, rather than test random weights, when tensors do not load
    add_checkpoint_check(cfg, 'test', args.allow_partial_load)
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            sys.exit(f'test.py: --out {args.out}: the dump file must end '
                     'with .pkl or .pickle')
        try:
            check_output_not_input(args.out, [args.config, args.checkpoint] +
                                   _annotation_files(cfg), 'test.py')
            check_writable(args.out, 'test.py', make_dirs=True)
        except (ValueError, OSError) as err:
            sys.exit(str(err))
    if args.show_dir is not None:
        # SHOW_DIR/<video>/<frame>.jpg must not land among the test frames
        dataset_cfg = (cfg.get('test_dataloader') or {}).get('dataset') or {}
        img_dir = osp.join(
            dataset_cfg.get('data_root') or '',
            (dataset_cfg.get('data_prefix') or {}).get('img_path') or '')
        try:
            check_output_not_input(
                args.show_dir, [], 'test.py --show-dir',
                input_dirs=[img_dir] if img_dir else [])
        except ValueError as err:
            sys.exit(str(err))
        # one folder per video (mmdet's TrackVisualizationHook would put
        # every YouTube-VIS/OVIS video under the same 'JPEGImages' folder)
        cfg.default_hooks.visualization = dict(
            type='VISVisualizationHook',
            draw=True,
            test_out_dir=osp.abspath(args.show_dir),
            draw_gt=args.show_gt,
            score_thr=args.show_score_thr)

    try:
        if 'runner_type' not in cfg:
            runner = Runner.from_cfg(cfg)
        else:
            runner = RUNNERS.build(cfg)

        if args.out is not None:
            runner.test_evaluator.metrics.append(
                _AtomicDumpResults(out_file_path=args.out))
        runner.test()
    except USER_INPUT_ERRORS as err:
        sys.exit(f'test.py: error: {err}')


if __name__ == '__main__':
    main()

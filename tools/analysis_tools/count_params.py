# Copyright (c) OpenMMLab. All rights reserved.
"""Count the parameters of the model a config builds, module by module.

Example::

    python tools/analysis_tools/count_params.py \\
        configs/mdqe/mdqe_r50_8xb2-12k_ovis.py --depth 2

No weights are loaded (the model is built, not initialised), so this works
offline. ``trainable`` leaves out parameters with ``requires_grad=False``,
e.g. the affine of a frozen BatchNorm; the reference (Detectron2) code keeps
those as buffers of ``FrozenBatchNorm2d``, so the trainable count is the one
to compare with its ``parameter_count_table``.
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List, Tuple

import torch.nn as nn
from mmengine.config import Config, DictAction

import mdqe_mm  # noqa: F401  (compat shims + registration)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Parameter count of a model config, per module')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--depth',
        type=int,
        default=1,
        help='module nesting depth of the table (default: 1, the '
        'detector\'s direct children)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value')
    args = parser.parse_args(argv)
    if args.depth < 0:
        parser.error(f'--depth must be >= 0, got {args.depth}')
    return args


def count_parameters(module: nn.Module) -> Tuple[int, int]:
    """Total and trainable parameter counts of a module.

    Parameters shared between submodules are counted once, as
    ``module.parameters()`` yields them once.
    """
    total = trainable = 0
    for param in module.parameters():
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    return total, trainable


def parameter_table(model: nn.Module,
                    depth: int) -> List[Tuple[str, int, int]]:
    """Rows ``(name, total, trainable)`` of the modules down to ``depth``.

    The first row is the whole model (name ``''``). A parameter shared by two
    modules appears under each of them but only once in a parent's count.
    """
    rows = [('', *count_parameters(model))]

    def visit(module: nn.Module, prefix: str, level: int) -> None:
        if level > depth:
            return
        for name, child in module.named_children():
            full_name = f'{prefix}.{name}' if prefix else name
            total, trainable = count_parameters(child)
            if total == 0:
                continue
            rows.append((full_name, total, trainable))
            visit(child, full_name, level + 1)

    visit(model, '', 1)
    return rows


def format_table(rows: List[Tuple[str, int, int]]) -> str:
    header = ('module', 'params', 'trainable')
    cells = []
    for name, total, trainable in rows:
        label = name or '(model)'
        cells.append((label, f'{total / 1e6:.3f}M', f'{trainable / 1e6:.3f}M'))
    widths = [
        max(len(header[i]), *(len(c[i]) for c in cells)) for i in range(3)
    ]
    lines = [
        f'{header[0]:<{widths[0]}}  {header[1]:>{widths[1]}}  '
        f'{header[2]:>{widths[2]}}'
    ]
    lines.append('-' * len(lines[0]))
    for name, total, trainable in cells:
        lines.append(f'{name:<{widths[0]}}  {total:>{widths[1]}}  '
                     f'{trainable:>{widths[2]}}')
    return '\n'.join(lines)


def build_model_from_config(cfg: Config) -> nn.Module:
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    return MODELS.build(cfg.model)


def main(argv=None) -> Dict[str, int]:
    args = parse_args(argv)
    if not osp.isfile(args.config):
        sys.exit(f'count_params.py: config file not found: {args.config}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if 'model' not in cfg:
        sys.exit(f'count_params.py: {args.config} defines no `model`')
    model = build_model_from_config(cfg)
    rows = parameter_table(model, args.depth)
    print(format_table(rows))
    _, total, trainable = rows[0]
    print(f'\n{cfg.model.type}: {total:,} parameters '
          f'({total / 1e6:.2f}M), {trainable:,} trainable '
          f'({trainable / 1e6:.2f}M)')
    return dict(total=total, trainable=trainable)


if __name__ == '__main__':
    main()

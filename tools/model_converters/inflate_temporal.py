# Copyright (c) OpenMMLab. All rights reserved.
"""Inflate the temporal attention of an mdqe_mm checkpoint to T frames.

Example (a 1-frame COCO model for a 4-frame clip model)::

    python tools/model_converters/inflate_temporal.py \\
        work_dirs/mdqe_r50_8xb2-267k_coco/iter_267000.pth \\
        checkpoints/mdqe_r50_coco_f1_inflated_to_f4.pth --num-frames 4

The zoo's fine-tuning configs do the same on the fly through
``custom_hooks = [dict(type='TemporalInflationHook')]`` when their
``load_from`` checkpoint has another clip length; this tool writes the
inflated checkpoint once, e.g. to test or share it. Only the decoder's
temporal cross-attention (``clip_temporal_attn``, or the reference's
``temp_attn_inst``) changes; see ``mdqe_mm/engine/hooks/
temporal_inflation_hook.py`` for the formula and the two modes.
"""
import argparse
import os
import os.path as osp
import sys

import torch

from mdqe_mm.engine import (find_temporal_attn_prefixes,
                            inflate_temporal_state_dict, source_frame_indices)
from mdqe_mm.engine.hooks.temporal_inflation_hook import INFLATION_MODES


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Inflate the temporal attention of an MDQE checkpoint '
        'to another clip length')
    parser.add_argument('src', help='checkpoint to read (.pth)')
    parser.add_argument('dst', help='inflated checkpoint to write (.pth)')
    parser.add_argument(
        '--num-frames',
        type=int,
        required=True,
        help='clip length T of the model that will load the checkpoint')
    parser.add_argument(
        '--mode',
        choices=INFLATION_MODES,
        default='reference',
        help='"reference" (default): every new frame takes frame 0\'s '
        'slices, as the reference converter computes; "repeat": each frame '
        'repeated ceil(T2/T1) times, then truncated')
    args = parser.parse_args(argv)
    if args.num_frames < 1:
        parser.error(f'--num-frames must be >= 1, got {args.num_frames}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    prog = 'inflate_temporal.py'
    if not osp.isfile(args.src):
        sys.exit(f'{prog}: no such file: {args.src}')
    if osp.exists(args.dst) and osp.samefile(args.src, args.dst):
        sys.exit(f'{prog}: the output {args.dst} is the input checkpoint; '
                 'choose another path')
    dst_dir = osp.dirname(osp.abspath(args.dst))
    if not osp.isdir(dst_dir):
        sys.exit(f'{prog}: output directory does not exist: {dst_dir}')
    try:
        checkpoint = torch.load(
            args.src, map_location='cpu', weights_only=False)
    except Exception as err:  # noqa: B902 (unpickling raises many types)
        sys.exit(f'{prog}: cannot read {args.src} as a PyTorch checkpoint: '
                 f'{type(err).__name__}: {err}')
    if not isinstance(checkpoint, dict):
        sys.exit(f'{prog}: {args.src} holds a {type(checkpoint).__name__}, '
                 'not a checkpoint dict')
    state_dict = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state_dict, dict):
        sys.exit(f'{prog}: {args.src}: "state_dict" is not a dict')
    prefixes = find_temporal_attn_prefixes(state_dict)
    if not prefixes:
        sys.exit(f'{prog}: {args.src} has no temporal attention '
                 '(no "clip_temporal_attn.sampling_offsets" or '
                 '"temp_attn_inst.sampling_offsets" key)')
    try:
        frames = inflate_temporal_state_dict(state_dict, args.num_frames,
                                             args.mode, prefixes)
    except ValueError as err:
        sys.exit(f'{prog}: {args.src}: {err}')
    sources = sorted(set(frames.values()))
    meta = checkpoint.setdefault('meta', {}) if 'state_dict' in checkpoint \
        else None
    if isinstance(meta, dict):
        meta['temporal_inflation'] = dict(
            src=osp.basename(args.src),
            num_frames=args.num_frames,
            mode=args.mode)
    tmp = args.dst + '.tmp'
    torch.save(checkpoint, tmp)
    os.replace(tmp, args.dst)
    for src in sources:
        print(f'{sum(v == src for v in frames.values())} temporal attention '
              f'layers: {src} -> {args.num_frames} frames, source frames '
              f'{source_frame_indices(src, args.num_frames, args.mode)} '
              f'(mode={args.mode})')
    print(f'written to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

# Copyright (c) OpenMMLab. All rights reserved.
"""Convert a checkpoint of the reference MDQE code (Detectron2) to mdqe_mm.

Example::

    python tools/model_converters/mdqe_reference_to_mmdet.py \\
        pretrained/mdqe_r50_ovis_bs16_360p_f4.pth \\
        checkpoints/mdqe_r50_ovis_360p_converted.pth
    python tools/test.py configs/mdqe/mdqe_r50_8xb2-12k_ovis.py \\
        checkpoints/mdqe_r50_ovis_360p_converted.pth

The reference checkpoints (MinghanLi/MDQE_CVPR2023) hold a Detectron2 state
dict under ``'model'``. Every key is renamed to the module layout of
``configs/_base_/models/mdqe_r50.py``; tensors are not changed. The
reference stores a few modules twice (the box MLP, the decoder norm and
``point2pos_proj`` are shared by the decoder and its parent); the copies must
be equal and are written once. The grid-distance buffers (the criterion's
and the decoder's) are dropped: mdqe_mm rebuilds them. A key the
converter does not know stops it, so no weight is silently lost.

ResNet and SwinV2 (the Swin-L checkpoints) backbones are converted; SwinV2
keys go to mmpretrain's ``SwinTransformerV2`` (configs/mdqe/mdqe_swinl_*),
with the patch-merging weights reordered for its unfold. The converted
model keeps the class count of the checkpoint: OVIS checkpoints need a
config with 25 classes, YouTube-VIS ones 40, COCO ones 80.
"""
import argparse
import os.path as osp
import re
import sys
from collections import OrderedDict
from typing import Callable, Dict, List, Tuple, Union

import numpy as np
import torch

# reference decoder-layer submodule -> mdqe_mm MDQETwoStreamDecoder layer
DECODER_LAYER_NAMES = {
    'self_attn': 'frame_self_attn',
    'norm1': 'frame_self_attn_norm',
    'cross_attn': 'frame_cross_attn',
    'norm2': 'frame_cross_attn_norm',
    'linear1': 'frame_ffn.layers.0.0',
    'linear2': 'frame_ffn.layers.1',
    'norm3': 'frame_ffn_norm',
    'time_weights': 'time_weight_proj',
    'self_attn_inst': 'clip_self_attn',
    'norm1_inst': 'clip_self_attn_norm',
    'temp_attn_inst': 'clip_temporal_attn',
    'norm2_inst': 'clip_temporal_attn_norm',
    'linear1_inst': 'clip_ffn.layers.0.0',
    'linear2_inst': 'clip_ffn.layers.1',
    'norm3_inst': 'clip_ffn_norm',
}

# reference encoder-layer submodule -> mdqe_mm MDQEDeformableEncoder layer
ENCODER_LAYER_NAMES = {
    'self_attn': 'self_attn',
    'norm1': 'self_attn_norm',
    'linear1': 'ffn.layers.0.0',
    'linear2': 'ffn.layers.1',
    'norm2': 'ffn_norm',
}

# reference Transformer_Dec module -> mdqe_mm module (prefix renames)
DEC_MODULE_NAMES = {
    'decoder_norm': 'track_head.decoder.norm',
    'decoder.norm': 'track_head.decoder.norm',
    'bbox_embed': 'track_head.bbox_embed',
    'decoder.bbox_embed': 'track_head.bbox_embed',
    'point2pos_proj': 'track_head.decoder.point2pos_proj',
    'decoder.point2pos_proj': 'track_head.decoder.point2pos_proj',
    'rpn_cls_embed': 'query_selection.rpn_cls_embed',
    'track_embed': 'query_selection.track_embed',
    'cls_embed': 'track_head.cls_embed',
    'mask_embed': 'track_head.mask_embed',
}

MASK_HEAD_NAMES = {
    'lay1': 'lay1.conv',
    'gn1': 'lay1.gn',
    'lay2': 'lay2.conv',
    'gn2': 'lay2.gn',
    'lay3': 'lay3.conv',
    'gn3': 'lay3.gn',
    'adapter1': 'adapter1',
    'adapter2': 'adapter2',
    'out_uplay': 'out_uplay',
    'out_lay1.depthwise': 'out_lay1.depthwise_conv.conv',
    'out_lay1.pointwise': 'out_lay1.pointwise_conv.conv',
    'out_lay1.gn': 'out_lay1.pointwise_conv.gn',
    'out_lay2.depthwise': 'out_lay2.depthwise_conv.conv',
    'out_lay2.pointwise': 'out_lay2.pointwise_conv.conv',
    'out_lay2.gn': 'out_lay2.pointwise_conv.gn',
}

EXACT_NAMES = {
    'detr.transformer_enc.level_embed': 'level_embed',
    'detr.transformer_enc.encoder.norm.weight': 'encoder.norm.weight',
    'detr.transformer_enc.encoder.norm.bias': 'encoder.norm.bias',
}

BACKBONE_PREFIX = 'detr.backbone.0.backbone.'
# derived buffers, rebuilt by the modules (GridQuerySelection's
# query_cell_dist is the same grid, not saved)
DROPPED_PREFIXES = ('criterion.', 'detr.transformer_dec.query_relpos_grid')


class ConversionError(ValueError):
    """A reference key or tensor the converter cannot place."""


def _rename_backbone(name: str) -> str:
    """Detectron2 ResNet key (after the prefix) -> mmdet ``ResNet`` key."""
    match = re.fullmatch(r'stem\.conv1\.(weight)', name)
    if match:
        return 'backbone.conv1.weight'
    match = re.fullmatch(r'stem\.conv1\.norm\.(\w+)', name)
    if match:
        return f'backbone.bn1.{match.group(1)}'
    match = re.fullmatch(r'res([2-5])\.(\d+)\.(.+)', name)
    if match is None:
        raise ConversionError(
            f'backbone key {BACKBONE_PREFIX}{name} is not a Detectron2 '
            'ResNet key (only ResNet checkpoints can be converted)')
    stage, block, rest = match.groups()
    prefix = f'backbone.layer{int(stage) - 1}.{block}.'
    conv = re.fullmatch(r'conv([1-3])\.weight', rest)
    if conv:
        return f'{prefix}conv{conv.group(1)}.weight'
    norm = re.fullmatch(r'conv([1-3])\.norm\.(\w+)', rest)
    if norm:
        return f'{prefix}bn{norm.group(1)}.{norm.group(2)}'
    if rest == 'shortcut.weight':
        return f'{prefix}downsample.0.weight'
    norm = re.fullmatch(r'shortcut\.norm\.(\w+)', rest)
    if norm:
        return f'{prefix}downsample.1.{norm.group(1)}'
    raise ConversionError(f'unknown backbone key {BACKBONE_PREFIX}{name}')


def _rename_input_proj(name: str, num_backbone_levels: int) -> str:
    match = re.fullmatch(r'(\d+)\.([01])\.(\w+)', name)
    if match is None:
        raise ConversionError(f'unknown key detr.input_proj.{name}')
    level, part, attr = int(match.group(1)), match.group(2), match.group(3)
    part = 'conv' if part == '0' else 'gn'
    if level < num_backbone_levels:
        return f'neck.convs.{level}.{part}.{attr}'
    return f'neck.extra_convs.{level - num_backbone_levels}.{part}.{attr}'


def _rename_layer(name: str, table: Dict[str, str], prefix: str,
                  where: str) -> str:
    """``'<i>.<module>.<rest>'`` of a layer list, renamed by ``table``."""
    match = re.fullmatch(r'(\d+)\.(.+)', name)
    if match:
        index, rest = match.groups()
        # longest module names first: 'norm1_inst' before 'norm1'
        for module in sorted(table, key=len, reverse=True):
            if rest.startswith(module + '.'):
                return (f'{prefix}.{index}.{table[module]}.'
                        f'{rest[len(module) + 1:]}')
    raise ConversionError(f'unknown key {where}.{name}')


def _rename_by_prefix(name: str, table: Dict[str, str], prefix: str,
                      where: str) -> str:
    for module in sorted(table, key=len, reverse=True):
        if name.startswith(module + '.'):
            target = f'{table[module]}.{name[len(module) + 1:]}'
            return f'{prefix}{target}' if prefix else target
    raise ConversionError(f'unknown key {where}.{name}')


# reference SwinV2 block submodule -> mmpretrain SwinBlockV2 submodule
SWINV2_BLOCK_NAMES = {
    'attn': 'attn.w_msa',
    'norm1': 'norm1',
    'norm2': 'norm2',
    'mlp.fc1': 'ffn.layers.0.0',
    'mlp.fc2': 'ffn.layers.1',
}
SWINV2_REDUCTION = re.compile(r'backbone\.stages\.\d+\.downsample\.'
                              r'reduction\.weight')


def _rename_swinv2_backbone(name: str) -> str:
    """Reference SwinV2 key (after the prefix) -> mmpretrain key. The
    reference merges patches at the end of stage i, mmpretrain at the start
    of stage i + 1."""
    match = re.fullmatch(r'patch_embed\.(proj|norm)\.(\w+)', name)
    if match:
        part = 'projection' if match.group(1) == 'proj' else 'norm'
        return f'backbone.patch_embed.{part}.{match.group(2)}'
    match = re.fullmatch(r'norm([0-3])\.(\w+)', name)
    if match:
        return f'backbone.{name}'
    match = re.fullmatch(r'layers\.(\d+)\.downsample\.(.+)', name)
    if match:
        return (f'backbone.stages.{int(match.group(1)) + 1}.downsample.'
                f'{match.group(2)}')
    match = re.fullmatch(r'layers\.(\d+)\.blocks\.(\d+)\.(.+)', name)
    if match:
        stage, block, rest = match.groups()
        for module in sorted(SWINV2_BLOCK_NAMES, key=len, reverse=True):
            if rest.startswith(module + '.'):
                return (f'backbone.stages.{stage}.blocks.{block}.'
                        f'{SWINV2_BLOCK_NAMES[module]}.'
                        f'{rest[len(module) + 1:]}')
    raise ConversionError(f'unknown SwinV2 backbone key '
                          f'{BACKBONE_PREFIX}{name}')


def swinv2_unfold_order(weight: torch.Tensor) -> torch.Tensor:
    """Patch-merging reduction weight (2C, 4C) from the reference's input
    order (x0, x1, x2, x3) = pixels (0,0), (1,0), (0,1), (1,1), each C
    channels, to mmpretrain's ``nn.Unfold`` order (channel-major, then the
    pixel (row, col) row-major)."""
    out_channels, in_channels = weight.shape
    weight = weight.reshape(out_channels, 4, in_channels // 4)
    return weight[:, [0, 2, 1, 3], :].transpose(1, 2).reshape(
        out_channels, in_channels)


def rename_reference_key(key: str, num_backbone_levels: int = 3) -> str:
    """The mdqe_mm name of one reference key; '' for a key that is dropped.

    Raises:
        ConversionError: for a key the converter does not know.
    """
    if key.startswith(DROPPED_PREFIXES):
        return ''
    if key.startswith(BACKBONE_PREFIX):
        name = key[len(BACKBONE_PREFIX):]
        if name.startswith(('patch_embed.', 'layers.', 'norm')):
            return _rename_swinv2_backbone(name)
        return _rename_backbone(name)
    rules: List[Tuple[str, Callable[[str], str]]] = [
        ('detr.input_proj.',
         lambda n: _rename_input_proj(n, num_backbone_levels)),
        ('detr.transformer_enc.encoder.layers.',
         lambda n: _rename_layer(n, ENCODER_LAYER_NAMES, 'encoder.layers',
                                 'detr.transformer_enc.encoder.layers')),
        ('detr.transformer_dec.decoder.layers.', lambda n: _rename_layer(
            n, DECODER_LAYER_NAMES, 'track_head.decoder.layers',
            'detr.transformer_dec.decoder.layers')),
        ('detr.transformer_dec.mask_head.', lambda n: _rename_by_prefix(
            n, MASK_HEAD_NAMES, 'track_head.mask_proto.',
            'detr.transformer_dec.mask_head')),
    ]
    for prefix, rename in rules:
        if key.startswith(prefix):
            return rename(key[len(prefix):])
    if key in EXACT_NAMES:
        return EXACT_NAMES[key]
    prefix = 'detr.transformer_dec.'
    if key.startswith(prefix):
        return _rename_by_prefix(key[len(prefix):], DEC_MODULE_NAMES, '',
                                 'detr.transformer_dec')
    raise ConversionError(f'unknown key {key}')


def _as_tensor(value: Union[torch.Tensor, np.ndarray], key: str):
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise ConversionError(f'{key}: expected a tensor or array, got '
                          f'{type(value).__name__}')


def convert_reference_state_dict(
        reference: Dict[str, Union[torch.Tensor, np.ndarray]],
        num_backbone_levels: int = 3) -> 'OrderedDict[str, torch.Tensor]':
    """Rename a reference MDQE state dict to mdqe_mm's layout.

    Args:
        reference (dict): The reference model's state dict (Detectron2
            names, tensors or numpy arrays).
        num_backbone_levels (int): Backbone maps fed to the input projection
            (3 for the released R50 configs: res3-res5); the later
            projections are the extra stride-2 levels. Defaults to 3.

    Returns:
        OrderedDict: mdqe_mm state dict. BatchNorm layers get a
        ``num_batches_tracked`` of 0 (Detectron2's FrozenBN has none).

    Raises:
        ConversionError: an unknown key, a non-tensor value, or two copies
            of a shared module that differ.
    """
    converted: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    source: Dict[str, str] = {}
    unknown = []
    for key, value in reference.items():
        try:
            target = rename_reference_key(key, num_backbone_levels)
        except ConversionError as error:
            unknown.append(str(error))
            continue
        if not target:
            continue
        tensor = _as_tensor(value, key)
        if target in converted:
            if converted[target].shape != tensor.shape or not torch.equal(
                    converted[target], tensor):
                raise ConversionError(
                    f'{key} and {source[target]} both map to {target} (a '
                    'module the reference shares) but differ')
            continue
        converted[target] = tensor
        source[target] = key
    if unknown:
        shown = '\n  '.join(unknown[:20])
        more = f'\n  ... and {len(unknown) - 20} more' \
            if len(unknown) > 20 else ''
        raise ConversionError(
            f'{len(unknown)} reference keys could not be placed:\n  '
            f'{shown}{more}')
    for key in list(converted):
        if SWINV2_REDUCTION.fullmatch(key):
            converted[key] = swinv2_unfold_order(converted[key])
        if key.startswith('backbone.') and key.endswith('.running_var'):
            tracked = key[:-len('running_var')] + 'num_batches_tracked'
            converted[tracked] = torch.tensor(0, dtype=torch.long)
    return converted


# modules every converted MDQE must have (prefixes of mdqe_mm keys)
REQUIRED_PREFIXES = (
    'backbone.', 'neck.convs.', 'level_embed', 'encoder.layers.',
    'encoder.norm.', 'query_selection.rpn_cls_embed.',
    'query_selection.track_embed.', 'track_head.decoder.layers.',
    'track_head.decoder.norm.', 'track_head.decoder.point2pos_proj.',
    'track_head.bbox_embed.', 'track_head.cls_embed.',
    'track_head.mask_embed.') + tuple(
        f'track_head.mask_proto.{name}.'
        for name in sorted(set(MASK_HEAD_NAMES.values())))
# layer lists whose layers must all hold the same parameters
LAYER_LISTS = ('encoder.layers.', 'track_head.decoder.layers.')


def missing_model_parts(converted: Dict[str, torch.Tensor]) -> List[str]:
    """Parts of the MDQE model that a converted state dict lacks.

    Checks the modules of :data:`REQUIRED_PREFIXES`, that the layers of the
    encoder and the decoder are numbered 0..N-1 without gaps, and that each
    of those layers holds every parameter that any layer of its list holds.

    Returns:
        list[str]: One line per missing part (empty when complete).
    """
    missing = [
        prefix.rstrip('.') for prefix in REQUIRED_PREFIXES
        if not any(k == prefix or k.startswith(prefix) for k in converted)
    ]
    for prefix in LAYER_LISTS:
        layers: Dict[int, set] = {}
        for key in converted:
            match = re.match(re.escape(prefix) + r'(\d+)\.(.+)', key)
            if match:
                layers.setdefault(int(match.group(1)),
                                  set()).add(match.group(2))
        if not layers:
            continue
        everything = set().union(*layers.values())
        for index in range(max(layers) + 1):
            lacking = sorted(everything - layers.get(index, set()))
            if lacking:
                more = len(lacking) - 4
                shown = ', '.join(lacking[:4])
                if more > 0:
                    shown += f', ... ({more} more)'
                missing.append(f'{prefix}{index}: {shown}')
    return missing


def load_reference_checkpoint(path: str) -> Dict[str, torch.Tensor]:
    """The model state dict inside a reference checkpoint file."""
    from mdqe_mm.utils import describe_checkpoint_file
    what_it_is = describe_checkpoint_file(path)
    if what_it_is is not None:
        raise ConversionError(
            f'{path} is not a checkpoint: it seems to be {what_it_is}')
    try:
        if path.endswith('.pkl'):
            import pickle
            with open(path, 'rb') as f:
                checkpoint = pickle.load(f, encoding='latin1')
        else:
            # reference checkpoints also hold iteration counters and, for
            # some, optimizer state; they are not tensors-only pickles
            checkpoint = torch.load(
                path, map_location='cpu', weights_only=False)
    except Exception as err:  # unpickling raises many types
        raise ConversionError(
            f'{path}: cannot read the checkpoint ({type(err).__name__}: '
            f'{err})') from None
    if isinstance(checkpoint, dict) and 'model' in checkpoint:
        checkpoint = checkpoint['model']
    if not isinstance(checkpoint, dict) or not checkpoint or not all(
            isinstance(v, (torch.Tensor, np.ndarray))
            for v in checkpoint.values()):
        raise ConversionError(
            f'{path}: expected a Detectron2 checkpoint (a dict with a '
            '"model" state dict)')
    return checkpoint


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a reference MDQE (Detectron2) checkpoint to '
        'mdqe_mm')
    parser.add_argument('src', help='reference checkpoint (.pth or .pkl)')
    parser.add_argument('dst', help='converted checkpoint to write (.pth)')
    parser.add_argument(
        '--allow-missing',
        action='store_true',
        help='write the checkpoint even if parts of the model (e.g. the '
        'decoder) are missing from the reference checkpoint')
    parser.add_argument(
        '--num-backbone-levels',
        type=int,
        default=3,
        help='backbone maps projected by the reference input_proj '
        '(default 3: res3-res5)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mdqe_mm.utils import (atomic_write, check_output_not_input,
                               check_writable)
    if not osp.isfile(args.src):
        sys.exit(f'mdqe_reference_to_mmdet.py: no such file: {args.src}')
    dst_dir = osp.dirname(osp.abspath(args.dst))
    if not osp.isdir(dst_dir):
        sys.exit(f'mdqe_reference_to_mmdet.py: output directory does not '
                 f'exist: {dst_dir}')
    try:
        check_output_not_input(args.dst, args.src,
                               'mdqe_reference_to_mmdet.py')
        check_writable(args.dst, 'mdqe_reference_to_mmdet.py')
    except (ValueError, OSError) as error:
        sys.exit(str(error))
    try:
        reference = load_reference_checkpoint(args.src)
        converted = convert_reference_state_dict(reference,
                                                 args.num_backbone_levels)
    except ConversionError as error:
        sys.exit(f'mdqe_reference_to_mmdet.py: {error}')
    missing = missing_model_parts(converted)
    if missing:
        listed = '\n  '.join(missing[:20])
        if not args.allow_missing:
            sys.exit(f'mdqe_reference_to_mmdet.py: {args.src} lacks '
                     f'{len(missing)} parts of the MDQE model:\n  {listed}'
                     '\nNothing was written; pass --allow-missing to write '
                     'the partial checkpoint anyway')
        print(f'warning: {args.src} lacks {len(missing)} parts of the MDQE '
              f'model (written anyway, --allow-missing):\n  {listed}')
    with atomic_write(args.dst, 'wb') as f:
        torch.save(
            dict(
                state_dict=converted,
                meta=dict(converted_from=osp.basename(args.src))), f)
    num_params = sum(v.numel() for k, v in converted.items()
                     if v.is_floating_point())
    print(f'{len(reference)} reference keys -> {len(converted)} keys '
          f'({num_params / 1e6:.2f}M floats) written to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

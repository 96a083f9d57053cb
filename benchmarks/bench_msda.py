# Copyright (c) OpenMMLab. All rights reserved.
"""Time MDQE's deformable attention: the fast PyTorch path against mmcv's.

Sizes default to the R50 360p setting of the paper: a 360x640 frame padded
to 384x640 gives levels 48x80, 24x40, 12x20, 6x10 (S = 5100 tokens),
T = 4 frames per clip, Q = 196 queries, C = 256, 8 heads, 4 points.

Three tables:

1. ``core``: the sampling function alone, mmcv's
   ``multi_scale_deformable_attn_pytorch`` against
   :func:`multi_scale_deformable_attn_fast` (same inputs), at the encoder
   shape (every token of T frames queries the frame), the decoder's box
   attention (Q queries per frame) and its temporal attention (Q clip
   queries over T x L maps). On CUDA mmcv's kernel is timed as well.
2. ``module``: one :class:`MDQEMSDeformAttn` forward (+ backward), the
   previous path (``value_proj``, then mmcv's function; the temporal mode
   repeats the locations per level) against the current one, with the same
   weights.
3. ``layers`` (``--layers``): the whole encoder and decoder.

Timings alternate the two implementations (A, B, A, B, ...) and report the
median time of each and the median of the per-round ratios, so that load
from other processes hits both alike. Run it alone for clean numbers.

Example::

    python benchmarks/bench_msda.py                  # CPU, 1 thread
    python benchmarks/bench_msda.py --threads 2 --repeats 7 --layers
    python benchmarks/bench_msda.py --device cuda
"""
import argparse
import statistics
import time

import torch
from mmcv.ops.multi_scale_deform_attn import (
    MultiScaleDeformableAttnFunction, multi_scale_deformable_attn_pytorch)

from mdqe_mm.models.layers import (GELUMLP, MDQEDeformableEncoder,
                                   MDQEMSDeformAttn, MDQETwoStreamDecoder,
                                   multi_scale_deformable_attn_fast)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads on CPU (default 1)')
    parser.add_argument('--clips', type=int, default=1, help='N')
    parser.add_argument('--frames', type=int, default=4, help='T')
    parser.add_argument('--queries', type=int, default=196, help='Q')
    parser.add_argument('--channels', type=int, default=256, help='C')
    parser.add_argument('--height', type=int, default=384)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--repeats', type=int, default=5,
                        help='timed rounds per implementation')
    parser.add_argument('--skip-backward', action='store_true')
    parser.add_argument('--layers', action='store_true',
                        help='also time the whole encoder and decoder')
    return parser.parse_args(argv)


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _time_once(fn, device):
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return (time.perf_counter() - start) * 1000


def interleaved(fns, device, repeats):
    """Time the callables alternately after one warm-up call each.

    Returns:
        list[list[float]]: per callable, the ms of every round.
    """
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            times[i].append(_time_once(fn, device))
    return times


def legacy_module_forward(module, query, reference, value, spatial_shapes,
                          level_start_index, mask):
    """The previous PyTorch path of ``MDQEMSDeformAttn`` (mmcv's sampling
    function after ``value_proj``), with the module's weights."""
    query, value = query.float(), value.float()
    locations = module.get_sampling_locations(query, reference.float())
    weights = module.get_attention_weights(query)
    value = module.value_proj(value)
    if mask is not None:
        value = value.masked_fill(mask[..., None], 0.)
    value = value.unflatten(-1, (module.num_heads, -1))
    if module.mode == 'temporal':
        num_frames = value.shape[1]
        num_levels = spatial_shapes.shape[0]
        shapes = spatial_shapes.repeat(num_frames, 1)
        locations = locations.unsqueeze(4).repeat(1, 1, 1, 1, num_levels, 1,
                                                  1).flatten(3, 4)
        weights = (weights / num_levels).unsqueeze(4).repeat(
            1, 1, 1, 1, num_levels, 1).flatten(3, 4)
        out = multi_scale_deformable_attn_pytorch(value.flatten(1, 2), shapes,
                                                  locations, weights)
    else:
        out = multi_scale_deformable_attn_pytorch(value, spatial_shapes,
                                                  locations, weights)
    return module.output_proj(out)


def _row(name, times_a, times_b):
    med_a, med_b = statistics.median(times_a), statistics.median(times_b)
    ratio = statistics.median(a / b for a, b in zip(times_a, times_b))
    return f'{name:34s} {med_a:10.1f} {med_b:10.1f} {ratio:8.2f}x'


def run(args):
    device = torch.device(args.device)
    if device.type == 'cpu':
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    C, N, T, Q = args.channels, args.clips, args.frames, args.queries
    heads, points = 8, 4
    shapes = torch.tensor([[max(args.height // s, 1),
                            max(args.width // s, 1)]
                           for s in (8, 16, 32, 64)],
                          device=device)
    starts = torch.cat([shapes.new_zeros(1), shapes.prod(-1).cumsum(0)[:-1]])
    S = int(shapes.prod(-1).sum())
    L = shapes.shape[0]
    print(f'device={device} N={N} T={T} Q={Q} C={C} S={S} '
          f'levels={shapes.tolist()} torch threads={torch.get_num_threads()}'
          f' repeats={args.repeats} (interleaved)')
    results = dict(core={}, module={})

    # 1. core sampling function
    def core_case(batch, num_query, num_levels):
        level_shapes = shapes.repeat(num_levels // L, 1)
        tokens = int(level_shapes.prod(-1).sum())
        value = torch.randn(batch, tokens, heads, C // heads, device=device)
        loc = torch.rand(batch, num_query, heads, num_levels, points, 2,
                         device=device) * 1.2 - 0.1
        weight = torch.rand(batch, num_query, heads, num_levels, points,
                            device=device).softmax(-1)
        return level_shapes, value, loc, weight

    core_cases = [
        ('encoder (point)', N * T, S, L),
        ('decoder frame (box)', N * T, Q, L),
        ('decoder clip (temporal, TxL maps)', N, Q, T * L),
    ]
    header = (f'{"core: case":34s} {"mmcv ms":>10s} {"fast ms":>10s} '
              f'{"speed-up":>9s}')
    print(header)
    print('-' * len(header))
    for name, batch, num_query, num_levels in core_cases:
        level_shapes, value, loc, weight = core_case(batch, num_query,
                                                     num_levels)
        level_starts = torch.cat([
            level_shapes.new_zeros(1),
            level_shapes.prod(-1).cumsum(0)[:-1]
        ])

        def make(fn, backward):

            def call():
                if backward:
                    args_ = [
                        t.detach().requires_grad_()
                        for t in (value, loc, weight)
                    ]
                    fn(args_[0], level_shapes, args_[1],
                       args_[2]).sum().backward()
                else:
                    with torch.no_grad():
                        fn(value, level_shapes, loc, weight)

            return call

        for backward in ([False] if args.skip_backward else [False, True]):
            times = interleaved([
                make(multi_scale_deformable_attn_pytorch, backward),
                make(multi_scale_deformable_attn_fast, backward)
            ], device, args.repeats)
            label = f'{name} {"fwd+bwd" if backward else "fwd"}'
            print(_row(label, *times))
            results['core'][label] = dict(
                mmcv_ms=statistics.median(times[0]),
                fast_ms=statistics.median(times[1]),
                speedup=statistics.median(
                    a / b for a, b in zip(*times)))
            if device.type == 'cuda' and not backward:
                kernel = interleaved([
                    lambda: MultiScaleDeformableAttnFunction.apply(
                        value, level_shapes, level_starts, loc, weight, 64)
                ], device, args.repeats)[0]
                print(f'{"  mmcv CUDA kernel":34s} '
                      f'{statistics.median(kernel):10.3f}')
                results['core'][label]['cuda_kernel_ms'] = \
                    statistics.median(kernel)

    # 2. module: previous path vs current path
    memory = torch.randn(N * T, S, C, device=device)
    mask = torch.zeros(N * T, S, dtype=torch.bool, device=device)
    mask[:, -1] = True

    def boxes(rows, num):
        return torch.cat([
            torch.rand(rows, num, 2, device=device),
            torch.rand(rows, num, 2, device=device) * 0.3 + 0.05
        ], -1)

    ref_points = MDQEDeformableEncoder.get_reference_points(
        shapes, device)[None].expand(N * T, -1, -1)
    query = torch.randn(N * T, Q, C, device=device)
    module_cases = [
        ('point (encoder layer)', MDQEMSDeformAttn(C, mode='point'),
         (memory, ref_points, memory, shapes, starts, mask)),
        ('box (decoder frame)', MDQEMSDeformAttn(C, mode='box'),
         (query, boxes(N * T, Q), memory, shapes, starts, mask)),
        ('temporal (decoder clip)',
         MDQEMSDeformAttn(C, mode='temporal', num_frames=T),
         (query[:N], boxes(N, Q), memory.view(N, T, S, C), shapes, starts,
          mask.view(N, T, S))),
    ]
    header = (f'{"module: case":34s} {"prev ms":>10s} {"now ms":>10s} '
              f'{"speed-up":>9s}')
    print(header)
    print('-' * len(header))
    for name, module, inputs in module_cases:
        module = module.to(device)
        # non-trivial weights, so both paths do real work
        with torch.no_grad():
            for param in module.parameters():
                param.normal_(0, 0.02)

        def make(fn, backward):

            def call():
                if backward:
                    module.zero_grad()
                    fn().sum().backward()
                else:
                    with torch.no_grad():
                        fn()

            return call

        for backward in ([False] if args.skip_backward else [False, True]):
            times = interleaved([
                make(lambda: legacy_module_forward(module, *inputs),
                     backward),
                make(lambda: module(*inputs), backward)
            ], device, args.repeats)
            label = f'{name} {"fwd+bwd" if backward else "fwd"}'
            print(_row(label, *times))
            results['module'][label] = dict(
                prev_ms=statistics.median(times[0]),
                now_ms=statistics.median(times[1]),
                speedup=statistics.median(
                    a / b for a, b in zip(*times)))

    # 3. whole layers
    if args.layers:
        encoder = MDQEDeformableEncoder(layer_cfg=dict(
            embed_dims=C, num_heads=heads, num_levels=4, num_points=points,
            ffn_ratio=4)).to(device)
        decoder = MDQETwoStreamDecoder(embed_dims=C, num_frames=T).to(device)
        reg_branch = GELUMLP(C, C, 4, 3).to(device)
        query_xy = torch.rand(N * T, Q, 2, device=device)
        layer_cases = [
            ('encoder (6 layers)',
             lambda: encoder(memory, memory, mask, shapes, starts)),
            ('decoder (warm-up + 6 layers)',
             lambda: decoder(query, query_xy, memory, mask, shapes, starts, T,
                             reg_branch)['frame_boxes']),
        ]
        header = f'{"layers: case":34s} {"fwd ms":>10s} {"fwd+bwd ms":>10s}'
        print(header)
        print('-' * len(header))
        for name, fn in layer_cases:
            with torch.no_grad():
                fwd = interleaved([fn], device, args.repeats)[0]
            row = f'{name:34s} {statistics.median(fwd):10.1f}'
            if not args.skip_backward:
                memory.requires_grad_(True)
                both = interleaved([lambda: fn().float().sum().backward()],
                                   device, args.repeats)[0]
                memory.requires_grad_(False)
                row += f' {statistics.median(both):10.1f}'
            print(row)
    if device.type == 'cuda':
        print(f'peak memory: {torch.cuda.max_memory_allocated() / 2**20:.0f}'
              ' MiB')
    return results


def main(argv=None):
    return run(parse_args(argv))


if __name__ == '__main__':
    main()

# Copyright (c) OpenMMLab. All rights reserved.
"""Time MDQE's deformable attention, encoder and decoder.

Sizes default to the R50 360p setting of the paper: a 360x640 frame padded
to 384x640 gives levels 48x80, 24x40, 12x20, 6x10 (S = 5100 tokens),
T = 4 frames per clip, Q = 196 queries, C = 256.

Example::

    python benchmarks/bench_msda.py --device cpu --repeats 3
    python benchmarks/bench_msda.py --device cuda --clips 2
"""
import argparse
import time

import torch

from mdqe_mm.models.layers import (GELUMLP, MDQEDeformableEncoder,
                                   MDQEMSDeformAttn, MDQETwoStreamDecoder)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--clips', type=int, default=1, help='N')
    parser.add_argument('--frames', type=int, default=4, help='T')
    parser.add_argument('--queries', type=int, default=196, help='Q')
    parser.add_argument('--channels', type=int, default=256, help='C')
    parser.add_argument('--height', type=int, default=384)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--skip-backward', action='store_true')
    return parser.parse_args()


def timeit(fn, device, repeats):
    """Median wall time (ms) of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[len(times) // 2]


def main():
    args = parse_args()
    device = torch.device(args.device)
    C, N, T, Q = args.channels, args.clips, args.frames, args.queries
    shapes = torch.tensor([[args.height // s, args.width // s]
                           for s in (8, 16, 32, 64)],
                          device=device)
    starts = torch.cat([shapes.new_zeros(1), shapes.prod(-1).cumsum(0)[:-1]])
    S = int(shapes.prod(-1).sum())
    memory = torch.randn(N * T, S, C, device=device)
    mask = torch.zeros(N * T, S, dtype=torch.bool, device=device)

    def boxes(rows, num):
        return torch.cat([
            torch.rand(rows, num, 2, device=device),
            torch.rand(rows, num, 2, device=device) * 0.3 + 0.05
        ], -1)

    point = MDQEMSDeformAttn(C, mode='point').to(device)
    box = MDQEMSDeformAttn(C, mode='box').to(device)
    temporal = MDQEMSDeformAttn(C, mode='temporal', num_frames=T).to(device)
    encoder = MDQEDeformableEncoder().to(device)
    decoder = MDQETwoStreamDecoder(embed_dims=C, num_frames=T).to(device)
    reg_branch = GELUMLP(C, C, 4, 3).to(device)
    query = torch.randn(N * T, Q, C, device=device)
    query_xy = torch.rand(N * T, Q, 2, device=device)
    ref_points = MDQEDeformableEncoder.get_reference_points(
        shapes, device)[None].expand(N * T, -1, -1)

    cases = [
        ('msda point (encoder layer)', f'{N * T}x{S}',
         lambda: point(memory, ref_points, memory, shapes, starts, mask)),
        ('msda box (decoder frame)', f'{N * T}x{Q}',
         lambda: box(query, boxes(N * T, Q), memory, shapes, starts, mask)),
        ('msda temporal (decoder clip)', f'{N}x{Q}',
         lambda: temporal(query[:N], boxes(N, Q), memory.view(N, T, S, C),
                          shapes, starts, mask.view(N, T, S))),
        ('encoder (6 layers)', f'{N * T}x{S}',
         lambda: encoder(memory, memory, mask, shapes, starts)),
        ('decoder (warm-up + 6 layers)', f'{N * T}x{Q}',
         lambda: decoder(query, query_xy, memory, mask, shapes, starts, T,
                         reg_branch)['frame_boxes']),
    ]
    print(f'device={device} N={N} T={T} Q={Q} C={C} S={S} '
          f'levels={shapes.tolist()} torch threads={torch.get_num_threads()}')
    header = f'{"case":32s} {"batch x tokens":>15s} {"fwd ms":>9s}'
    if not args.skip_backward:
        header += f' {"fwd+bwd ms":>11s}'
    print(header)
    print('-' * len(header))
    for name, batch, fn in cases:
        with torch.no_grad():
            fwd = timeit(fn, device, args.repeats)
        row = f'{name:32s} {batch:>15s} {fwd:9.1f}'
        if not args.skip_backward:
            memory.requires_grad_(True)
            bwd = timeit(lambda: fn().float().sum().backward(), device,
                         args.repeats)
            memory.requires_grad_(False)
            row += f' {bwd:11.1f}'
        print(row)
    if device.type == 'cuda':
        print(f'peak memory: {torch.cuda.max_memory_allocated() / 2**20:.0f}'
              ' MiB')


if __name__ == '__main__':
    main()

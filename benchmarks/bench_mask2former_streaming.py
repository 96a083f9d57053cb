# Copyright (c) OpenMMLab. All rights reserved.
"""Peak memory of mmdet's Mask2FormerVideo: stock predict vs near-online.

The stock ``Mask2FormerVideo.predict`` decodes a whole video as one clip:
features, attention masks and full-resolution mask logits of all L frames
are held at once. ``NearOnlineMask2FormerVideo`` (the same weights) streams
the video through MDQE's ``NearOnlineInferencer``: per-frame features once,
then clips of T frames, so its memory should not grow with L (target: the
peak at 600 frames within 10% of the peak at 60 frames).

Each (path, length) runs in a fresh child process that records its resident
set size (RSS) just before inference and its high-water mark (``ru_maxrss``)
after it, plus ``torch.cuda.max_memory_allocated`` on CUDA. The model is
built from the mixing config (default: the tiny synthetic one) with random
weights (or ``--checkpoint``). Frames are uint8 noise made on demand from
their index: the near-online path reads them window by window, the stock
path needs the whole video as one tensor and builds it (uint8 stack and the
preprocessor's float copy) inside the measured region. Timings on a shared
machine are not reliable; memory is.

RSS and the CPU allocator: glibc raises its mmap threshold after a large
block is freed, so later blocks of that size come from the heap, which
fragments; the RSS of a long run then creeps up although no more memory is
held. ``--mmap-threshold 128`` pins it at 128 KiB (glibc's initial value)
to measure what is held. Measured at 128x224 on a CPU: the near-online peak
grew by 95 MB from 60 to 600 frames with the dynamic threshold, by 13 MB
(about the 11 MB of RLE output) with it pinned. On CUDA
``torch.cuda.max_memory_allocated`` is not affected.

Usage::

    python benchmarks/bench_mask2former_streaming.py
    python benchmarks/bench_mask2former_streaming.py --height 128 \
        --width 224 --mmap-threshold 128
    python benchmarks/bench_mask2former_streaming.py --frames 60 600 \
        --height 360 --width 640 --device cuda
    python benchmarks/bench_mask2former_streaming.py --config CFG \
        --checkpoint CKPT
"""
import argparse
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(REPO_ROOT, 'configs', 'mixing',
                          'mask2former-video_near-online_synthetic.py')
PATHS = ('stock', 'near-online')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--frames', type=int, nargs='+', default=[60, 600])
    parser.add_argument('--height', type=int, default=64)
    parser.add_argument('--width', type=int, default=96)
    parser.add_argument(
        '--paths', nargs='+', choices=PATHS, default=list(PATHS))
    parser.add_argument(
        '--config',
        default=DEFAULT_CONFIG,
        help='a NearOnlineMask2FormerVideo config (default: the tiny '
        'synthetic mixing config)')
    parser.add_argument('--checkpoint', help='weights (default: random)')
    parser.add_argument(
        '--clip-length', type=int, help='T (default: the config test_cfg)')
    parser.add_argument(
        '--window',
        type=int,
        help='frames per feature window (default: '
        'the config test_cfg)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument(
        '--mmap-threshold',
        type=int,
        metavar='KIB',
        help='run the children with glibc MALLOC_MMAP_THRESHOLD_=KIB*1024 '
        '(default: glibc\'s dynamic threshold, see the module docstring)')
    parser.add_argument(
        '--in-process',
        action='store_true',
        help='run every measurement in this process (fast, for smoke '
        'tests; the RSS numbers are then not isolated and not meaningful)')
    parser.add_argument('--child', nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for length in args.frames:
        if length < 1:
            parser.error(f'--frames must be >= 1, got {length}')
    if args.height < 1 or args.width < 1:
        parser.error('--height and --width must be >= 1')
    if not osp.isfile(args.config):
        parser.error(f'config file not found: {args.config}')
    if args.checkpoint and not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint not found: {args.checkpoint}')
    return args


def current_rss_mb() -> float:
    with open('/proc/self/statm') as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf('SC_PAGE_SIZE') / 2**20


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux. The kernel updates that high-water mark
    # lazily, so it can read a little below the current RSS (statm).
    return max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        current_rss_mb())


class LazyVideo:
    """L uint8 frames (3, H, W) made on demand (frame f: noise seeded by f)."""

    def __init__(self, length: int, height: int, width: int) -> None:
        self.length, self.height, self.width = length, height, width

    def __len__(self) -> int:
        return self.length

    def _frame(self, index: int):
        import torch
        gen = torch.Generator().manual_seed(index)
        return torch.randint(
            0,
            256, (3, self.height, self.width),
            generator=gen,
            dtype=torch.uint8)

    def __getitem__(self, item):
        import torch
        if isinstance(item, slice):
            return torch.stack(
                [self._frame(i) for i in range(*item.indices(self.length))])
        if not -self.length <= item < self.length:
            raise IndexError(item)
        return self._frame(item % self.length)


def build_models(args):
    """The near-online model and the stock one with the same weights."""
    import copy

    import torch
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    import mdqe_mm  # noqa: F401
    from mdqe_mm.utils import init_weights_quietly
    init_default_scope('mmdet')
    cfg = Config.fromfile(args.config)
    model_cfg = copy.deepcopy(cfg.model)
    if model_cfg.get('type') != 'NearOnlineMask2FormerVideo':
        raise SystemExit(f'{args.config}: model.type must be '
                         f"'NearOnlineMask2FormerVideo', got "
                         f"{model_cfg.get('type')!r}")
    test_cfg = dict(model_cfg.get('test_cfg') or {})
    if args.clip_length:
        test_cfg['clip_length'] = args.clip_length
    if args.window:
        test_cfg['window_length'] = args.window
    model_cfg.test_cfg = test_cfg
    model_cfg.init_cfg = None  # no download; random or --checkpoint
    torch.manual_seed(0)
    near_online = init_weights_quietly(MODELS.build(model_cfg))
    if args.checkpoint:
        load_checkpoint(near_online, args.checkpoint, map_location='cpu')
    stock_cfg = copy.deepcopy(model_cfg)
    stock_cfg.type = 'Mask2FormerVideo'
    stock_cfg.pop('test_cfg')
    stock_cfg.data_preprocessor.type = 'TrackDataPreprocessor'
    stock = MODELS.build(stock_cfg)
    stock.load_state_dict(near_online.state_dict())
    return (near_online.to(args.device).eval(), stock.to(args.device).eval(),
            test_cfg)


def make_sample(length, height, width):
    from mmdet.structures import DetDataSample, TrackDataSample
    return TrackDataSample(video_data_samples=[
        DetDataSample(
            metainfo=dict(
                frame_id=i,
                video_id=0,
                video_length=length,
                img_shape=(height, width),
                ori_shape=(height, width))) for i in range(length)
    ])


def run_once(path, model, length, height, width):
    """One video through one path; returns the number of output
    instances of the last frame."""
    import torch
    video = LazyVideo(length, height, width)
    sample = make_sample(length, height, width)
    with torch.no_grad():
        if path == 'stock':
            data = dict(inputs=[video[0:length]], data_samples=[sample])
            result = model.test_step(data)[0]
        else:
            result = model.predict([video], [sample])[0]
    return len(result[length - 1].pred_track_instances.scores)


def child(args, models=None) -> dict:
    import torch
    torch.set_num_threads(args.threads)
    path, length = args.child[0], int(args.child[1])
    near_online, stock, test_cfg = models or build_models(args)
    model = stock if path == 'stock' else near_online
    cuda = str(args.device).startswith('cuda')
    # warm up allocator and lazy imports on a short video first
    run_once(path, model, 3, args.height, args.width)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        cuda_before = torch.cuda.memory_allocated()
    before = current_rss_mb()
    start = time.perf_counter()
    failed = None
    try:
        num_out = run_once(path, model, length, args.height, args.width)
    except (torch.cuda.OutOfMemoryError, MemoryError) as err:
        num_out, failed = 0, f'out of memory ({type(err).__name__})'
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    row = dict(
        path=path,
        frames=length,
        failed=failed,
        rss_before_mb=before,
        peak_mb=peak_rss_mb(),
        seconds=seconds,
        outputs=num_out,
        clip_length=test_cfg.get('clip_length', 4),
        window=test_cfg.get('window_length', 30))
    if cuda:
        row['cuda_peak_mb'] = (torch.cuda.max_memory_allocated() -
                               cuda_before) / 2**20
    if path == 'near-online':
        row['max_buffered_frames'] = \
            near_online._inferencer.last_stats['max_buffered_frames']
    return row


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args)))
        return 0
    argv = list(sys.argv[1:] if argv is None else argv)
    rows = []
    models = build_models(args) if args.in_process else None
    for path in args.paths:
        for length in args.frames:
            if args.in_process:
                args.child = [path, str(length)]
                rows.append(child(args, models))
                continue
            cmd = [sys.executable, osp.abspath(__file__)] + argv + \
                ['--child', path, str(length)]
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
            if args.mmap_threshold:
                env['MALLOC_MMAP_THRESHOLD_'] = str(args.mmap_threshold * 1024)
            proc = subprocess.run(
                cmd, capture_output=True, text=True, env=env, check=False)
            if proc.returncode != 0:
                # e.g. killed by the kernel's OOM killer (rc -9)
                print(
                    f'{path} run with {length} frames failed (rc '
                    f'{proc.returncode}):\n{proc.stderr[-3000:]}',
                    file=sys.stderr)
                rows.append(
                    dict(
                        path=path,
                        frames=length,
                        failed=f'exit code {proc.returncode}'))
                continue
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    done = [row for row in rows if not row.get('failed')]
    cuda = str(args.device).startswith('cuda')
    test_cfg = done[0] if done else dict(clip_length='?', window='?')
    print(f'model: {osp.relpath(args.config, REPO_ROOT)} '
          f'({"--checkpoint" if args.checkpoint else "random weights"}), '
          f'input {args.height}x{args.width}, device {args.device}, '
          f'threads {args.threads}, near-online '
          f'T={test_cfg["clip_length"]} window={test_cfg["window"]}, '
          'glibc mmap threshold: ' + (f'{args.mmap_threshold} KiB' if args.
                                      mmap_threshold else 'dynamic (default)'))
    if args.in_process:
        print('--in-process: one process for all runs, RSS not isolated')
    header = [
        'path', 'frames', 'peak RSS (MB)', 'RSS before (MB)',
        'peak - before (MB)'
    ]
    if cuda:
        header.append('CUDA peak allocated (MB)')
    header += ['time (s)', 'outputs/frame']
    print('| ' + ' | '.join(header) + ' |')
    print('|' + '---|' * len(header))
    for row in rows:
        cells = [row['path'], str(row['frames'])]
        if 'peak_mb' in row:
            cells += [
                f'{row["peak_mb"]:.1f}', f'{row["rss_before_mb"]:.1f}',
                f'{row["peak_mb"] - row["rss_before_mb"]:.1f}'
            ]
            if cuda:
                cells.append(f'{row["cuda_peak_mb"]:.1f}')
            cells.append(f'{row["seconds"]:.1f}')
        else:
            cells += ['-'] * (len(header) - 3)
        cells.append(row['failed'] or str(row['outputs']))
        print('| ' + ' | '.join(cells) + ' |')
    if len(args.frames) >= 2:
        lo, hi = min(args.frames), max(args.frames)
        for path in args.paths:
            by_len = {r['frames']: r for r in rows if r['path'] == path}
            first, last = by_len[lo], by_len[hi]
            if first.get('failed') or last.get('failed'):
                print(f'{path}: no ratio, a run failed')
                continue
            line = (f'{path}: peak RSS ratio {hi}/{lo} frames '
                    f'{last["peak_mb"] / first["peak_mb"]:.3f}, growth '
                    f'{last["peak_mb"] - first["peak_mb"]:+.1f} MB')
            if cuda:
                line += (f'; CUDA peak ratio '
                         f'{last["cuda_peak_mb"] / first["cuda_peak_mb"]:.3f}')
            if path == 'near-online':
                key = 'cuda_peak_mb' if cuda else 'peak_mb'
                ratio = last[key] / first[key]
                line += (f' (target <= 1.10: '
                         f'{"met" if ratio <= 1.10 else "NOT met"})')
                if ratio > 1.10 and not (cuda or args.mmap_threshold):
                    line += ('; rerun with --mmap-threshold 128 to tell '
                             'allocator fragmentation from held memory')
            print(line)
    return 1 if len(done) < len(rows) else 0


if __name__ == '__main__':
    sys.exit(main())

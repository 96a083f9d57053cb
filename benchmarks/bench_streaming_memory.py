# Copyright (c) OpenMMLab. All rights reserved.
"""Peak memory of near-online streaming inference vs video length.

Each run happens in a fresh child process that records its resident set
size (RSS) just before inference and its high-water mark
(``ru_maxrss``) after it, so runs do not pollute each other. The target of
issue 6 is that a 600-frame video peaks within 10% of a 60-frame one.

By default the model is a SYNTHETIC STAND-IN (no weights needed): it
allocates per-frame features of the real MDQE R50 sizes for the padded
input (4 levels at strides 8/16/32/64 with C=256 channels, the padding
mask and 32 stride-4 mask prototypes) and decodes every clip into Q=196
queries with (Q, T', H/4, W/4) mask logits, (Q, K) scores and (Q, 256)
clip embeddings; a few scripted objects move, leave and come back, so the
tracker and the RLE output do real work. Frames are produced lazily from
their index, so the input video itself does not grow with the length (the
real test pipeline loads a whole video as uint8; that is outside the
inferencer and is not measured here).

With ``--config`` (and optionally ``--checkpoint``) the real MDQE from that
config is built instead and driven through its ``extract_frame_feats`` /
``decode_clips``.

Usage::

    python benchmarks/bench_streaming_memory.py
    python benchmarks/bench_streaming_memory.py --frames 60 600 --height 96 \
        --width 160
    python benchmarks/bench_streaming_memory.py --config CFG --checkpoint CKPT
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

STAND_IN_LABEL = 'synthetic stand-in (real R50 feature sizes, no weights)'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--frames', type=int, nargs='+', default=[60, 600])
    parser.add_argument('--height', type=int, default=96)
    parser.add_argument('--width', type=int, default=160)
    parser.add_argument('--num-frames', type=int, default=4, help='T')
    parser.add_argument('--window', type=int, default=30, help='W')
    parser.add_argument(
        '--decode-batch-size',
        type=int,
        help='most clips per decode_clips call (default: all of a window)')
    parser.add_argument('--num-classes', type=int, default=25)
    parser.add_argument('--num-objects', type=int, default=6)
    parser.add_argument('--config', help='build the real MDQE from this')
    parser.add_argument('--checkpoint', help='weights for --config')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--child', type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def current_rss_mb() -> float:
    with open('/proc/self/statm') as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf('SC_PAGE_SIZE') / 2**20


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class LazyVideo:
    """A video whose frames are made on demand: frame f is uint8 noise
    seeded by f, with f written into pixel (0, 0) as base-256 digits so the
    stand-in model can read it back."""

    def __init__(self, length: int, height: int, width: int) -> None:
        self.length, self.height, self.width = length, height, width

    def __len__(self) -> int:
        return self.length

    def _frame(self, index: int):
        import torch
        gen = torch.Generator().manual_seed(index)
        frame = torch.randint(
            0,
            256, (3, self.height, self.width),
            generator=gen,
            dtype=torch.uint8)
        frame[:, 0, 0] = torch.tensor(
            [index // 65536, index // 256 % 256, index % 256],
            dtype=torch.uint8)
        return frame

    def __getitem__(self, item):
        import torch
        if isinstance(item, slice):
            return torch.stack(
                [self._frame(i) for i in range(*item.indices(self.length))])
        if not -self.length <= item < self.length:
            # ends iteration (``for frame in video``)
            raise IndexError(f'frame {item} of a {self.length}-frame video')
        return self._frame(item % self.length)


class StandInMDQE:
    """Allocates what MDQE R50 allocates per frame and per clip."""

    def __init__(self,
                 num_classes: int,
                 num_objects: int,
                 pad_hw,
                 num_queries: int = 196,
                 channels: int = 256,
                 num_protos: int = 32) -> None:
        import torch
        self.num_classes = num_classes
        self.num_queries = num_queries
        self.channels = channels
        self.num_protos = num_protos
        self.pad_h, self.pad_w = pad_hw
        self.shapes = []
        h, w = self.pad_h, self.pad_w
        for stride in (8, 16, 32, 64):
            self.shapes.append((-(-h // stride), -(-w // stride)))
        self.num_tokens = sum(a * b for a, b in self.shapes)
        gen = torch.Generator().manual_seed(0)
        self.objects = []
        for k in range(num_objects):
            self.objects.append(
                dict(
                    label=k % num_classes,
                    embed=torch.randn(channels, generator=gen) * 0.5,
                    # visible for `on` frames then hidden for `off`
                    on=40 + 13 * k,
                    off=6 + 2 * k,
                    speed=0.5 + 0.1 * k,
                    row=(k * 5) % max(self.pad_h // 4 - 6, 1)))

    @staticmethod
    def frame_index(frames):
        digits = frames[:, :, 0, 0].round().long()
        return digits[:, 0] * 65536 + digits[:, 1] * 256 + digits[:, 2]

    def extract_frame_feats(self, frames):
        import torch
        num = frames.shape[0]
        return dict(
            frame_index=self.frame_index(frames),
            memory=torch.randn(num, self.num_tokens, self.channels),
            padding_mask=torch.zeros(num, self.num_tokens, dtype=torch.bool),
            spatial_shapes=torch.tensor(self.shapes),
            level_start_index=torch.zeros(4, dtype=torch.long),
            protos=torch.rand(num, self.num_protos, self.pad_h // 4,
                              self.pad_w // 4))

    def _visible(self, obj, frame: int) -> bool:
        return frame % (obj['on'] + obj['off']) < obj['on']

    def decode_clips(self, feats, clip_frame_inds):
        import torch
        outs = []
        w4 = self.pad_w // 4
        for inds in clip_frame_inds:
            frames = feats['frame_index'][inds].tolist()
            # the real decoder's output: every query has a mask
            protos = feats['protos'][inds]  # (T', P, h4, w4)
            coeffs = torch.randn(self.num_queries, self.num_protos) * 0.1
            masks = torch.einsum('qp,tphw->qthw', coeffs, protos) - 2.0
            scores = torch.rand(self.num_queries, self.num_classes) * 0.08
            embeds = torch.randn(self.num_queries, self.channels)
            for q, obj in enumerate(self.objects):
                if not any(self._visible(obj, f) for f in frames):
                    continue
                scores[q, obj['label']] = 0.85
                embeds[q] = obj['embed'] + 0.05 * torch.randn(self.channels)
                masks[q] = -6.0
                for t, f in enumerate(frames):
                    if self._visible(obj, f):
                        x0 = int(obj['speed'] * f) % max(w4 - 6, 1)
                        masks[q, t, obj['row']:obj['row'] + 6, x0:x0 + 6] = 6.0
            outs.append(
                dict(scores=scores, mask_logits=masks, clip_embeds=embeds))
        return outs


def build_real_model(args):
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint

    import mdqe_mm  # noqa: F401
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.config)
    model = MODELS.build(cfg.model)
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    model = model.to(args.device).eval()
    divisor = getattr(model, 'size_divisor', 32)
    pad_h = -(-args.height // divisor) * divisor
    pad_w = -(-args.width // divisor) * divisor
    img_shapes = [(args.height, args.width)]

    def extract(frames):
        return model.extract_frame_feats(frames, img_shapes * frames.shape[0])

    preprocessor = model.data_preprocessor
    if hasattr(preprocessor, 'prepare_window'):
        prepare = preprocessor.prepare_window
    else:
        mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
        std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)

        def prepare(frames):
            x = (frames.float() - mean) / std
            x = torch.nn.functional.pad(
                x, (0, pad_w - x.shape[-1], 0, pad_h - x.shape[-2]))
            return x.to(args.device)

    test_cfg = dict(getattr(model, 'test_cfg', None) or {})
    return extract, model.decode_clips, prepare, test_cfg.get('inferencer')


def child(args) -> None:
    import torch
    torch.set_num_threads(args.threads)
    from mmdet.registry import MODELS

    import mdqe_mm  # noqa: F401
    from mdqe_mm.models.trackers import NearOnlineInferencer

    length = args.child
    inferencer_cfg = None
    if args.config:
        extract, decode, prepare, inferencer_cfg = build_real_model(args)
        label = f'real MDQE ({os.path.basename(args.config)})'
    else:
        pad = (-(-args.height // 32) * 32, -(-args.width // 32) * 32)
        model = StandInMDQE(args.num_classes, args.num_objects, pad)
        extract, decode = model.extract_frame_feats, model.decode_clips

        def prepare(frames):  # the stand-in reads raw pixel values
            import torch.nn.functional as F
            x = frames.float()
            return F.pad(x, (0, pad[1] - x.shape[-1], 0, pad[0] - x.shape[-2]))

        label = STAND_IN_LABEL
    if inferencer_cfg:
        inferencer = MODELS.build(inferencer_cfg)
    else:
        inferencer = NearOnlineInferencer(
            num_frames=args.num_frames,
            window_size=args.window,
            decode_batch_size=args.decode_batch_size)
    video = LazyVideo(length, args.height, args.width)

    # warm up allocator and lazy imports on a tiny video first
    inferencer.predict(
        LazyVideo(3, args.height, args.width),
        extract,
        decode,
        prepare_window=prepare)
    before = current_rss_mb()
    cuda = torch.device(args.device).type == 'cuda'
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        gpu_before = torch.cuda.memory_allocated() / 2**20
    start = time.perf_counter()
    with torch.no_grad():
        result = inferencer.predict(
            video, extract, decode, prepare_window=prepare)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    after = current_rss_mb()
    gpu = dict(
        gpu_before_mb=gpu_before,
        gpu_peak_mb=torch.cuda.max_memory_allocated() / 2**20) if cuda \
        else {}
    pred = result[0].pred_track_instances
    print(
        json.dumps(
            dict(
                label=label,
                frames=length,
                rss_before_mb=before,
                rss_after_mb=after,
                peak_mb=peak_rss_mb(),
                seconds=seconds,
                num_pairs=len(pred.scores),
                num_tracks=inferencer.tracker.num_tracks,
                **gpu,
                **inferencer.last_stats)))


def main(argv=None) -> list:
    """Run every length in a child process; returns the rows."""
    args = parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    if args.child is not None:
        child(args)
        return []
    rows = []
    for length in args.frames:
        cmd = [
            sys.executable,
            os.path.abspath(__file__), '--child',
            str(length)
        ] + argv
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            sys.exit(f'run with {length} frames failed:\n{proc.stderr}')
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    print(f'model: {rows[0]["label"]}')
    classes = '' if args.config else f'K={args.num_classes}, '
    print(f'input {args.height}x{args.width}, T={args.num_frames}, '
          f'W={args.window}, {classes}threads={args.threads}, '
          f'decode batch={args.decode_batch_size or "window"}')
    print('| frames | peak RSS (MB) | RSS before predict (MB) | '
          'peak - before (MB) | RSS after, output alive (MB) | time (s) | '
          'clips | tracks | output pairs | max frames of features held |')
    print('|' + '---|' * 10)
    for row in rows:
        growth = row['peak_mb'] - row['rss_before_mb']
        print(f'| {row["frames"]} | {row["peak_mb"]:.1f} | '
              f'{row["rss_before_mb"]:.1f} | {growth:.1f} | '
              f'{row["rss_after_mb"]:.1f} | {row["seconds"]:.1f} | '
              f'{row["num_clips"]} | {row["num_tracks"]} | '
              f'{row["num_pairs"]} | {row["max_buffered_frames"]} |')
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        ratio = last['peak_mb'] / first['peak_mb']
        print(f'peak ratio {last["frames"]} / {first["frames"]} frames: '
              f'{ratio:.3f} (target <= 1.10: '
              f'{"met" if ratio <= 1.10 else "NOT met"})')
        if 'gpu_peak_mb' in first:
            gpu_ratio = last['gpu_peak_mb'] / max(first['gpu_peak_mb'], 1e-6)
            print(f'GPU max allocated: {first["gpu_peak_mb"]:.0f} MiB '
                  f'({first["frames"]} frames), {last["gpu_peak_mb"]:.0f} '
                  f'MiB ({last["frames"]} frames), ratio {gpu_ratio:.3f}')
    return rows


if __name__ == '__main__':
    main()

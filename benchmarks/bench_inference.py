# Copyright (c) OpenMMLab. All rights reserved.
"""Per-stage inference speed of MDQE on one video, optionally against
mmdet's Mask2FormerVideo, and the host-side budget.

Two modes:

* ``--config CFG`` (the real model): one random video of ``--frames``
  frames at ``--height`` x ``--width`` goes through near-online inference
  (``MDQE.build_inferencer``). Printed: wall time per stage (backbone +
  neck, encoder + prototypes, query selection + decoder, post-processing,
  tracker + aggregation, mask upsampling + RLE), FPS and peak memory (host
  RSS; ``torch.cuda.max_memory_allocated`` on CUDA). On CUDA the FPS run is
  timed end to end after a warm-up video and synchronisation, and the
  stages in a second run with a synchronisation at every stage boundary.
  ``--compare-mask2former`` builds mmdet's Mask2FormerVideo R50
  (``mmdet::mask2former_vis``) in the same process and times it on the same
  video, at the same precision, also under ``torch.no_grad()``, and prints
  the FPS ratio. Weights are random unless ``--checkpoint`` is given.
* default (no ``--config``): the HOST-SIDE BUDGET. A stand-in model gives
  196 queries per clip of which 10 are objects that move, get occluded and
  come back (the rest are background queries with low scores); only the
  stages that run outside the network are timed, on one CPU thread, at
  360p and 720p, and checked against 3.3 / 6.7 ms per frame (half of a
  frame's time at the GPU targets of 150 / 75 FPS).

Examples::

    python benchmarks/bench_inference.py                      # host budget
    python benchmarks/bench_inference.py \\
        --config configs/quickstart/mdqe_tiny_1xb2-4k_synthetic.py \\
        --frames 30 --height 144 --width 240
    python benchmarks/bench_inference.py \\
        --config configs/mdqe/mdqe_r50_8xb2-12k_ovis.py --frames 8 \\
        --height 360 --width 640 --threads 2 --compare-mask2former
    python benchmarks/bench_inference.py --config CFG --device cuda --amp \\
        --frames 60 --height 720 --width 1280 --compare-mask2former
"""
import argparse
import json
import math
import os
import os.path as osp
import resource
import sys
import time

import torch
import torch.nn.functional as F

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
HOST_STAGES = ('postprocess', 'track', 'rle')
#: host-side budget in ms per frame at each height (half a frame's time at
#: 150 FPS for 360p and 75 FPS for 720p)
HOST_BUDGET_MS = {360: 3.3, 720: 6.7}
STAGE_LABELS = dict(
    backbone='backbone + neck',
    encoder='encoder + mask prototypes',
    decode='query selection + decoder',
    postprocess='post-processing',
    track='tracker + aggregation',
    rle='mask upsampling + RLE')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', help='MDQE config (default: host-side '
                        'budget with the stand-in)')
    parser.add_argument('--checkpoint', help='weights (default: random)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--amp', action='store_true',
                        help='autocast (fp16 on CUDA, bf16 on CPU)')
    parser.add_argument('--frames', type=int, help='video length (default '
                        '30; 60 for the host budget)')
    parser.add_argument('--height', type=int, nargs='+',
                        help='frame height(s) (default 360; the host budget '
                        'runs 360 and 720)')
    parser.add_argument('--width', type=int, nargs='+',
                        help='frame width(s), one per height (default '
                        'height * 16 / 9)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads (default 1)')
    parser.add_argument('--decode-batch-size', type=int,
                        help='clips per decode call (default: the config\'s)')
    parser.add_argument('--compare-mask2former', action='store_true')
    parser.add_argument('--num-objects', type=int, default=10,
                        help='stand-in objects (host budget)')
    parser.add_argument('--json', help='also write the results here')
    args = parser.parse_args(argv)
    if args.frames is not None and args.frames < 1:
        parser.error(f'--frames must be >= 1, got {args.frames}')
    heights = args.height or ([360] if args.config else [360, 720])
    widths = args.width or [int(round(h * 16 / 9)) for h in heights]
    if len(widths) != len(heights):
        parser.error(f'{len(heights)} heights but {len(widths)} widths')
    if any(v < 1 for v in heights + widths):
        parser.error('--height and --width must be positive')
    args.sizes = list(zip(heights, widths))
    if args.frames is None:
        args.frames = 30 if args.config else 60
    if args.config and not osp.isfile(args.config):
        parser.error(f'--config {args.config}: no such file')
    if args.checkpoint and not args.config:
        parser.error('--checkpoint needs --config')
    return args


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def autocast(device: torch.device, enabled: bool):
    dtype = torch.float16 if device.type == 'cuda' else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, enabled=enabled)


# ----------------------------------------------------------------------
# host-side budget: stand-in model
# ----------------------------------------------------------------------
class HostStandIn:
    """Clip outputs shaped like MDQE R50's, made cheaply.

    196 queries, K classes, 256-d clip embeddings, stride-4 mask logits.
    Queries 0..n-1 are objects: ellipses that move across the frame and are
    hidden for a few frames now and then; their scores are high and their
    embeddings stable. The other queries have scores below the class
    threshold, random embeddings and background masks, as the real model's
    background queries do. The features are tiny: this model only feeds
    the inferencer's host-side stages.
    """

    def __init__(self, height, width, num_objects=10, num_queries=196,
                 num_classes=25, channels=256, seed=0):
        gen = torch.Generator().manual_seed(seed)
        self.pad_h = -(-height // 32) * 32
        self.pad_w = -(-width // 32) * 32
        self.h4, self.w4 = self.pad_h // 4, self.pad_w // 4
        self.num_queries = num_queries
        self.num_classes = num_classes
        self.channels = channels
        self.gen = gen
        self.objects = []
        for k in range(num_objects):
            self.objects.append(
                dict(
                    label=k % num_classes,
                    embed=torch.randn(channels, generator=gen),
                    cy=float(torch.rand((), generator=gen)) * self.h4,
                    cx=float(torch.rand((), generator=gen)) * self.w4,
                    ry=self.h4 * (0.06 + 0.1 * float(
                        torch.rand((), generator=gen))),
                    rx=self.w4 * (0.04 + 0.08 * float(
                        torch.rand((), generator=gen))),
                    vx=0.6 * (float(torch.rand((), generator=gen)) - 0.5),
                    period=37 + 7 * k,
                    hidden=3 + k % 4))
        ys = torch.arange(self.h4, dtype=torch.float32)
        xs = torch.arange(self.w4, dtype=torch.float32)
        self.yy, self.xx = ys[:, None], xs[None]

    def _mask(self, obj, frame):
        if frame % obj['period'] >= obj['period'] - obj['hidden']:
            return None
        cx = (obj['cx'] + obj['vx'] * frame) % self.w4
        dist = ((self.yy - obj['cy']) / obj['ry'])**2 + (
            (self.xx - cx) / obj['rx'])**2
        return 6.0 * (1.0 - dist.sqrt())

    def decode_clips(self, feats, clip_frame_inds):
        outs = []
        for inds in clip_frame_inds:
            frames = [int(feats['frame_index'][i]) for i in inds]
            length = len(frames)
            masks = torch.full((self.num_queries, length, self.h4, self.w4),
                               -6.0)
            scores = torch.rand(
                self.num_queries, self.num_classes, generator=self.gen) * 0.08
            embeds = torch.randn(
                self.num_queries, self.channels, generator=self.gen)
            for q, obj in enumerate(self.objects):
                obj_masks = [self._mask(obj, f) for f in frames]
                if all(m is None for m in obj_masks):
                    continue
                scores[q, obj['label']] = 0.9
                embeds[q] = obj['embed'] + 0.05 * torch.randn(
                    self.channels, generator=self.gen)
                for t, m in enumerate(obj_masks):
                    if m is not None:
                        masks[q, t] = m
            outs.append(
                dict(scores=scores, mask_logits=masks, clip_embeds=embeds))
        return outs


def run_host_budget(args):
    from mdqe_mm.models.trackers import NearOnlineInferencer
    torch.set_num_threads(1)
    rows = []
    for height, width in args.sizes:
        model = HostStandIn(height, width, args.num_objects)
        inferencer = NearOnlineInferencer(
            num_frames=4,
            window_size=30,
            max_dets=10,
            decode_batch_size=args.decode_batch_size or 4,
            time_stages=True)

        video = LazyVideo(args.frames, height, width)

        def extract(frames):
            # the absolute frame index of every row of the window
            return dict(frame_index=frames[:, 0, 0, 0].long())

        inferencer.predict(
            LazyVideo(6, height, width),
            extract,
            model.decode_clips,
            prepare_window=index_window)  # warm-up
        start = time.perf_counter()
        result = inferencer.predict(
            video, extract, model.decode_clips, prepare_window=index_window)
        total = time.perf_counter() - start
        timings = dict(inferencer.last_timings)
        host = sum(timings.get(k, 0.0) for k in HOST_STAGES)
        per_frame = {k: timings.get(k, 0.0) * 1000 / args.frames
                     for k in HOST_STAGES}
        budget = HOST_BUDGET_MS.get(height, 3.3 * height / 360)
        num_tracks = inferencer.tracker.num_tracks
        pred = result[args.frames - 1].pred_track_instances
        rows.append(
            dict(
                height=height,
                width=width,
                frames=args.frames,
                ms_per_frame=per_frame,
                host_ms_per_frame=host * 1000 / args.frames,
                budget_ms=budget,
                met=host * 1000 / args.frames <= budget,
                tracks=num_tracks,
                outputs=len(pred.scores),
                total_s=total))
    print(f'HOST-SIDE BUDGET: stand-in with 196 queries, '
          f'{args.num_objects} objects, T=4, window 30, '
          f'{args.frames} frames, 1 CPU thread')
    print('| size | ' + ' | '.join(STAGE_LABELS[k] for k in HOST_STAGES) +
          ' | host total | budget | met | tracks |')
    print('|' + '---|' * (len(HOST_STAGES) + 5))
    for row in rows:
        cells = [f'{row["ms_per_frame"][k]:.2f}' for k in HOST_STAGES]
        print(f'| {row["height"]}x{row["width"]} | ' + ' | '.join(cells) +
              f' | {row["host_ms_per_frame"]:.2f} | '
              f'{row["budget_ms"]:.1f} | '
              f'{"yes" if row["met"] else "NO"} | {row["tracks"]} |')
    print('(ms per frame; the stand-in\'s own decoding is not counted)')
    return dict(mode='host_budget', rows=rows)


class LazyVideo:
    """uint8 frames made on demand; frame f carries f in pixel (0, 0) of
    every channel (as base-256 digits, three channels)."""

    def __init__(self, length, height, width):
        self.length, self.height, self.width = length, height, width

    def __len__(self):
        return self.length

    def __getitem__(self, item):
        if isinstance(item, slice):
            return torch.stack(
                [self[i] for i in range(*item.indices(self.length))])
        if not -self.length <= item < self.length:
            raise IndexError(f'frame {item} of {self.length}')
        item %= self.length
        frame = torch.zeros((3, self.height, self.width), dtype=torch.uint8)
        frame[:, 0, 0] = torch.tensor(
            [item // 65536, item // 256 % 256, item % 256], dtype=torch.uint8)
        return frame


def index_window(frames):
    digits = frames[:, :, 0, 0].long()
    index = digits[:, 0] * 65536 + digits[:, 1] * 256 + digits[:, 2]
    return index.view(-1, 1, 1, 1).float()


# ----------------------------------------------------------------------
# real model
# ----------------------------------------------------------------------
def build_mdqe(args, device):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mdqe_mm  # noqa: F401
    from mdqe_mm.utils import init_weights_quietly
    init_default_scope('mmdet')
    cfg = Config.fromfile(args.config)
    cfg.model.pop('init_cfg', None)
    if 'init_cfg' in cfg.model.get('backbone', {}):
        cfg.model.backbone.init_cfg = None  # nothing downloaded
    model = init_weights_quietly(MODELS.build(cfg.model))
    if args.checkpoint:
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    return model.to(device).eval()


class StageTimer:
    """Wall time of a module's forward, synchronised on CUDA."""

    def __init__(self, device):
        self.device = device
        self.seconds = 0.0
        self.enabled = True

    def wrap(self, module):
        forward = module.forward

        def timed(*args, **kwargs):
            if not self.enabled:
                return forward(*args, **kwargs)
            sync(self.device)
            start = time.perf_counter()
            out = forward(*args, **kwargs)
            sync(self.device)
            self.seconds += time.perf_counter() - start
            return out

        module.forward = timed


def mdqe_inputs(model, frames_uint8, height, width, device):
    from mmdet.structures import DetDataSample, TrackDataSample
    num = frames_uint8.shape[0]
    sample = TrackDataSample(video_data_samples=[
        DetDataSample(
            metainfo=dict(
                img_shape=(height, width),
                ori_shape=(height, width),
                frame_id=i,
                video_length=num)) for i in range(num)
    ])
    divisor = getattr(model, 'size_divisor', 32)
    pad_h = -(-height // divisor) * divisor
    pad_w = -(-width // divisor) * divisor
    preprocessor = model.data_preprocessor
    mean = getattr(preprocessor, 'mean', None)
    std = getattr(preprocessor, 'std', None)
    mean = (mean if mean is not None else torch.tensor(
        [123.675, 116.28, 103.53]).view(3, 1, 1)).to(device)
    std = (std if std is not None else torch.tensor(
        [58.395, 57.12, 57.375]).view(3, 1, 1)).to(device)

    def prepare(window):
        x = (window.to(device).float() - mean.view(1, 3, 1, 1)) / std.view(
            1, 3, 1, 1)
        return F.pad(x, (0, pad_w - width, 0, pad_h - height))

    return sample, prepare


def time_mdqe(args, model, video, height, width, device):
    inferencer = model.build_inferencer()
    if args.decode_batch_size:
        inferencer.decode_batch_size = args.decode_batch_size
    sample, prepare = mdqe_inputs(model, video, height, width, device)
    backbone = StageTimer(device)
    backbone.wrap(model.backbone)
    backbone.wrap(model.neck)

    def extract(frames):
        return model.extract_frame_feats(frames, [(height, width)] *
                                         len(frames))

    def run(timed):
        inferencer.time_stages = timed
        backbone.enabled = timed
        backbone.seconds = 0.0
        with torch.no_grad(), autocast(device, args.amp):
            inferencer.predict(video, extract, model.decode_clips, sample,
                               prepare)

    warm = min(len(video), 2 * inferencer.num_frames)
    inferencer.time_stages = False
    backbone.enabled = False
    with torch.no_grad(), autocast(device, args.amp):
        inferencer.predict(video[:warm], extract, model.decode_clips,
                           _slice_sample(sample, warm), prepare)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    start = time.perf_counter()
    run(timed=device.type == 'cpu')  # on the CPU timing costs nothing
    sync(device)
    total = time.perf_counter() - start
    if device.type == 'cuda':
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        run(timed=True)
    else:
        peak = peak_rss_mb()
    timings = dict(inferencer.last_timings)
    stages = dict(
        backbone=backbone.seconds,
        encoder=timings.get('extract', 0.0) - backbone.seconds,
        decode=timings.get('decode', 0.0),
        **{k: timings.get(k, 0.0)
           for k in HOST_STAGES})
    return dict(
        fps=len(video) / total,
        seconds=total,
        peak_mb=peak,
        stages_ms_per_frame={
            k: v * 1000 / len(video)
            for k, v in stages.items()
        })


def _slice_sample(sample, num):
    from mmdet.structures import TrackDataSample
    return TrackDataSample(
        video_data_samples=[sample[i] for i in range(num)])


def time_mask2former(args, video, height, width, device):
    import mmdet
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample, TrackDataSample
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg = Config.fromfile(
        osp.join(
            osp.dirname(mmdet.__file__), '.mim', 'configs',
            'mask2former_vis', 'mask2former_r50_8xb2-8e_youtubevis2021.py'))
    cfg.model.init_cfg = None
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model).to(device).eval()
    num = video.shape[0]
    sample = TrackDataSample(video_data_samples=[
        DetDataSample(
            metainfo=dict(
                img_shape=(height, width),
                ori_shape=(height, width),
                batch_input_shape=(height, width),
                frame_id=i,
                video_length=num)) for i in range(num)
    ])

    def run(frames, data_sample):
        data = model.data_preprocessor(
            dict(inputs=[frames], data_samples=[data_sample]), False)
        with torch.no_grad(), autocast(device, args.amp):
            model(**data, mode='predict')

    warm = min(num, 2)
    run(video[:warm], _slice_sample(sample, warm))
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    start = time.perf_counter()
    run(video, sample)
    sync(device)
    total = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**20 \
        if device.type == 'cuda' else peak_rss_mb()
    return dict(fps=num / total, seconds=total, peak_mb=peak)


def run_model(args):
    device = torch.device(args.device)
    if device.type == 'cpu':
        torch.set_num_threads(args.threads)
    if device.type == 'cuda' and not torch.cuda.is_available():
        sys.exit('bench_inference: --device cuda but CUDA is not available')
    model = build_mdqe(args, device)
    results = []
    precision = ('fp16 AMP' if device.type == 'cuda' else 'bf16 AMP') \
        if args.amp else 'fp32'
    for height, width in args.sizes:
        gen = torch.Generator().manual_seed(0)
        video = torch.randint(
            0, 256, (args.frames, 3, height, width), generator=gen,
            dtype=torch.uint8)
        row = dict(height=height, width=width, frames=args.frames,
                   precision=precision, device=str(device),
                   mdqe=time_mdqe(args, model, video, height, width, device))
        if args.compare_mask2former:
            row['mask2former'] = time_mask2former(args, video, height, width,
                                                  device)
            row['mdqe_over_mask2former'] = \
                row['mdqe']['fps'] / row['mask2former']['fps']
        results.append(row)
        print_model_row(args, row)
    return dict(mode='model', config=args.config, rows=results)


def print_model_row(args, row):
    mdqe = row['mdqe']
    threads = f', {torch.get_num_threads()} threads' \
        if row['device'] == 'cpu' else ''
    print(f'MDQE ({osp.basename(args.config)}, '
          f'{"checkpoint" if args.checkpoint else "random weights"}) '
          f'{row["height"]}x{row["width"]}, {row["frames"]} frames, '
          f'{row["device"]}, {row["precision"]}{threads}')
    print('| stage | ms / frame | share |')
    print('|---|---|---|')
    total = sum(mdqe['stages_ms_per_frame'].values())
    for key, value in mdqe['stages_ms_per_frame'].items():
        share = value / total * 100 if total > 0 else math.nan
        print(f'| {STAGE_LABELS[key]} | {value:.1f} | {share:.0f}% |')
    mem = 'GPU max allocated' if row['device'].startswith('cuda') \
        else 'host peak RSS'
    print(f'MDQE: {mdqe["fps"]:.2f} FPS ({mdqe["seconds"]:.2f} s), '
          f'{mem} {mdqe["peak_mb"]:.0f} MiB')
    if 'mask2former' in row:
        m2f = row['mask2former']
        print(f'Mask2FormerVideo R50 (random weights, same video, '
              f'no_grad): {m2f["fps"]:.2f} FPS ({m2f["seconds"]:.2f} s), '
              f'{mem} {m2f["peak_mb"]:.0f} MiB')
        print(f'MDQE / Mask2FormerVideo FPS ratio: '
              f'{row["mdqe_over_mask2former"]:.2f}x')


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, REPO)
    results = run_model(args) if args.config else run_host_budget(args)
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == '__main__':
    main()

# Copyright (c) OpenMMLab. All rights reserved.
"""Every GPU question of mdqe_mm in one command, with one JSON out.

On a CUDA machine (full size):

1. install the OpenMMLab wheels (``--wheels``, see
   ``../shared/wheels/README.md``) into ``/tmp/site`` unless mmcv with its
   compiled ops, mmengine and mmdet import already;
2. run the CUDA tests (``pytest -k cuda tests/test_models``);
3. one MDQE R50 training step at 360p, T=4, batch 2, in fp32 and in AMP
   (fp16 + GradScaler), checking that every loss is finite;
4. ``bench_inference.py`` at 360p and 720p, fp32 and AMP, for MDQE R50 and
   mmdet's Mask2FormerVideo R50 (random weights, 30-frame video);
5. streaming memory (``bench_streaming_memory.py``) of MDQE R50 at 360p
   for 60 and 600 frames;
6. write everything to ``$OUT/gpu_check.json`` (``--out``).

Without CUDA, or with ``--tiny``, the same steps run at tiny sizes on the
CPU (quick-start model, 64x96, a few frames; no wheel install), so that the
script is known to work before a GPU is lent. A failing step is recorded
(with its error) and the next one still runs; the exit code is 1 if any
step failed.

On the lent GPU machine (the wheels of ``../shared/wheels/cuda130-*`` and
pytest's (``pip download pytest --only-binary=:all: --python-version 3.12
-d .gpuwheels``; the GPU machine has no pytest) in the git-ignored
``.gpuwheels/``, carried with the run)::

    python3 benchmarks/gpu_check.py --wheels .gpuwheels

On a CPU::

    python benchmarks/gpu_check.py --tiny --out /tmp/gpu_check
"""
import argparse
import glob
import json
import math
import os
import os.path as osp
import subprocess
import sys
import time
import traceback

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
R50_CONFIG = osp.join(REPO, 'configs', 'mdqe', 'mdqe_r50_8xb2-12k_ovis.py')
TINY_CONFIG = osp.join(REPO, 'configs', 'quickstart',
                       'mdqe_tiny_1xb2-4k_synthetic.py')
SITE_DIR = '/tmp/site'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--tiny', action='store_true',
                        help='tiny sizes on the CPU (default without CUDA)')
    parser.add_argument('--out', help='output folder (default $OUT, else '
                        'work_dirs/gpu_check)')
    parser.add_argument('--wheels', default=osp.join(REPO, '.gpuwheels'),
                        help='folder of the OpenMMLab wheels')
    parser.add_argument('--skip', nargs='*', default=[],
                        choices=['install', 'tests', 'train', 'inference',
                                 'streaming'],
                        help='steps to skip')
    return parser.parse_args(argv)


class Check:
    """Runs the steps, records their results."""

    def __init__(self, tiny, out_dir):
        self.tiny = tiny
        self.out_dir = out_dir
        self.results = dict(tiny=tiny, steps={})
        self.failed = False

    def step(self, name, fn):
        print(f'== {name}', flush=True)
        start = time.perf_counter()
        try:
            result = fn()
            status = 'ok'
        except Exception as err:  # recorded, the next step still runs
            result = dict(error=f'{type(err).__name__}: {err}',
                          traceback=traceback.format_exc()[-4000:])
            status = 'failed'
            self.failed = True
            print(result['traceback'], file=sys.stderr, flush=True)
        except SystemExit as err:
            result = dict(error=f'exit: {err}')
            status = 'failed'
            self.failed = True
        seconds = time.perf_counter() - start
        self.results['steps'][name] = dict(
            status=status, seconds=round(seconds, 2), result=result)
        print(f'== {name}: {status} ({seconds:.1f} s)', flush=True)
        return result

    def skip(self, name, why):
        self.results['steps'][name] = dict(status='skipped', reason=why)
        print(f'== {name}: skipped ({why})', flush=True)


# ----------------------------------------------------------------------
def openmmlab_importable():
    code = ('import mmcv, mmcv.ops, mmengine, mmdet, mmdet.models, pytest; '
            'from mmcv.ops import MultiScaleDeformableAttention')
    proc = subprocess.run([sys.executable, '-c', code],
                          capture_output=True, text=True)
    return proc.returncode == 0


def install_wheels(wheels):
    if openmmlab_importable():
        return dict(installed=False, reason='already importable')
    files = sorted(glob.glob(osp.join(wheels, '*.whl')))
    if not files:
        raise FileNotFoundError(
            f'no wheels in {wheels}: copy ../shared/wheels/<gpu folder>/ '
            'there (see ../shared/wheels/README.md) or pass --wheels')
    cmd = [
        sys.executable, '-m', 'pip', 'install', '-q', '--no-index',
        '--no-deps', '--no-compile', '--target', SITE_DIR
    ] + files
    subprocess.run(cmd, check=True)
    for path in (SITE_DIR, REPO):
        if path not in sys.path:
            sys.path.insert(0, path)
    os.environ['PYTHONPATH'] = os.pathsep.join(
        [SITE_DIR, REPO] + [p for p in os.environ.get('PYTHONPATH', '').split(
            os.pathsep) if p])
    if not openmmlab_importable():
        raise RuntimeError('OpenMMLab packages still do not import after '
                           f'installing {len(files)} wheels into {SITE_DIR}')
    return dict(installed=True, wheels=[osp.basename(f) for f in files])


def run_cuda_tests(tiny):
    # on the CPU every CUDA test is skipped: this checks they are collected
    target = 'tests/test_models/test_layers/test_msda.py' if tiny \
        else 'tests/test_models'
    cmd = [sys.executable, '-m', 'pytest', '-q', '-k', 'cuda', target]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    tail = proc.stdout.strip().splitlines()[-1:] or ['']
    if proc.returncode not in (0, 5):  # 5: nothing selected
        raise RuntimeError(f'pytest failed (rc {proc.returncode}):\n'
                           f'{proc.stdout[-3000:]}{proc.stderr[-2000:]}')
    return dict(returncode=proc.returncode, summary=tail[0])


# ----------------------------------------------------------------------
def make_batch(num_clips, num_frames, height, width, device):
    """Clips of two moving objects (a box and a disc) with masks."""
    import numpy as np
    import torch
    from mmdet.structures import DetDataSample, TrackDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    yy, xx = np.mgrid[:height, :width]
    clips, samples = [], []
    for clip in range(num_clips):
        frames, frame_samples = [], []
        for t in range(num_frames):
            masks = np.zeros((2, height, width), np.uint8)
            dx = (clip * 7 + 5 * t) % max(width // 3, 1)
            masks[0, height // 8:height // 2,
                  width // 10 + dx:width // 3 + dx] = 1
            masks[1] = ((yy - 0.7 * height)**2 / (0.15 * height)**2 +
                        (xx - 0.6 * width + dx)**2 /
                        (0.12 * width)**2) <= 1
            img = torch.full((3, height, width), -1.)
            for k in range(2):
                img[k][torch.from_numpy(masks[k]) > 0] = 1.
            boxes = []
            for mask in masks:
                ys, xs = np.nonzero(mask)
                boxes.append(
                    [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            sample = DetDataSample(
                metainfo=dict(img_shape=(height, width), frame_id=t,
                              video_id=clip))
            sample.gt_instances = InstanceData(
                labels=torch.tensor([0, 1]),
                bboxes=torch.tensor(boxes, dtype=torch.float32),
                masks=BitmapMasks(masks, height, width),
                instances_ids=torch.tensor([1, 2]))
            frames.append(img)
            frame_samples.append(sample)
        clips.append(torch.stack(frames))
        samples.append(TrackDataSample(video_data_samples=frame_samples))
    return torch.stack(clips).to(device), samples


def train_step(tiny):
    import torch
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mdqe_mm  # noqa: F401
    from mdqe_mm.utils import init_weights_quietly
    init_default_scope('mmdet')
    cuda = torch.cuda.is_available() and not tiny
    device = torch.device('cuda' if cuda else 'cpu')
    cfg = Config.fromfile(TINY_CONFIG if tiny else R50_CONFIG)
    if 'init_cfg' in cfg.model.backbone:
        cfg.model.backbone.init_cfg = None  # nothing downloaded
    height, width = (64, 96) if tiny else (384, 640)
    num_frames = cfg.model.get('num_frames', 4)
    results = {}
    for amp in (False, True):
        torch.manual_seed(0)
        model = init_weights_quietly(MODELS.build(cfg.model))
        model = model.to(device).train()
        optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
        scaler = torch.amp.GradScaler('cuda', enabled=amp and cuda)
        inputs, samples = make_batch(2, num_frames, height, width, device)
        dtype = torch.float16 if cuda else torch.bfloat16
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            losses = model.loss(inputs, samples)
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        optim.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optim)
        scaler.update()
        if cuda:
            torch.cuda.synchronize()
        values = {
            k: float(v.detach())
            for k, v in losses.items() if 'loss' in k
        }
        bad = sorted(k for k, v in values.items() if not math.isfinite(v))
        key = 'amp' if amp else 'fp32'
        results[key] = dict(
            loss=float(loss.detach()),
            seconds=round(time.perf_counter() - start, 3),
            num_losses=len(values),
            non_finite=bad,
            max_memory_mb=(torch.cuda.max_memory_allocated() / 2**20
                           if cuda else None))
        print(f'train step {key}: loss {float(loss.detach()):.4f}, '
              f'{len(values)} terms, non-finite: {bad or "none"}',
              flush=True)
        if bad:
            raise FloatingPointError(f'{key} training step: non-finite '
                                     f'losses {bad}')
        del model, optim
    results['input'] = dict(height=height, width=width,
                            num_frames=num_frames, batch=2,
                            device=str(device))
    return results


def load_bench(name):
    import importlib.util
    path = osp.join(REPO, 'benchmarks', name)
    spec = importlib.util.spec_from_file_location(
        name[:-3] + '_gpu_check', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def inference(tiny):
    import torch
    bench = load_bench('bench_inference.py')
    runs = {}
    if tiny or not torch.cuda.is_available():
        base = ['--config', TINY_CONFIG, '--frames', '4', '--height', '64',
                '--width', '96', '--device', 'cpu']
        for amp in (False, True):
            args = base + (['--amp'] if amp else [])
            runs['tiny_' + ('amp' if amp else 'fp32')] = bench.main(args)
        runs['tiny_mask2former'] = bench.main(
            base[:2] + ['--frames', '2', '--height', '64', '--width', '64',
                        '--compare-mask2former'])
        runs['host_budget_tiny'] = bench.main(
            ['--frames', '6', '--height', '64', '--width', '96'])
        return runs
    for amp in (False, True):
        args = ['--config', R50_CONFIG, '--device', 'cuda', '--frames', '30',
                '--height', '360', '720', '--width', '640', '1280',
                '--compare-mask2former']
        runs['r50_' + ('amp' if amp else 'fp32')] = bench.main(
            args + (['--amp'] if amp else []))
    runs['host_budget'] = bench.main([])
    return runs


def streaming(tiny):
    import torch
    bench = load_bench('bench_streaming_memory.py')
    if tiny or not torch.cuda.is_available():
        return bench.main(['--frames', '4', '8', '--height', '64', '--width',
                           '96'])
    return bench.main([
        '--config', R50_CONFIG, '--device', 'cuda', '--frames', '60', '600',
        '--height', '360', '--width', '640'
    ])


def main(argv=None):
    args = parse_args(argv)
    try:
        import torch
        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    tiny = args.tiny or not cuda
    out_dir = args.out or os.environ.get('OUT') or osp.join(
        REPO, 'work_dirs', 'gpu_check')
    os.makedirs(out_dir, exist_ok=True)
    check = Check(tiny, out_dir)
    check.results['cuda'] = cuda
    if cuda:
        check.results['device'] = torch.cuda.get_device_name(0)
        check.results['torch'] = torch.__version__
    steps = [
        ('install', lambda: install_wheels(args.wheels)),
        ('tests', lambda: run_cuda_tests(tiny)),
        ('train', lambda: train_step(tiny)),
        ('inference', lambda: inference(tiny)),
        ('streaming', lambda: streaming(tiny)),
    ]
    for name, fn in steps:
        if name in args.skip:
            check.skip(name, '--skip')
        elif name == 'install' and tiny:
            check.skip(name, 'tiny CPU run')
        else:
            check.step(name, fn)
    path = osp.join(out_dir, 'gpu_check.json')
    with open(path, 'w') as f:
        json.dump(check.results, f, indent=1, default=str)
    print(f'wrote {path}; '
          f'{"some steps FAILED" if check.failed else "all steps ok"}')
    return 1 if check.failed else 0


if __name__ == '__main__':
    sys.exit(main())

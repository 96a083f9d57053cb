# Copyright (c) OpenMMLab. All rights reserved.
"""Host synchronisations of MDQE's forward pass, counted on the CPU.

On a GPU, reading a device tensor on the host (``item``, ``tolist``,
``cpu``, ``numpy``, ``bool``/``int``/``float``/``index`` of a tensor,
``nonzero``) or building a tensor on the device from host data
(``torch.tensor(..., device=...)``) makes the host wait until all queued
GPU work has finished. On the CPU these calls cost nothing but can still
be counted: this test wraps them and attributes every call to the
innermost ``mdqe_mm`` function on the stack. (Boolean-mask indexing syncs
too but cannot be wrapped safely; the forward pass has none.)

Allowed (documented in README "Speed"):

* ``msda.level_shapes``: the pure-PyTorch attention reads the level sizes;
  it only runs where mmcv has no kernel (CPU), so it never syncs a GPU.
* The loss side of a training step (clip targets, assignment, losses):
  dynamic-k assignment, Hungarian matching on the host and the indexing of
  matched pairs have data-dependent shapes, so they need the host.

Everything else, i.e. the network forward of a training step and all of
feature extraction and clip decoding at inference, must not sync.
"""
import collections
import contextlib
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, TrackDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import mdqe_mm

PACKAGE_DIR = osp.dirname(osp.abspath(mdqe_mm.__file__))
QUICKSTART = osp.join(
    osp.dirname(__file__), '..', '..', '..', 'configs', 'quickstart',
    'mdqe_tiny_1xb2-4k_synthetic.py')

#: host reads that only happen on the CPU (no GPU to wait for)
CPU_ONLY_SITES = ('models/layers/msda.py:level_shapes', )
#: the loss side of a training step (data-dependent shapes)
LOSS_SITES = ('models/detectors/clip_targets.py:', 'models/losses/',
              'models/task_modules/', 'models/heads/mdqe_head.py:loss_by_step',
              'models/heads/mdqe_head.py:_assign',
              'models/necks/query_selection.py:loss')

READ_METHODS = ('item', 'tolist', 'cpu', 'numpy', '__bool__', '__int__',
                '__float__', '__index__', 'nonzero')


def _call_site(depth=2):
    frame = sys._getframe(depth)
    while frame is not None:
        path = osp.abspath(frame.f_code.co_filename)
        if path.startswith(PACKAGE_DIR + osp.sep):
            rel = osp.relpath(path, PACKAGE_DIR).replace(osp.sep, '/')
            return f'{rel}:{frame.f_code.co_name}'
        frame = frame.f_back
    return 'outside mdqe_mm'


@contextlib.contextmanager
def count_host_syncs():
    """Count host reads and blocking host-to-device tensor creations.

    Yields:
        collections.Counter: ``(kind, 'file:function')`` -> calls.
    """
    counts = collections.Counter()
    originals = []

    def wrap(owner, name, kind, applies=None):
        original = getattr(owner, name)
        # whether the class defines it itself or inherits it: an inherited
        # slot (e.g. Tensor.__getitem__) must be deleted again, not set,
        # or CPython also fills the sequence slot and 0-d tensors start
        # looking like sequences
        own = name in vars(owner)
        originals.append((owner, name, original, own))

        def wrapper(*args, **kwargs):
            if applies is None or applies(*args, **kwargs):
                counts[(kind, _call_site())] += 1
            return original(*args, **kwargs)

        setattr(owner, name, wrapper)

    for name in READ_METHODS:
        wrap(torch.Tensor, name, name)
    wrap(torch, 'nonzero', 'nonzero')

    # Boolean-mask indexing (a nonzero in C++) is not counted: wrapping
    # Tensor.__getitem__ in Python would make CPython treat tensors as
    # sequences for good. The forward pass has none (the loss side has).

    def to_device(*args, **kwargs):
        return kwargs.get('device') is not None

    wrap(torch, 'tensor', 'host-to-device tensor', to_device)
    wrap(torch, 'as_tensor', 'host-to-device tensor', to_device)
    try:
        yield counts
    finally:
        for owner, name, original, own in reversed(originals):
            if own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)


def avoidable(counts, allow_loss=False):
    allowed = CPU_ONLY_SITES + (LOSS_SITES if allow_loss else ())
    return {
        key: num
        for key, num in counts.items()
        if not key[1].startswith(allowed)
    }


def test_counter_leaves_torch_as_found():
    """After counting, 0-d tensors are not sequences again (mmdet's
    ``new_tensor([x[0], ...])`` relies on it)."""
    before = {
        name: name in vars(torch.Tensor)
        for name in READ_METHODS + ('__getitem__', '__setitem__')
    }
    with count_host_syncs():
        pass
    after = {name: name in vars(torch.Tensor) for name in before}
    assert after == before
    scalar = torch.tensor(3)
    assert torch.tensor([scalar, scalar + 1]).tolist() == [3, 4]


def test_counter_sees_syncs():
    """The wrappers are live: a deliberate read inside mdqe_mm counts."""
    from mdqe_mm.models.layers import MDQEDeformableEncoder
    with count_host_syncs() as counts:
        MDQEDeformableEncoder.get_reference_points(torch.tensor([[2, 3]]))
        float(torch.ones(()))
    assert counts[('__int__', 'models/layers/encoder.py:'
                   'get_reference_points')] == 1
    assert counts[('__float__', 'outside mdqe_mm')] == 1
    with count_host_syncs() as counts:
        MDQEDeformableEncoder.get_reference_points(
            torch.tensor([[2, 3]]), num_tokens=6)
    assert not counts


def make_clip(num_frames, height, width, video_id):
    masks = np.zeros((1, height, width), np.uint8)
    frames, samples = [], []
    for t in range(num_frames):
        masks[:] = 0
        masks[0, 8:30, 10 + 4 * t:40 + 4 * t] = 1
        img = torch.full((3, height, width), -1.)
        img[:, torch.from_numpy(masks[0]) > 0] = 1.
        sample = DetDataSample(
            metainfo=dict(
                img_shape=(height, width), frame_id=t, video_id=video_id))
        sample.gt_instances = InstanceData(
            labels=torch.tensor([1]),
            bboxes=torch.tensor([[10. + 4 * t, 8., 40. + 4 * t, 30.]]),
            masks=BitmapMasks(masks.copy(), height, width),
            instances_ids=torch.tensor([5]))
        frames.append(img)
        samples.append(sample)
    return torch.stack(frames), TrackDataSample(video_data_samples=samples)


@pytest.fixture(autouse=True)
def keep_global_rng():
    """Leave the global RNG as found (other tests draw from it)."""
    with torch.random.fork_rng():
        yield


@pytest.fixture(scope='module')
def quickstart_model():
    init_default_scope('mmdet')
    with torch.random.fork_rng():
        torch.manual_seed(0)
        cfg = Config.fromfile(QUICKSTART)
        model = MODELS.build(cfg.model)
        model.init_weights()
    return model


def report(counts):
    return '\n'.join(f'{num:4d} {kind:22s} {site}'
                     for (kind, site), num in sorted(counts.items()))


def test_training_step(quickstart_model):
    model = quickstart_model.train()
    clips = [make_clip(2, 64, 96, video_id=v) for v in range(2)]
    inputs = torch.stack([frames for frames, _ in clips])
    samples = [sample for _, sample in clips]
    model.loss(inputs, samples)  # warm-up: fills the shape-tensor cache
    with count_host_syncs() as forward_counts:
        feats = model.extract_frame_feats(inputs.flatten(0, 1),
                                          [(64, 96)] * 4)
        _, outs, protos = model._decode(feats, torch.arange(4), 2, None)
    assert not avoidable(forward_counts), report(forward_counts)
    with count_host_syncs() as step_counts:
        losses = model.loss(inputs, samples)
    assert not avoidable(step_counts, allow_loss=True), report(step_counts)
    # the loss side does sync (assignment, matched pairs): counted, allowed
    assert sum(avoidable(step_counts).values()) > 0
    loss = sum(v for k, v in losses.items() if k.startswith('loss')) + sum(
        v for k, v in losses.items() if '.loss' in k)
    with count_host_syncs() as backward_counts:
        loss.backward()
    assert not backward_counts, report(backward_counts)
    model.zero_grad()


@pytest.mark.parametrize(
    'clips',
    [
        [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]],  # the near-online schedule
        [[0, 2], [5, 1]],  # any rows
        [[4], [5]],  # truncated tail clips (T' < T)
    ],
    ids=['schedule', 'any rows', 'tail'])
def test_inference_has_no_avoidable_sync(quickstart_model, clips):
    model = quickstart_model.eval()
    frames = torch.randn(6, 3, 64, 96)
    with torch.no_grad():
        model.extract_frame_feats(frames, [(60, 90)] * 6)  # warm cache
        with count_host_syncs() as extract_counts:
            feats = model.extract_frame_feats(frames, [(60, 90)] * 6)
        with count_host_syncs() as decode_counts:
            results = model.decode_clips(feats, clips)
    assert not avoidable(extract_counts), report(extract_counts)
    assert not avoidable(decode_counts), report(decode_counts)
    for clip, result in zip(clips, results):
        assert result['frame_inds'].tolist() == clip
        assert result['mask_logits'].shape[1] == len(clip)

# Copyright (c) OpenMMLab. All rights reserved.
"""A stand-in for the MDQE model callables whose outputs the tests control.

Frames carry their own index as pixel value, so the fake feature extractor
can tell which frames it receives. Each scripted object has a class, an
embedding and a box per visible frame; ``decode_clips`` returns one query
per object visible in the clip (mask logits +``fg`` inside the box in
visible frames, -``fg`` elsewhere, plus optional per-clip noise) and
``num_bg`` background queries with low scores.
"""
from typing import Dict, List, Optional

import pytest
import torch


class FakeClipModel:

    def __init__(self,
                 objects: List[dict],
                 num_classes: int = 3,
                 embed_dims: int = 16,
                 mask_size=(8, 12),
                 num_bg: int = 2,
                 fg: float = 6.0,
                 noise: float = 0.0,
                 seed: int = 0) -> None:
        self.objects = objects
        self.num_classes = num_classes
        self.embed_dims = embed_dims
        self.mask_size = mask_size
        self.num_bg = num_bg
        self.fg = fg
        self.noise = noise
        self.gen = torch.Generator().manual_seed(seed)
        self.extracted: List[int] = []
        self.max_rows_decoded = 0
        # (clip start, object index) -> logits (T', h, w) float64
        self.emitted: Dict[tuple, torch.Tensor] = {}

    @staticmethod
    def make_frames(video_length: int, height: int = 32, width: int = 48):
        index = torch.arange(video_length, dtype=torch.float32)
        return index.view(-1, 1, 1, 1).expand(video_length, 3, height,
                                              width).contiguous()

    def extract_frame_feats(self, frames: torch.Tensor) -> dict:
        frame_ids = frames[:, 0, 0, 0].round().long()
        self.extracted.extend(frame_ids.tolist())
        num = frames.shape[0]
        return dict(
            frame_ids=frame_ids,
            memory=torch.zeros(num, 6, 4),
            spatial_shapes=torch.tensor([[2, 3]]),
            level_start_index=torch.tensor([0]))

    def object_logits(self, obj: dict, frame_ids: List[int]) -> torch.Tensor:
        h, w = self.mask_size
        logits = torch.full((len(frame_ids), h, w),
                            -self.fg,
                            dtype=torch.float64)
        for t, frame in enumerate(frame_ids):
            if frame in obj['boxes']:
                y0, x0, y1, x1 = obj['boxes'][frame]
                logits[t, y0:y1, x0:x1] = self.fg
        if self.noise:
            logits += self.noise * torch.randn(
                logits.shape, generator=self.gen, dtype=torch.float64)
        return logits

    def decode_clips(self, feats: dict,
                     clip_frame_inds: List[List[int]]) -> List[dict]:
        self.max_rows_decoded = max(self.max_rows_decoded,
                                    feats['frame_ids'].shape[0])
        assert feats['memory'].shape[0] == feats['frame_ids'].shape[0]
        outs = []
        h, w = self.mask_size
        for inds in clip_frame_inds:
            frame_ids = feats['frame_ids'][inds].tolist()
            assert frame_ids == list(
                range(frame_ids[0], frame_ids[0] + len(frame_ids)))
            scores, masks, embeds = [], [], []
            for idx, obj in enumerate(self.objects):
                if not any(f in obj['boxes'] for f in frame_ids):
                    continue
                prob = torch.full((self.num_classes, ), 0.01)
                prob[obj['label']] = obj.get('score', 0.9)
                logits = self.object_logits(obj, frame_ids)
                self.emitted[(frame_ids[0], idx)] = logits
                scores.append(prob)
                masks.append(logits.float())
                embeds.append(obj['embed'])
            for _ in range(self.num_bg):
                scores.append(torch.full((self.num_classes, ), 0.02))
                masks.append(
                    torch.randn((len(frame_ids), h, w), generator=self.gen))
                embeds.append(
                    torch.randn((self.embed_dims, ), generator=self.gen))
            outs.append(
                dict(
                    scores=torch.stack(scores),
                    mask_logits=torch.stack(masks),
                    clip_embeds=torch.stack(embeds)))
        return outs


def make_object(label: int,
                embed: torch.Tensor,
                frames,
                box_fn,
                score: Optional[float] = None) -> dict:
    obj = dict(label=label, embed=embed, boxes={f: box_fn(f) for f in frames})
    if score is not None:
        obj['score'] = score
    return obj


@pytest.fixture
def fake_model_cls():
    return FakeClipModel


@pytest.fixture
def make_obj():
    return make_object


@pytest.fixture(autouse=True)
def single_torch_thread():
    """The tensors here are tiny; intra-op threads only add contention on a
    shared machine (a 20x slowdown was measured), so run these tests with one
    thread and restore the setting afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

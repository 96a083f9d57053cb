# Copyright (c) OpenMMLab. All rights reserved.
"""NearOnlineMask2FormerVideo: mmdet's Mask2FormerVideo driven by MDQE's
near-online inferencer, and its mixing config."""
import copy
import os.path as osp

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, TrackDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mdqe_mm  # noqa: F401
from mdqe_mm.models.trackers.clip_postprocess import postprocess_clip
from mdqe_mm.utils import init_weights_quietly

REPO_ROOT = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONFIG = osp.join(REPO_ROOT, 'configs', 'mixing',
                  'mask2former-video_near-online_synthetic.py')
TINY_BASE = osp.join(REPO_ROOT, 'configs', 'mixing', '_base_',
                     'mask2former-video_r18-tiny_synthetic.py')
STOCK_BASE = 'mmdet::mask2former_vis/' \
    'mask2former_r50_8xb2-8e_youtubevis2021.py'
# permissive post-processing: every query with a non-empty mask becomes a
# track and is output under every class
KEEP_ALL = dict(
    cls_thr=0.0,
    query_sim_thr=1.01,
    nms_iou_thr=2.0,
    inferencer=dict(min_num_outputs=10**4))


@pytest.fixture(scope='module')
def cfg():
    init_default_scope('mmdet')
    return Config.fromfile(CONFIG)


def _build(model_cfg, seed=0):
    torch.manual_seed(seed)
    return init_weights_quietly(MODELS.build(
        copy.deepcopy(model_cfg))).eval()


def _near_online_and_stock(cfg, test_cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.test_cfg = test_cfg
    near_online = _build(model_cfg)
    stock_cfg = copy.deepcopy(cfg.model)
    stock_cfg.type = 'Mask2FormerVideo'
    stock_cfg.pop('test_cfg')
    stock_cfg.data_preprocessor.type = 'TrackDataPreprocessor'
    stock = MODELS.build(stock_cfg)
    stock.load_state_dict(near_online.state_dict())
    return near_online, stock.eval()


def _video(length, height, width, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(
        0, 256, (length, 3, height, width), generator=gen, dtype=torch.uint8)


def _sample(length, img_shape, ori_shape):
    return TrackDataSample(video_data_samples=[
        DetDataSample(
            metainfo=dict(
                frame_id=i,
                video_id=7,
                video_length=length,
                img_shape=img_shape,
                ori_shape=ori_shape)) for i in range(length)
    ])


def _decode(rles):
    return mask_util.decode(list(rles)).transpose(2, 0, 1).astype(bool)


def test_one_clip_equals_stock_predict(cfg):
    """A video shorter than a clip is one clip: the near-online path gives
    the stock masks exactly (same weights, same features, same decoder,
    same resizing with mask_resize='bilinear')."""
    length, img_shape, ori_shape = 3, (60, 100), (90, 150)
    near_online, stock = _near_online_and_stock(
        cfg, dict(clip_length=4, **KEEP_ALL))
    video = _video(length, *img_shape)
    data = dict(
        inputs=[video], data_samples=[_sample(length, img_shape, ori_shape)])
    with torch.no_grad():
        ref = stock.test_step(copy.deepcopy(data))[0]
        out = near_online.test_step(copy.deepcopy(data))[0]
        # the tensor input path (TrackDataPreprocessor's output)
        stacked = stock.data_preprocessor(copy.deepcopy(data), False)
        out_tensor = near_online.predict(stacked['inputs'],
                                         stacked['data_samples'])[0]

        # decode_clips == the head's last layer, from the cached features
        pre = near_online.data_preprocessor.prepare_window(video)
        feats = near_online.extract_frame_feats(pre)
        clip = near_online.decode_clips(feats, [[0, 1, 2]])[0]
        cls_all, mask_all = stock.track_head(stock.backbone(pre),
                                             ref)  # eval mode: the whole video
    assert near_online._inferencer.last_stats['num_clips'] == 1
    torch.testing.assert_close(
        clip['mask_logits'], mask_all[-1][0], rtol=0, atol=1e-5)
    ref_scores = F.softmax(cls_all[-1][0].double(), -1)[:, :-1]
    torch.testing.assert_close(
        clip['scores'].double(), ref_scores, rtol=0, atol=1e-6)
    assert clip['clip_embeds'].shape == (10, 32)

    num_queries, num_classes = clip['scores'].shape
    non_empty = int((clip['mask_logits'] > 0).flatten(1).any(1).sum())
    assert non_empty >= 5  # otherwise the check below says little
    for result in (out, out_tensor):
        assert len(result) == length
        for frame in range(length):
            got = result[frame].pred_track_instances
            want = ref[frame].pred_track_instances
            # every (non-empty query, class) pair is output
            assert len(got.scores) == non_empty * num_classes
            assert len(set(got.instances_id.tolist())) == len(got.scores)
            got_masks = _decode(got.masks)
            assert got_masks.shape[1:] == ori_shape
            want_masks = want.masks.cpu().numpy()
            assert want_masks.shape[1:] == ori_shape
            checked = 0
            for mask, label in zip(want_masks, want.labels.tolist()):
                if not mask.any():
                    continue  # the inferencer drops empty queries
                # exact equality (tolerance: 0 pixels)
                same = [
                    j for j in range(len(got_masks))
                    if int(got.labels[j]) == label and (
                        got_masks[j] == mask).all()
                ]
                assert same, f'frame {frame}: stock mask not reproduced'
                checked += 1
            assert checked >= 5


def test_mask_resize_option(cfg):
    """'aligned_bilinear' (MDQE's resizing) is a different post-processing:
    same instances, masks that differ only near their borders."""
    length, shape = 2, (64, 96)
    sample = _sample(length, shape, shape)
    outs = []
    for mode in ('bilinear', 'aligned_bilinear'):
        model_cfg = copy.deepcopy(cfg.model)
        model_cfg.test_cfg = dict(mask_resize=mode, **KEEP_ALL)
        model = _build(model_cfg)
        with torch.no_grad():
            outs.append(
                model.predict([_video(length, *shape)],
                              [copy.deepcopy(sample)])[0])
    first, second = (o[0].pred_track_instances for o in outs)
    assert first.labels.tolist() == second.labels.tolist()
    a, b = _decode(first.masks), _decode(second.masks)
    assert a.shape == b.shape
    # a shift of up to 1.5 pixels: the noise video's masks have long borders
    differ = (a != b).mean()
    assert 0 < differ < 0.15, differ


def test_long_video_ids_stable_across_clips(cfg):
    """A static video of 12 frames, clips of 4, features in windows of 5:
    every later clip's detections link to the tracks of the first clip, in
    its detection order, so each track keeps one query's mask."""
    length, clip_length, shape = 12, 4, (64, 96)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.test_cfg = dict(
        clip_length=clip_length, window_length=5, window_carry=False)
    model = _build(model_cfg)
    frame = _video(1, *shape)
    video = frame.expand(length, -1, -1, -1).contiguous()
    with torch.no_grad():
        result = model.predict([video], [_sample(length, shape, shape)])[0]
        # independent reference: the first clip's detections
        feats = model.extract_frame_feats(
            model.data_preprocessor.prepare_window(video[:clip_length]))
        first = model.decode_clips(feats, [list(range(clip_length))])[0]
    dets = postprocess_clip(
        first['scores'],
        first['mask_logits'],
        first['clip_embeds'],
        score_thr=0.1,
        max_dets=10)
    stats = model._inferencer.last_stats
    assert stats['num_clips'] == length - clip_length + 2
    assert stats['num_extracted_frames'] == length  # each frame once
    assert stats['max_buffered_frames'] <= 5 + clip_length - 1
    tracker = model._inferencer.tracker
    assert tracker.num_tracks == len(dets) >= 2

    preds = [result[f].pred_track_instances for f in range(length)]
    track_ids = preds[0].track_ids.tolist()
    assert set(track_ids) == set(range(len(dets)))
    masks = np.stack([_decode(p.masks) for p in preds], 1)  # (P, L, h, w)
    for pair, track in enumerate(track_ids):
        # frame 0 is covered by the first clip only: its masks are those of
        # the detection of the same rank
        logits = F.interpolate(
            dets.mask_logits[track][:1, None],
            scale_factor=4,
            mode='bilinear',
            align_corners=False)[0, 0]
        # (the reference decodes clip 0 alone from a 4-frame feature batch,
        # the inferencer with clip 1 from a 5-frame one: allow 0.2% of the
        # pixels for float noise; another query's mask differs far more)
        assert (masks[pair, 0] != (logits > 0).numpy()).mean() <= 0.002
        # frames T-1 .. L-T are each covered by every clip position: one
        # mask for the whole span (IoU 0.99 allows float noise on borders)
        span = masks[pair, clip_length - 1:length - clip_length + 1]
        assert span.any()
        for other in span[1:]:
            iou = (other & span[0]).sum() / max((other | span[0]).sum(), 1)
            assert iou >= 0.99, (track, iou)


def test_config_changes_only_the_combination(cfg):
    """Against its tiny base, the mixing config changes the detector type,
    the data preprocessor type and adds test_cfg; nothing else."""
    base = Config.fromfile(TINY_BASE)
    assert base.model.type == 'Mask2FormerVideo'
    assert cfg.model.type == 'NearOnlineMask2FormerVideo'
    assert cfg.model.data_preprocessor.type == 'VideoStreamDataPreprocessor'
    mixed = copy.deepcopy(cfg.to_dict())
    plain = copy.deepcopy(base.to_dict())
    for conf in (mixed, plain):
        conf['model'].pop('type')
        conf['model']['data_preprocessor'].pop('type')
    assert mixed['model'].pop('test_cfg')['clip_length'] == 4
    assert mixed == plain
    # the base replaces the stock data and evaluators entirely
    for split in ('train', 'val', 'test'):
        dataset = cfg[f'{split}_dataloader'].dataset
        assert dataset.type == 'SyntheticVISDataset'
        assert 'dataset_version' not in dataset
    for split in ('val', 'test'):
        assert cfg[f'{split}_evaluator'] == dict(
            type='VISMetric',
            ann_file='data/synthetic_vis/annotations/valid.json')


def test_real_data_is_one_base_away(tmp_path):
    """Swapping the mixing config's _base_ for the stock mmdet config gives
    the full-size model on YouTube-VIS 2021 with near-online inference."""
    with open(CONFIG) as f:
        text = f.read()
    old = "_base_ = './_base_/mask2former-video_r18-tiny_synthetic.py'"
    assert text.count(old) == 1
    path = tmp_path / 'real.py'
    path.write_text(text.replace(old, f"_base_ = '{STOCK_BASE}'"))
    real = Config.fromfile(str(path))
    assert real.model.type == 'NearOnlineMask2FormerVideo'
    assert real.model.backbone.depth == 50
    assert real.model.track_head.num_queries == 100
    assert real.model.track_head.num_classes == 40
    assert real.train_dataloader.dataset.type == 'YouTubeVISDataset'
    assert real.train_dataloader.dataset.dataset_version == '2021'
    model = MODELS.build(real.model)  # no download before init_weights
    assert model.test_cfg['clip_length'] == 4


def test_mixing_config_trains_and_evaluates(cfg, tmp_path):
    """2 training iterations and a VISMetric evaluation on CPU."""
    from mmengine.runner import Runner

    from mdqe_mm.datasets import ensure_synthetic_vis
    generator_cfg = dict(
        num_train_videos=4,
        num_valid_videos=2,
        num_frames=6,
        height=64,
        width=96)
    root = ensure_synthetic_vis(
        str(tmp_path / 'synthetic_vis'), **generator_cfg) + '/'
    run_cfg = copy.deepcopy(cfg)
    run_cfg.work_dir = str(tmp_path / 'work')
    for split in ('train', 'val', 'test'):
        run_cfg[f'{split}_dataloader'].dataset.data_root = root
        # the set under root, not the config's default one
        run_cfg[f'{split}_dataloader'].dataset.generator_cfg = generator_cfg
    run_cfg.val_evaluator.ann_file = root + 'annotations/valid.json'
    run_cfg.test_evaluator.ann_file = root + 'annotations/valid.json'
    run_cfg.train_cfg.max_iters = 2
    run_cfg.train_cfg.val_interval = 2
    run_cfg.default_hooks.checkpoint.interval = 2
    run_cfg.default_hooks.logger.interval = 1
    run_cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(run_cfg)
    runner.train()
    assert runner.iter == 2
    assert osp.isfile(osp.join(run_cfg.work_dir, 'iter_2.pth'))
    metrics = runner.test()  # val ran at iteration 2; test as tools/test.py
    for key in ('vis/AP', 'vis/AP50', 'vis/AR10'):
        assert key in metrics, sorted(metrics)
        assert 0.0 <= metrics[key] <= 1.0 or metrics[key] == -1.0
    stats = runner.model._inferencer.last_stats
    assert stats['num_clips'] == 6 - 4 + 2  # 6-frame videos, clips of 4


def test_clear_errors(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.test_cfg = dict(clip_lenght=4)
    with pytest.raises(KeyError, match='clip_lenght'):
        MODELS.build(model_cfg)
    model_cfg.test_cfg = dict(mask_resize='nearest')
    with pytest.raises(ValueError, match='mask_resize'):
        MODELS.build(model_cfg)

    model_cfg.test_cfg = dict()
    model_cfg.data_preprocessor.type = 'TrackDataPreprocessor'
    model = _build(model_cfg)
    video, sample = _video(2, 64, 64), _sample(2, (64, 64), (64, 64))
    with pytest.raises(TypeError, match='VideoStreamDataPreprocessor'):
        model.predict([video], [sample])
    with pytest.raises(ValueError, match='rescale'):
        model.predict(video[None].float(), [sample], rescale=False)
    with pytest.raises(ValueError, match='2 videos but 1 data samples'):
        model.predict(torch.zeros(2, 2, 3, 64, 64), [sample])
    with pytest.raises(IndexError, match='features hold 2 frames'):
        model.decode_clips(
            model.extract_frame_feats(torch.zeros(2, 3, 64, 64)), [[0, 2]])


def test_heads_without_learned_queries_are_refused(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.track_head.type = 'GridQueryMask2FormerTrackHead'
    model_cfg.track_head.num_queries = 9
    with pytest.raises(TypeError, match='GridQueryMask2FormerTrackHead has'):
        MODELS.build(model_cfg)

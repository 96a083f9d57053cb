# Copyright (c) OpenMMLab. All rights reserved.
import math
import os.path as osp
from unittest import TestCase

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, TrackDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import mdqe_mm  # noqa: F401
from mdqe_mm.utils import init_weights_quietly

CONFIG_DIR = osp.join(osp.dirname(__file__), '..', '..', '..', 'configs')


def build_model(name, **overrides):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, '_base_', 'models', name))
    cfg.merge_from_dict(overrides)
    return init_weights_quietly(MODELS.build(cfg.model))


def make_clip(num_frames=2, height=64, width=96, img_hw=None, video_id=0):
    """A rectangle moving right and an ellipse moving left, with masks."""
    img_h, img_w = img_hw or (height, width)
    yy, xx = np.mgrid[:img_h, :img_w]
    frames, samples = [], []
    for t in range(num_frames):
        masks = np.zeros((2, img_h, img_w), np.uint8)
        masks[0, 10:30, 10 + 5 * t:40 + 5 * t] = 1
        masks[1] = (((yy - 45) / 12.)**2 + ((xx - (65 - 4 * t)) / 18.)**2 <= 1)
        img = torch.full((3, height, width), -1.)
        img[0, :img_h, :img_w][torch.from_numpy(masks[0]) > 0] = 1.
        img[1, :img_h, :img_w][torch.from_numpy(masks[1]) > 0] = 1.
        boxes = []
        for mask in masks:
            ys, xs = np.nonzero(mask)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        sample = DetDataSample(
            metainfo=dict(
                img_shape=(img_h, img_w), frame_id=t, video_id=video_id))
        sample.gt_instances = InstanceData(
            labels=torch.tensor([0, 2]),
            bboxes=torch.tensor(boxes, dtype=torch.float32),
            masks=BitmapMasks(masks, img_h, img_w),
            instances_ids=torch.tensor([3, 7]))
        frames.append(img)
        samples.append(sample)
    return torch.stack(frames), TrackDataSample(video_data_samples=samples)


RESNET50_BN_AFFINE = 53120


def reference_param_count(num_classes,
                          embed_dims=256,
                          num_heads=8,
                          num_levels=4,
                          num_points=4,
                          num_frames=4,
                          ffn_ratio=4,
                          enc_layers=6,
                          dec_layers=6,
                          embed_channels=64):
    """Parameters of the released reference R50 MDQE, module by module.

    Written from the reference source (MinghanLi/MDQE_CVPR2023 @ 1945894:
    ``mdqe/mdqe.py``, ``models/mdqe.py``, ``transformer_enc.py``,
    ``transformer_dec.py``, ``segmentation.py``, ``ms_deform_attn.py``).
    Detectron2's ResNet uses ``FrozenBatchNorm2d``, whose affine terms are
    buffers, so the backbone contributes its convolutions only; this is what
    the reference's ``tools/analyze_model.py --tasks parameter`` counts.
    """
    c = embed_dims
    linear = lambda i, o: i * o + o  # noqa: E731
    norm = 2 * c
    mlp = lambda out: linear(c, c) * 2 + linear(c, out)  # noqa: E731
    mha = 3 * c * c + 3 * c + linear(c, c)
    ffn = linear(c, ffn_ratio * c) + linear(ffn_ratio * c, c)

    def msda(kernel_levels):
        samples = num_heads * kernel_levels * num_points
        return 2 * linear(c, c) + linear(c, samples) + linear(c, 2 * samples)

    # torchvision resnet50 has 25,557,032 parameters: 2,049,000 in its fc
    # and 53,120 in its BatchNorm affines
    backbone = 25557032 - 2049000 - RESNET50_BN_AFFINE
    input_proj = sum(cin * c + c + norm for cin in (512, 1024, 2048))
    input_proj += 2048 * c * 9 + c + norm
    level_embed = num_levels * c
    encoder = enc_layers * (msda(num_levels) + norm + ffn + norm) + norm
    decoder_layer = (
        msda(num_levels) + norm + mha + norm + ffn + norm + linear(c, 1) +
        msda(num_frames) + norm + mha + norm + ffn + norm)
    decoder = dec_layers * decoder_layer + norm + linear(2, c)
    protos = c // 8
    mask_net = (3 * (c * c * 9 + c + norm) + 2 * linear(c, c) + (c * 25 + c) +
                linear(c, c) + norm + (c + c) + (c * 25 + c) +
                linear(c, protos) + 2 * protos)
    heads = (mlp(num_classes) * 2 + mlp(4) + mlp(protos) + mlp(embed_channels))
    return (backbone + input_proj + level_embed + encoder + decoder +
            mask_net + heads)


class TestMDQE(TestCase):

    @classmethod
    def setUpClass(cls):
        init_default_scope('mmdet')
        # tiny models run fastest on one thread of a shared CPU
        cls._num_threads = torch.get_num_threads()
        torch.set_num_threads(1)

    @classmethod
    def tearDownClass(cls):
        torch.set_num_threads(cls._num_threads)

    def test_r50_parameter_count(self):
        model = build_model(
            'mdqe_r50.py', **{
                'model.backbone.init_cfg': None,
                'model.query_selection.num_classes': 25,
                'model.track_head.num_classes': 25
            })
        count = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters()
                        if p.requires_grad)
        print(f'\nMDQE R50 (OVIS, 25 classes): {count / 1e6:.3f}M params, '
              f'{trainable / 1e6:.3f}M trainable')
        # the reference keeps frozen BN affines as buffers; mmdet keeps them
        # as parameters with requires_grad=False
        self.assertEqual(trainable, reference_param_count(25))
        self.assertEqual(count, trainable + RESNET50_BN_AFFINE)
        self.assertEqual(trainable, 48574396)
        # FrozenBN: BN statistics and affine parameters do not train
        self.assertFalse(model.backbone.bn1.weight.requires_grad)
        self.assertTrue(model.backbone.layer1[0].conv1.weight.requires_grad)

    def test_padding_mask_per_level(self):
        """Backbone levels keep ceil(h / stride) valid rows; the extra
        stride-64 level is the nearest resize of the stride-32 mask (the
        reference's rule), which differs from resizing the image mask when
        H / 32 is odd."""
        model = build_model('mdqe_tiny.py')
        model.eval()
        padded_h, img_h = 480, 300
        with torch.no_grad():
            feats = model.extract_frame_feats(
                torch.zeros(1, 3, padded_h, 64), [(img_h, 64)])
        shapes = feats['spatial_shapes'].tolist()
        starts = feats['level_start_index'].tolist()
        valid_rows = []
        for (height, width), start in zip(shapes, starts):
            level = feats['padding_mask'][0, start:start + height * width]
            valid_rows.append(int((~level.view(height, width)[:, 0]).sum()))
        stride32_rows = math.ceil(img_h / 32)  # 10 of 15
        self.assertEqual(
            valid_rows[:3],
            [math.ceil(img_h / 8),
             math.ceil(img_h / 16), stride32_rows])
        # nearest: output row i reads row floor(i * 15 / 8) of stride 32
        h32, h64 = shapes[2][0], shapes[3][0]
        expected = sum(
            math.floor(i * h32 / h64) < stride32_rows for i in range(h64))
        self.assertEqual(expected, 6)  # resizing the image mask gives 5
        self.assertEqual(valid_rows[3], expected)

    def test_forward_shapes(self):
        torch.manual_seed(0)
        model = build_model('mdqe_tiny.py')
        model.train()
        clips = [make_clip(), make_clip(img_hw=(56, 80))]
        inputs = torch.stack([c[0] for c in clips])  # (2, 2, 3, 64, 96)
        frames = inputs.flatten(0, 1)
        img_shapes = [(64, 96)] * 2 + [(56, 80)] * 2
        with torch.no_grad():
            backbone_feats = model.backbone(frames)
            self.assertEqual([tuple(f.shape) for f in backbone_feats],
                             [(4, 32, 8, 12), (4, 64, 4, 6), (4, 128, 2, 3)])
            neck_feats = model.neck(backbone_feats)
            self.assertEqual([tuple(f.shape) for f in neck_feats],
                             [(4, 32, 8, 12), (4, 32, 4, 6), (4, 32, 2, 3),
                              (4, 32, 1, 2)])
            feats = model.extract_frame_feats(frames, img_shapes)
            self.assertEqual(tuple(feats['memory'].shape), (4, 128, 32))
            self.assertEqual(feats['spatial_shapes'].tolist(),
                             [[8, 12], [4, 6], [2, 3], [1, 2]])
            self.assertEqual(feats['level_start_index'].tolist(),
                             [0, 96, 120, 126])
            self.assertEqual(tuple(feats['protos'].shape), (4, 32, 16, 24))
            # padding: frames 2, 3 are 56x80 in 64x96, i.e. 7x10 of 8x12
            # tokens of level 0 are valid
            pad = feats['padding_mask']
            self.assertEqual(int(pad[:2].sum()), 0)
            level0 = pad[2, :96].view(8, 12)
            self.assertTrue(
                bool(level0[7].all()) and bool(level0[:, 10:].all()))
            self.assertFalse(bool(level0[:7, :10].any()))
            sel = model.query_selection(
                feats['memory'],
                feats['spatial_shapes'],
                feats['level_start_index'],
                num_frames=2)
            shapes = {k: tuple(v.shape) for k, v in sel.items()}
            self.assertEqual(
                shapes,
                dict(
                    sem_logits=(4, 8, 12, 3),
                    query=(4, 64, 32),
                    query_xy=(4, 64, 2),
                    query_embeds=(2, 2, 64, 16),
                    query_xy_unaligned=(4, 64, 2),
                    assoc_inds=(2, 2, 64)))
            outs = model.track_head(sel['query'], sel['query_xy'],
                                    feats['memory'], feats['padding_mask'],
                                    feats['spatial_shapes'],
                                    feats['level_start_index'], 2)
            shapes = {k: tuple(v.shape) for k, v in outs.items()}
            self.assertEqual(
                shapes,
                dict(
                    cls_logits=(3, 2, 64, 3),
                    boxes=(3, 2, 64, 2, 4),
                    mask_coeffs=(3, 2, 64, 32),
                    clip_queries=(3, 2, 64, 32)))
        with self.assertRaisesRegex(ValueError, 'multiple of 32'):
            model.extract_frame_feats(frames[..., :60, :])

    def test_loss_and_backward(self):
        torch.manual_seed(0)
        model = build_model('mdqe_tiny.py')
        model.train()
        clips = [make_clip(video_id=0), make_clip(img_hw=(56, 80), video_id=1)]
        inputs = torch.stack([c[0] for c in clips])
        losses = model.loss(inputs, [c[1] for c in clips])
        names = ['loss_cls', 'loss_bbox', 'loss_iou', 'loss_mask', 'loss_dice']
        expected = {'loss_sem', 'loss_reid_ctt', 'loss_reid_aux'}
        expected |= set(names)
        expected |= {f'd{i}.{n}' for i in range(2) for n in names}
        self.assertEqual(set(losses), expected)
        for key, value in losses.items():
            self.assertTrue(bool(torch.isfinite(value)), key)
        sum(losses.values()).backward()
        grads = {
            'backbone': model.backbone.layer4[0].conv1.weight,
            'neck': model.neck.convs[0].conv.weight,
            'encoder': model.encoder.layers[0].ffn_norm.weight,
            'query_selection':
            model.query_selection.rpn_cls_embed.layers[0].weight,
            'track_embed': model.query_selection.track_embed.layers[0].weight,
            'mask_proto': model.track_head.mask_proto.lay1.conv.weight,
            'cls': model.track_head.cls_embed.layers[0].weight,
        }
        for name, param in grads.items():
            self.assertIsNotNone(param.grad, name)
            self.assertGreater(float(param.grad.abs().sum()), 0, name)
        # the positional + level embedding only enter the deformable
        # attention's offset / weight projections, zero at init
        self.assertIsNotNone(model.level_embed.grad)
        with self.assertRaisesRegex(ValueError, 'num_frames=2'):
            model.loss(torch.cat([inputs, inputs], 1), [c[1] for c in clips])

    def test_frame_features_are_independent_and_decode_clips(self):
        torch.manual_seed(0)
        model = build_model('mdqe_tiny.py',
                            **{'model.test_cfg.clip_batch_size': 2})
        model.eval()
        video = torch.cat(
            [make_clip(num_frames=3)[0],
             make_clip(num_frames=2)[0].flip(-1)])  # 5 frames
        with torch.no_grad():
            feats = model.extract_frame_feats(video)
            part = model.extract_frame_feats(video[1:3])
            for key in ('memory', 'protos', 'padding_mask'):
                torch.testing.assert_close(
                    part[key], feats[key][1:3], atol=1e-5, rtol=1e-5)
            clips = [[0, 1], [1, 2], [2, 3], [3, 4], [4], [0, 2, 4]]
            preds = model.decode_clips(feats, clips)
            alone = model.decode_clips(part, [[0, 1]])[0]
            one_by_one = model.decode_clips(feats, clips, clip_batch_size=1)
        self.assertEqual(len(preds), len(clips))
        for pred, inds in zip(preds, clips):
            num = len(inds)
            self.assertEqual(pred['frame_inds'].tolist(), inds)
            self.assertEqual(tuple(pred['scores'].shape), (64, 3))
            self.assertEqual(
                tuple(pred['mask_logits'].shape), (64, num, 16, 24))
            self.assertEqual(tuple(pred['clip_embeds'].shape), (64, 32))
            self.assertEqual(tuple(pred['frame_boxes'].shape), (64, num, 4))
            self.assertTrue(bool((pred['scores'] >= 0).all()))
            self.assertTrue(bool((pred['scores'] <= 1).all()))
        for key in ('scores', 'mask_logits', 'clip_embeds', 'frame_boxes'):
            # a clip decoded from its own frames' features == from the cache
            torch.testing.assert_close(
                alone[key], preds[1][key], atol=1e-4, rtol=1e-4)
            for a, b in zip(preds, one_by_one):
                torch.testing.assert_close(
                    a[key], b[key], atol=1e-4, rtol=1e-4)
        with self.assertRaisesRegex(IndexError, 'hold 5 frames'):
            model.decode_clips(feats, [[3, 5]])
        with self.assertRaisesRegex(ValueError, '1 videos but 0 data'):
            model.predict(video[None], [])

    def test_predict_streams_a_video(self):
        """predict() on a 5-frame video with T'=2 clips and a 3-frame
        window: every frame gets RLE masks of the original size."""
        torch.manual_seed(0)
        model = build_model(
            'mdqe_tiny.py', **{
                'model.data_preprocessor.type': 'VideoStreamDataPreprocessor',
                'model.test_cfg.window_length': 3,
                'model.test_cfg.cls_thr': 0.0
            })
        model.eval()
        num_frames, height, width = 5, 60, 90  # padded to 64 x 96 inside
        video = torch.randint(
            0, 255, (num_frames, 3, height, width), dtype=torch.uint8)
        frames = [
            DetDataSample(
                metainfo=dict(
                    img_shape=(height, width),
                    ori_shape=(height * 2, width * 2),
                    frame_id=t,
                    video_id=7,
                    video_length=num_frames)) for t in range(num_frames)
        ]
        sample = TrackDataSample()
        sample.video_data_samples = frames
        data = model.data_preprocessor(
            dict(inputs=[video], data_samples=[sample]), False)
        self.assertEqual(data['inputs'][0].dtype, torch.uint8)
        results = model.predict(data['inputs'], data['data_samples'])
        self.assertEqual(len(results), 1)
        self.assertEqual(len(results[0]), num_frames)
        num_out = None
        for t in range(num_frames):
            pred = results[0][t].pred_track_instances
            num_out = len(pred) if num_out is None else num_out
            # one output per (track, class) pair, the same pairs per frame
            self.assertEqual(len(pred), num_out)
            self.assertEqual(len(pred.masks), num_out)
            for rle in pred.masks:
                self.assertEqual(list(rle['size']), [height * 2, width * 2])
        self.assertGreater(num_out, 0)
        stats = model._inferencer.last_stats
        self.assertEqual(stats['num_extracted_frames'], num_frames)

    def test_overfit_one_clip(self):
        """The total loss of one hand-made clip falls below half in 40
        AdamW steps of the tiny model (~10 s on one CPU thread)."""
        torch.manual_seed(0)
        np.random.seed(0)
        model = build_model('mdqe_tiny.py')
        model.train()
        frames, sample = make_clip()
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=2e-3, weight_decay=1e-4)
        history = []
        for _ in range(40):
            losses = model.loss(frames[None], [sample])
            total = sum(losses.values())
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
            history.append(float(total))
        print(f'\noverfit: total loss {history[0]:.2f} -> {history[-1]:.2f}')
        self.assertLess(min(history[-5:]), 0.5 * history[0])

        # The masks themselves must be learnt, not just the loss lowered: a
        # collapsed mask branch (all-negative coefficients times ReLU
        # prototypes) lowers the loss too while every mask stays empty.
        model.eval()
        with torch.no_grad():
            feats = model.extract_frame_feats(frames, [(64, 96)] * 2)
            clip = model.decode_clips(feats, [[0, 1]])[0]
        pred = F.interpolate(
            clip['mask_logits'], scale_factor=4, mode='bilinear') > 0
        gt = torch.stack([
            torch.from_numpy(s.gt_instances.masks.masks) for s in sample
        ]).transpose(0, 1).bool()  # (G, T, H, W)
        inter = (pred[:, None] & gt[None]).flatten(2).sum(-1).double()
        union = (pred[:, None] | gt[None]).flatten(2).sum(-1).double()
        best_iou = (inter / union.clamp(min=1)).max(0).values
        print(f'overfit: best clip-mask IoU per object {best_iou.tolist()}')
        self.assertTrue(bool((best_iou > 0.5).all()), best_iou.tolist())


def test_build_inferencer_reads_test_cfg():
    """Every test_cfg key reaches the inferencer (the 720p config sets
    merge_on_cpu); an unsupported clip stride is refused."""
    init_default_scope('mmdet')
    model = build_model(
        'mdqe_tiny.py', **{
            'model.test_cfg.merge_on_cpu': True,
            'model.test_cfg.score_aggregation': 'clip',
            'model.test_cfg.window_length': 12
        })
    inferencer = model.build_inferencer()
    assert inferencer.merge_on_cpu is True
    assert inferencer.aggregator.score_aggregation == 'clip'
    assert inferencer.aggregator.window_size == 12
    default = build_model('mdqe_tiny.py').build_inferencer()
    assert default.merge_on_cpu is False
    assert default.aggregator.score_aggregation == 'window'
    assert default.aggregator.window_carry is True
    model.test_cfg['clip_stride'] = 2
    with pytest.raises(ValueError, match='clip_stride'):
        model.build_inferencer()

# Copyright (c) OpenMMLab. All rights reserved.
import json
import os
import os.path as osp

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import save_checkpoint

from mdqe_mm.datasets.synthetic import make_synthetic_video, video_annotations
from mdqe_mm.datasets.vis_classes import SYNTHETIC_VIS_CLASSES
from mdqe_mm.visualization import id_color

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO_ROOT, 'configs', 'quickstart',
                  'mdqe_tiny_1xb2-4k_synthetic.py')
DEMO = 'tools/demo/video_demo.py'
NUM_FRAMES, HEIGHT, WIDTH = 8, 192, 320  # larger than the model input
ALPHA = 0.5  # VISLocalVisualizer's default fill opacity


def _demo_checkpoint(path, demo, frame):
    """A random-weights quick-start model whose masks are not empty.

    Untrained, the mask coefficients are near zero and every mask is empty.
    So (no training) the class bias is raised (scores ~0.5) and each query's
    mask is set to ``proto_i - proto_j`` (plus a small query-dependent
    part), with the prototype pair chosen on the first frame so that about a
    quarter of the frame is foreground: masks then follow the image content
    and differ between queries, as a trained model's do.
    """
    cfg = Config.fromfile(CONFIG)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    tensor, img_shape = demo.FramePreprocessor(cfg)(frame)
    with torch.no_grad():
        inputs = model.data_preprocessor.prepare_window(tensor[None])
        protos = model.extract_frame_feats(inputs, [img_shape])['protos'][0]
    protos = protos[:, :img_shape[0] // 4, :img_shape[1] // 4]

    def interior(mask):
        inner = mask.clone()
        inner[1:] &= mask[:-1]
        inner[:-1] &= mask[1:]
        inner[:, 1:] &= mask[:, :-1]
        inner[:, :-1] &= mask[:, 1:]
        return inner

    best = None  # the most blob-like mask among those of 10-40 % cover
    for i in range(len(protos)):
        for j in range(len(protos)):
            mask = protos[i] > protos[j]
            cover = float(mask.float().mean())
            if i != j and 0.1 <= cover <= 0.4:
                blob = float(interior(mask).sum()) / float(mask.sum())
                if best is None or blob > best[0]:
                    best = (blob, i, j)
    head = model.track_head
    with torch.no_grad():
        head.cls_embed.layers[-1].bias.fill_(2.0)
        head.mask_embed.layers[-1].weight.mul_(0.05)
        bias = torch.zeros_like(head.mask_embed.layers[-1].bias)
        bias[best[1]], bias[best[2]] = 3.0, -3.0
        head.mask_embed.layers[-1].bias.copy_(bias)
    save_checkpoint(
        dict(
            state_dict=model.state_dict(),
            meta=dict(dataset_meta=dict(classes=SYNTHETIC_VIS_CLASSES))), path)


@pytest.fixture(scope='module')
def assets(tmp_path_factory, load_tool):
    """A synthetic video as mp4, PNG frames with OVIS-style names and JPEG
    frames with YouTube-VIS-style names, its ground truth, a checkpoint."""
    root = tmp_path_factory.mktemp('demo')
    demo = load_tool(DEMO)
    video = make_synthetic_video(
        np.random.default_rng(7), NUM_FRAMES, HEIGHT, WIDTH)
    frames = video['frames']
    mp4 = str(root / 'clip.mp4')
    writer = cv2.VideoWriter(mp4, cv2.VideoWriter_fourcc(*'mp4v'), 6,
                             (WIDTH, HEIGHT))
    for frame in frames:
        writer.write(frame)
    writer.release()
    ovis = root / 'ovis_video'
    ytvis = root / 'ytvis_video'
    ovis.mkdir()
    ytvis.mkdir()
    for t, frame in enumerate(frames):
        cv2.imwrite(str(ovis / f'img_{t + 1:07d}.png'), frame)
        cv2.imwrite(str(ytvis / f'{t:05d}.jpg'), frame)
    file_names = [f'clip/{t:05d}.jpg' for t in range(NUM_FRAMES)]
    ann = dict(
        videos=[
            dict(
                id=1,
                width=WIDTH,
                height=HEIGHT,
                length=NUM_FRAMES,
                file_names=file_names)
        ],
        annotations=[
            dict(
                id=k + 1,
                video_id=1,
                category_id=obj.category + 1,
                iscrowd=0,
                height=HEIGHT,
                width=WIDTH,
                **fields) for k, (obj, fields) in enumerate(
                    zip(video['objects'], video_annotations(video)))
        ],
        categories=[
            dict(id=k + 1, name=name)
            for k, name in enumerate(SYNTHETIC_VIS_CLASSES)
        ])
    ann_file = str(root / 'gt.json')
    with open(ann_file, 'w') as f:
        json.dump(ann, f)
    ckpt = str(root / 'random.pth')
    _demo_checkpoint(ckpt, demo, frames[0])
    return dict(
        root=root,
        demo=demo,
        frames=frames,
        mp4=mp4,
        ovis=str(ovis),
        ytvis=str(ytvis),
        ann=ann_file,
        ckpt=ckpt)


def _run(assets, *args):
    return assets['demo'].main(
        [args[0], CONFIG, '--checkpoint', assets['ckpt'], *args[1:]])


def _decode(seg):
    return mask_utils.decode(
        dict(size=seg['size'], counts=seg['counts'].encode())).astype(bool)


def test_mp4_in_mp4_and_json_out(assets, tmp_path, load_tool, capsys):
    out = str(tmp_path / 'rendered.mp4')
    res = str(tmp_path / 'results.json')
    strip = str(tmp_path / 'strip.png')
    assert _run(assets, assets['mp4'], '--out', out, '--out-json', res,
                '--score-thr', '0', '--strip', strip, '--strip-frames',
                '3') == 0
    summary = capsys.readouterr().out
    assert f'frames: {NUM_FRAMES}' in summary and 'FPS' in summary
    assert out in summary and res in summary and strip in summary
    # three frames side by side, 4 white pixels apart
    strip_image = cv2.imread(strip)
    assert strip_image.shape == (HEIGHT, 3 * WIDTH + 2 * 4, 3)
    assert (strip_image[:, WIDTH:WIDTH + 4] == 255).all()

    # the rendered video decodes with the input's frame count and size
    cap = cv2.VideoCapture(out)
    decoded = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        decoded.append(frame)
    cap.release()
    assert len(decoded) == NUM_FRAMES
    assert all(f.shape == (HEIGHT, WIDTH, 3) for f in decoded)

    # the results pass the offline evaluation against the ground truth
    with open(res) as f:
        results = json.load(f)
    assert results and all(
        len(r['segmentations']) == NUM_FRAMES and r['video_id'] == 1
        for r in results)
    assert all(s['size'] == [HEIGHT, WIDTH]
               for s in results[0]['segmentations'])
    assert any(_decode(s).any() for r in results for s in r['segmentations'])
    eval_vis = load_tool('tools/analysis_tools/eval_vis.py')
    assert eval_vis.main([assets['ann'], res]) == 0
    assert f'{len(results)} predicted tracks' in capsys.readouterr().out
    # pixels and colours are checked on lossless PNG frames below (the mp4
    # codec blurs them)


def test_frames_folder_pixels_and_track_colours(assets, tmp_path, capsys):
    """OVIS-style PNG frames in, lossless PNG frames out: inside a drawn
    mask the pixels are the track colour blended over the frame, outside
    every mask and label they are unchanged, one colour per track."""
    res = str(tmp_path / 'all.json')
    assert _run(assets, assets['ovis'], '--out-json', res) == 0
    with open(res) as f:
        results = json.load(f)
    # draw the three best tracks only, so that masks rarely overlap
    best_per_track = {}
    for r in results:
        best_per_track[r['track_id']] = max(
            r['score'], best_per_track.get(r['track_id'], 0))
    thr = sorted(best_per_track.values())[-3]
    out = tmp_path / 'frames'
    assert _run(assets, assets['ovis'], '--out', str(out), '--frame-ext',
                'png', '--score-thr', repr(thr)) == 0
    names = sorted(os.listdir(out))
    assert names == [f'img_{t + 1:07d}.png' for t in range(NUM_FRAMES)]
    drawn_pairs = [r for r in results if r['score'] >= thr]
    tracks = sorted({r['track_id'] for r in drawn_pairs})
    assert len(tracks) >= 3

    checked_frames = num_fill = 0
    for t, name in enumerate(names):
        image = assets['frames'][t].astype(np.float64)  # BGR, as PNG
        drawn = cv2.imread(str(out / name))
        union = {}
        for r in drawn_pairs:
            m = _decode(r['segmentations'][t])
            union[r['track_id']] = union.get(r['track_id'], False) | m
        coverage = sum(m.astype(int) for m in union.values())
        # labels: one text line at each mask box's top-left corner, above
        # it (or inside at the image top), moved below the labels they
        # would cover: all within the rows from the highest box top - 1 line
        # to the lowest + (labels + 1) lines
        scale = min(max(HEIGHT / 600, 0.3), 1.2)  # the visualiser's auto
        (_, text_h), baseline = cv2.getTextSize('0', cv2.FONT_HERSHEY_SIMPLEX,
                                                scale, 1)
        line = text_h + baseline + 2
        tops = [
            np.nonzero(_decode(r['segmentations'][t]).any(1))[0].min()
            for r in drawn_pairs if _decode(r['segmentations'][t]).any()
        ]
        label_zone = np.zeros((HEIGHT, WIDTH), bool)
        if tops:
            label_zone[max(min(tops) - line, 0):max(tops) +
                       (len(tops) + 1) * line] = True
        # outside every drawn mask and label the frame is unchanged
        same = (drawn == assets['frames'][t]).all(-1)
        bad = np.argwhere(~same & (coverage == 0) & ~label_zone)
        assert len(bad) == 0, (t, bad[:10], tops, line, len(drawn_pairs))
        for track, mask in union.items():
            only = mask & (coverage == 1) & ~label_zone
            color_bgr = np.array(id_color(track)[::-1], np.float64)
            blended = np.rint(image * (1 - ALPHA) + color_bgr * ALPHA)
            fill = (drawn == blended).all(-1)
            outline = (drawn == color_bgr).all(-1)
            # inside the mask: the track's colour, blended (fill) or solid
            # (outline on the mask's boundary pixels)
            assert (fill | outline)[only].all(), (t, track)
            num_fill += int((fill & ~outline)[only].sum())
            if only.sum() >= 1:
                checked_frames += 1
    assert checked_frames >= NUM_FRAMES and num_fill >= 50


def test_youtube_vis_folder_and_same_predictions_as_test_pipeline(
        assets, tmp_path):
    """JPEG frames 00000.jpg... work, and the demo predicts what
    tools/test.py's pipeline (dataset + data preprocessor + predict) does
    on the same frames."""
    res = str(tmp_path / 'res.json')
    out = str(tmp_path / 'video.avi')
    assert _run(assets, assets['ytvis'], '--out', out, '--out-json', res) == 0
    cap = cv2.VideoCapture(out)
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == NUM_FRAMES

    from mmdet.registry import DATASETS
    from mmengine.dataset import pseudo_collate
    from mmengine.runner import load_checkpoint
    cfg = Config.fromfile(CONFIG)
    init_default_scope('mmdet')
    data_root = osp.dirname(assets['ytvis'])
    ann = json.load(open(assets['ann']))
    ann['videos'][0]['file_names'] = [
        f'ytvis_video/{t:05d}.jpg' for t in range(NUM_FRAMES)
    ]
    ann_file = str(tmp_path / 'ytvis_ann.json')
    json.dump(ann, open(ann_file, 'w'))
    dataset = DATASETS.build(
        dict(
            type='VISDataset',
            data_root=data_root,
            ann_file=ann_file,
            data_prefix=dict(img_path=''),
            test_mode=True,
            preset='synthetic_vis',
            pipeline=cfg.test_dataloader.dataset.pipeline))
    model = MODELS.build(cfg.model)
    load_checkpoint(model, assets['ckpt'], map_location='cpu')
    model.eval()
    batch = model.data_preprocessor(pseudo_collate([dataset[0]]))
    with torch.no_grad():
        pred = model.predict(**batch)[0]
    first = pred[0].pred_track_instances
    with open(res) as f:
        results = json.load(f)
    assert len(results) == len(first)
    for k, r in enumerate(results):
        assert r['category_id'] == int(first.labels[k]) + 1
        assert r['score'] == pytest.approx(float(first.scores[k]), abs=1e-6)
        for t in range(NUM_FRAMES):
            expected = pred[t].pred_track_instances.masks[k]['counts']
            if isinstance(expected, bytes):
                expected = expected.decode()
            assert r['segmentations'][t]['counts'] == expected


def test_natural_order_and_streaming(assets, tmp_path):
    demo = assets['demo']
    folder = tmp_path / 'unpadded'
    folder.mkdir()
    for t in (10, 2, 1):
        cv2.imwrite(str(folder / f'img_{t}.jpg'), assets['frames'][0])
    (folder / 'notes.txt').write_text('not a frame')
    source = demo.FrameSource(str(folder))
    assert source.names == ['img_1', 'img_2', 'img_10']
    assert sorted(['b10', 'b9', 'a100', 'a20'],
                  key=demo.natural_key) == ['a20', 'a100', 'b9', 'b10']

    # the inferencer reads each frame once, holding one window at a time
    cfg = Config.fromfile(CONFIG)
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model).eval()
    source = demo.FrameSource(assets['mp4'])
    video = demo.LazyVideo(source, demo.FramePreprocessor(cfg))
    max_cached = []
    seen = []
    original = video._frame

    def spy(index):
        seen.append(index)
        max_cached.append(len(video._cache))
        return original(index)

    video._frame = spy
    demo.run_inference(model, model.data_preprocessor, video, 1,
                       lambda n: None)
    assert video.num_restarts == 0, str(seen)
    assert max(max_cached) <= cfg.model.test_cfg.window_length
    assert sorted(set(seen)) == list(range(NUM_FRAMES))


@pytest.mark.parametrize('case', [
    'corrupt_video', 'empty_video', 'empty_folder', 'no_frames',
    'corrupt_frame', 'mixed_sizes', 'out_is_input', 'json_inside_input',
    'out_contains_input', 'nothing_to_write', 'missing_checkpoint',
    'wrong_classes', 'foreign_checkpoint', 'json_is_checkpoint'
])
def test_bad_inputs(assets, tmp_path, capsys, case):
    args = None
    bad = tmp_path / 'input'
    if case == 'corrupt_video':
        bad = tmp_path / 'broken.mp4'
        bad.write_bytes(os.urandom(2048))
        message = 'cannot read video'
    elif case == 'empty_video':
        bad = tmp_path / 'empty.mp4'
        bad.write_bytes(b'')
        message = 'empty.mp4'
    elif case == 'empty_folder':
        bad.mkdir()
        message = 'is empty'
    elif case == 'no_frames':
        bad.mkdir()
        (bad / 'a.txt').write_text('x')
        message = 'no frames of a known type'
    elif case == 'corrupt_frame':
        bad.mkdir()
        cv2.imwrite(str(bad / '00000.jpg'), assets['frames'][0])
        (bad / '00001.jpg').write_text('not a jpeg')
        message = f'frame {bad / "00001.jpg"} could not be read'
    elif case == 'mixed_sizes':
        bad.mkdir()
        cv2.imwrite(str(bad / '00000.jpg'), assets['frames'][0])
        cv2.imwrite(str(bad / '00001.jpg'), assets['frames'][1][::2, ::2])
        message = 'must have one size'
    elif case == 'out_is_input':
        bad = tmp_path / 'copy.mp4'
        bad.write_bytes(open(assets['mp4'], 'rb').read())
        args = [str(bad), '--out', str(bad)]
        message = 'is the input'
    elif case == 'json_inside_input':
        bad = tmp_path / 'frames'
        bad.mkdir()
        cv2.imwrite(str(bad / '00000.jpg'), assets['frames'][0])
        args = [str(bad), '--out-json', str(bad / 'res.json')]
        message = 'inside the input folder'
    elif case == 'out_contains_input':
        bad = tmp_path / 'frames'
        bad.mkdir()
        cv2.imwrite(str(bad / '00000.jpg'), assets['frames'][0])
        args = [str(bad), '--out', str(tmp_path)]
        message = 'contains the input'
    elif case == 'nothing_to_write':
        args = [assets['mp4']]
        message = 'nothing to write'
    elif case == 'missing_checkpoint':
        args = [
            assets['mp4'], CONFIG, '--checkpoint',
            str(tmp_path / 'nope.pth'), '--out',
            str(tmp_path / 'o.mp4')
        ]
        message = 'checkpoint not found'
    elif case == 'foreign_checkpoint':
        foreign = str(tmp_path / 'foreign.pth')
        save_checkpoint(dict(state_dict=dict(w=torch.zeros(2))), foreign)
        args = [
            assets['mp4'], CONFIG, '--checkpoint', foreign, '--out-json',
            str(tmp_path / 'r.json')
        ]
        message = 'does not fit'
    elif case == 'json_is_checkpoint':
        ckpt = str(tmp_path / 'model.pth')
        with open(ckpt, 'wb') as f:
            f.write(open(assets['ckpt'], 'rb').read())
        args = [
            assets['mp4'], CONFIG, '--checkpoint', ckpt, '--out-json', ckpt
        ]
        message = 'is the checkpoint'
    elif case == 'wrong_classes':
        args = [
            assets['mp4'], '--out-json',
            str(tmp_path / 'r.json'), '--classes', 'cat', 'dog'
        ]
        message = '--classes gives 2 names but the model has 4 classes'
    before = {
        p: os.path.getsize(p) if os.path.isfile(p) else None
        for p in map(str, tmp_path.rglob('*'))
    }
    if case in ('missing_checkpoint', 'foreign_checkpoint',
                'json_is_checkpoint'):
        rc = assets['demo'].main(args)
    else:
        if args is None:
            args = [
                str(bad), '--out',
                str(tmp_path / 'out.mp4'), '--out-json',
                str(tmp_path / 'out.json')
            ]
        rc = _run(assets, *args)
    err = capsys.readouterr().err
    assert rc != 0
    assert message in err and 'Traceback' not in err
    after = {
        p: os.path.getsize(p) if os.path.isfile(p) else None
        for p in map(str, tmp_path.rglob('*'))
    }
    assert after == before  # nothing written, the input untouched

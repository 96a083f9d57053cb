# Copyright (c) OpenMMLab. All rights reserved.
import copy
import json
import os

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from mmengine.registry import init_default_scope

from mdqe_mm.datasets import OVIS_CLASSES, YOUTUBE_VIS_2019_CLASSES, VISDataset

init_default_scope('mmdet')


def build(root, ann, **kwargs):
    kwargs.setdefault('data_prefix', dict(img_path='frames'))
    return VISDataset(data_root=str(root), ann_file=ann, pipeline=[], **kwargs)


def decode(segm, h, w):
    if isinstance(segm, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segm, h, w))
    elif isinstance(segm['counts'], list):
        rle = mask_utils.frPyObjects(segm, h, w)
    else:
        rle = segm
    return mask_utils.decode(rle)


def test_load_youtube_vis_2019(tiny_vis_root):
    ds = build(
        tiny_vis_root, 'vis_tiny_ytvis2019.json', preset='youtube_vis_2019')
    assert ds.metainfo['classes'] == YOUTUBE_VIS_2019_CLASSES
    assert len(ds) == 2
    video = ds.get_data_info(0)
    assert video['video_id'] == 1 and video['video_length'] == 3
    assert video['video_name'] == 'vid_a'
    frames = video['images']
    assert [f['frame_id'] for f in frames] == [0, 1, 2]
    assert frames[1]['img_path'].endswith('frames/vid_a/00005.jpg')
    assert os.path.isfile(frames[1]['img_path'])
    # frame 0: person (RLE) + crowd dog; frame 1: only the crowd dog
    person0 = [i for i in frames[0]['instances'] if i['instance_id'] == 11]
    assert len(person0) == 1
    assert person0[0]['bbox'] == [4, 2, 8, 6]  # xywh -> xyxy
    assert person0[0]['bbox_label'] == YOUTUBE_VIS_2019_CLASSES.index('person')
    assert person0[0]['ignore_flag'] == 0
    mask = decode(person0[0]['mask'], 24, 32)
    ys, xs = np.nonzero(mask)
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (4, 8, 2, 6)
    assert [i['instance_id'] for i in frames[1]['instances']] == [12]
    dog = frames[1]['instances'][0]
    assert dog['ignore_flag'] == 1
    assert dog['bbox_label'] == YOUTUBE_VIS_2019_CLASSES.index('dog')
    # polygon in frame 2
    person2 = [i for i in frames[2]['instances'] if i['instance_id'] == 11]
    assert person2[0]['bbox'] == [10, 10, 16, 15]
    # video 2 frame 0: bbox null -> derived from the polygon mask
    inst = ds.get_data_info(1)['images'][0]['instances'][0]
    np.testing.assert_allclose(inst['bbox'], [2, 2, 12, 12], atol=1)
    assert ds.get_data_info(1)['images'][1]['instances'] == []
    # img ids are unique over the dataset
    ids = [
        f['img_id'] for v in range(len(ds))
        for f in ds.get_data_info(v)['images']
    ]
    assert len(set(ids)) == len(ids) == 5


def test_load_ovis_with_occlusion(tiny_vis_root):
    ds = build(tiny_vis_root, 'vis_tiny_ovis_train.json', preset='ovis')
    assert ds.metainfo['classes'] == OVIS_CLASSES
    assert 'Vehical' in ds.metainfo['classes']
    frames = ds.get_data_info(0)['images']
    with open(tiny_vis_root / 'vis_tiny_ovis_train.json') as f:
        raw = json.load(f)
    for ann in raw['annotations']:
        for t, label in enumerate(ann['occlusion']):
            found = [
                i for i in frames[t]['instances']
                if i['instance_id'] == ann['id']
            ]
            if label is None:
                assert found == []
            else:
                assert found[0]['occlusion'] == label
                assert found[0]['bbox_label'] == OVIS_CLASSES.index(
                    'Vehical' if ann['category_id'] == 25 else 'Person')


def test_null_annotations_load_for_inference(tiny_vis_root):
    pipeline = [
        dict(
            type='TransformBroadcaster',
            transforms=[
                dict(type='LoadImageFromFile'),
                dict(type='Resize', scale=(64, 48), keep_ratio=True)
            ]),
        dict(type='PackTrackInputs')
    ]
    ds = VISDataset(
        data_root=str(tiny_vis_root),
        ann_file='vis_tiny_ovis_valid.json',
        data_prefix=dict(img_path='frames'),
        preset='ovis',
        test_mode=True,
        pipeline=pipeline)
    assert len(ds) == 2
    out = ds[1]
    assert out['inputs'].shape == (3, 3, 48, 64)
    samples = out['data_samples']
    assert [s.frame_id for s in samples] == [0, 1, 2]
    assert all(s.video_length == 3 for s in samples)
    assert all(len(s.instances) == 0 for s in samples)
    with pytest.raises(ValueError, match='null'):
        build(tiny_vis_root, 'vis_tiny_ovis_valid.json', preset='ovis')


def test_custom_classes_and_inferred_classes(tiny_vis_root):
    ds = build(
        tiny_vis_root,
        'vis_tiny_ytvis2019.json',
        metainfo=dict(classes=('dog', 'person')))
    frame = ds.get_data_info(0)['images'][0]
    labels = {i['instance_id']: i['bbox_label'] for i in frame['instances']}
    assert labels == {11: 1, 12: 0}
    ds = build(tiny_vis_root, 'vis_tiny_ytvis2019.json')
    assert ds.metainfo['classes'] == ('person', 'dog')
    # only 'dog' kept: the person annotations are skipped
    ds = build(
        tiny_vis_root,
        'vis_tiny_ytvis2019.json',
        metainfo=dict(classes=('dog', )),
        test_mode=True)
    ids = {
        i['instance_id']
        for f in ds.get_data_info(0)['images']
        for i in f['instances']
    }
    assert ids == {12}


def test_training_filter_drops_crowd_only_videos(tiny_vis_root):
    # video 1 has only a crowd dog, video 2 no dog at all -> nothing left
    with pytest.raises(ValueError, match='no training video'):
        build(
            tiny_vis_root,
            'vis_tiny_ytvis2019.json',
            metainfo=dict(classes=('dog', )))
    ds = build(
        tiny_vis_root,
        'vis_tiny_ytvis2019.json',
        metainfo=dict(classes=('dog', )),
        filter_cfg=dict(filter_empty_gt=False))
    assert len(ds) == 2
    ds = build(
        tiny_vis_root, 'vis_tiny_ytvis2019.json', preset='youtube_vis_2019')
    assert len(ds) == 2
    # frames are never dropped
    assert [len(ds.get_data_info(i)['images']) for i in range(2)] == [3, 2]


def write_variant(root, name, edit):
    with open(root / 'vis_tiny_ytvis2019.json') as f:
        data = json.load(f)
    edit(data)
    with open(root / name, 'w') as f:
        json.dump(data, f)
    return name


def test_error_missing_annotation_file_says_what_to_do(tiny_vis_root):
    with pytest.raises(FileNotFoundError, match='split_vis_train.py'):
        build(tiny_vis_root, 'no_such_file.json', preset='ovis')


def test_error_missing_image_file(tiny_vis_root):
    os.remove(tiny_vis_root / 'frames' / 'vid_a' / '00005.jpg')
    with pytest.raises(FileNotFoundError, match=r'video 1.*vid_a/00005.jpg'):
        build(
            tiny_vis_root,
            'vis_tiny_ytvis2019.json',
            preset='youtube_vis_2019')
    # the check can be turned off (e.g. for remote storage)
    build(
        tiny_vis_root,
        'vis_tiny_ytvis2019.json',
        preset='youtube_vis_2019',
        check_image_files=False)


def test_error_length_mismatch(tiny_vis_root):

    def edit(data):
        data['videos'][1]['length'] = 3

    name = write_variant(tiny_vis_root, 'bad_len.json', edit)
    with pytest.raises(ValueError, match=r'bad_len.json.*video 2 \(vid_b\)'):
        build(tiny_vis_root, name, preset='youtube_vis_2019')

    def edit_segms(data):
        data['annotations'][0]['segmentations'].append(None)

    name = write_variant(tiny_vis_root, 'bad_segms.json', edit_segms)
    with pytest.raises(
            ValueError, match=r'annotation 11 of video 1.*segmentations'):
        build(tiny_vis_root, name, preset='youtube_vis_2019')


def test_error_unknown_category(tiny_vis_root):

    def edit(data):
        data['annotations'][2]['category_id'] = 99

    name = write_variant(tiny_vis_root, 'bad_cat.json', edit)
    with pytest.raises(
            ValueError, match=r'bad_cat.json.*annotation 13 of video 2.*99'):
        build(tiny_vis_root, name, preset='youtube_vis_2019')


def test_error_unknown_video_and_bad_preset(tiny_vis_root):

    def edit(data):
        data['annotations'][2]['video_id'] = 5

    name = write_variant(tiny_vis_root, 'bad_vid.json', edit)
    with pytest.raises(ValueError, match='no such video'):
        build(tiny_vis_root, name, preset='youtube_vis_2019')
    with pytest.raises(ValueError, match='Unknown VIS preset'):
        build(tiny_vis_root, 'vis_tiny_ytvis2019.json', preset='ytvis')
    # a YouTube-VIS file read with the OVIS preset matches no category
    with pytest.raises(ValueError, match='none of its categories'):
        build(tiny_vis_root, 'vis_tiny_ytvis2019.json', preset='ovis')


def test_train_prepare_data_gives_video_info(tiny_vis_root):
    ds = build(
        tiny_vis_root, 'vis_tiny_ytvis2019.json', preset='youtube_vis_2019')
    info = ds.prepare_data(0)
    assert info['video_length'] == 3 and len(info['images']) == 3
    info_copy = copy.deepcopy(ds.get_data_info(0))
    assert info_copy['images'][0]['instances'] == info['images'][0][
        'instances']

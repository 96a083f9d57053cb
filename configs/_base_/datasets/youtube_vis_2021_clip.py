# Copyright (c) OpenMMLab. All rights reserved.
# YouTube-VIS 2021: youtube_vis_2019_clip.py with dataset_version '2021'.
# Layout:
#   data/youtube_vis_2021/train/instances.json, train/JPEGImages/...
#   data/youtube_vis_2021/valid/instances.json, valid/JPEGImages/...
#   data/youtube_vis_2021/annotations/{train_sub,valid_sub}.json
_base_ = './youtube_vis_2019_clip.py'

dataset_version = '2021'
dataset_preset = 'youtube_vis_' + dataset_version
data_root = f'data/youtube_vis_{dataset_version}/'
test_ann_file = 'valid/instances.json'

train_dataloader = dict(
    dataset=dict(preset=dataset_preset, data_root=data_root))
val_dataloader = dict(dataset=dict(preset=dataset_preset, data_root=data_root))
test_dataloader = dict(
    dataset=dict(
        preset=dataset_preset, data_root=data_root, ann_file=test_ann_file))
val_evaluator = dict(ann_file=data_root + 'annotations/valid_sub.json')
test_evaluator = dict(
    ann_file=data_root + test_ann_file,
    outfile_prefix=f'./work_dirs/{dataset_preset}_results/results')

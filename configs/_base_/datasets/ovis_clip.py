# Copyright (c) OpenMMLab. All rights reserved.
# OVIS with the clip recipe of youtube_vis_2019_clip.py (OVIS is in
# YouTube-VIS format). Layout:
#   data/ovis/annotations_train.json, data/ovis/train/<video>/img_*.jpg
#   data/ovis/annotations_valid.json, data/ovis/valid/<video>/img_*.jpg
#   data/ovis/annotations/{train_sub,valid_sub}.json  made with
#   tools/dataset_converters/split_vis_train.py (local dev split, ~90/10)
# The official valid file's "annotations" is null (CodaLab only).
_base_ = './youtube_vis_2019_clip.py'

dataset_version = None
dataset_preset = 'ovis'
data_root = 'data/ovis/'
test_ann_file = 'annotations_valid.json'
train_img_dir = 'train/'
test_img_dir = 'valid/'

train_dataloader = dict(
    dataset=dict(
        preset=dataset_preset,
        data_root=data_root,
        data_prefix=dict(img_path=train_img_dir)))
val_dataloader = dict(
    dataset=dict(
        preset=dataset_preset,
        data_root=data_root,
        data_prefix=dict(img_path=train_img_dir)))
test_dataloader = dict(
    dataset=dict(
        preset=dataset_preset,
        data_root=data_root,
        ann_file=test_ann_file,
        data_prefix=dict(img_path=test_img_dir)))
val_evaluator = dict(ann_file=data_root + 'annotations/valid_sub.json')
test_evaluator = dict(
    ann_file=data_root + test_ann_file,
    outfile_prefix=f'./work_dirs/{dataset_preset}_results/results')

# Copyright (c) OpenMMLab. All rights reserved.
# MDQE R50 on YouTube-VIS 2019 at 360p (MDQE_SPEC §6 "R50_ytvis19"): the
# OVIS recipe (mdqe_r50_8xb2-12k_ovis.py) with 40 classes, association
# window 7, at most 70 instances (10 per frame), and YTVIS clips mixed with
# COCO pseudo-videos mapped to the YTVIS-2019 classes (1.0 : 0.75).
# README: 47.8 AP (YTVIS-19 val).
_base_ = './mdqe_r50_8xb2-12k_ovis.py'

num_classes = 40
model = dict(
    query_selection=dict(num_classes=num_classes, train_window=7),
    track_head=dict(num_classes=num_classes),
    test_cfg=dict(max_num_instances=70, max_per_frame=10))

# The data set (see ../_base_/datasets/youtube_vis_2019_clip.py for the
# layout); the COCO pseudo-videos keep their recipe, with this label map.
dataset_version = '2019'
dataset_preset = 'youtube_vis_' + dataset_version
coco_label_map = dataset_preset
data_root = f'data/youtube_vis_{dataset_version}/'
test_ann_file = 'valid.json'
train_img_dir = 'train/JPEGImages/'
test_img_dir = 'valid/JPEGImages/'

coco_pseudo_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='ImageToPseudoVideo',
        num_frames={{_base_.num_frames}},
        label_map=coco_label_map), {{_base_.pseudo_clip_augment}},
    dict(type='FilterEmptyClip'), {{_base_.pack_clip}}
]
coco_pseudo_dataset = dict(
    type='CocoDataset',
    data_root={{_base_.coco_data_root}},
    ann_file='annotations/instances_train2017.json',
    data_prefix=dict(img='train2017/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=32),
    pipeline=coco_pseudo_pipeline,
    backend_args=None)
train_dataloader = dict(
    dataset=dict(datasets=[
        dict(
            type='VISDataset',
            preset=dataset_preset,
            data_root=data_root,
            ann_file='annotations/train_sub.json',
            data_prefix=dict(img_path=train_img_dir),
            pipeline={{_base_.train_pipeline}},
            backend_args=None), coco_pseudo_dataset
    ]))
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

# Copyright (c) OpenMMLab. All rights reserved.
# MDQE SwinV2-L on YouTube-VIS 2019 (MDQE_SPEC §6 "swinl_ytvis19"): the
# YouTube-VIS 2021 config with the 2019 data set (clips, and COCO classes
# mapped to the 2019 classes). README: 59.9 AP (YTVIS-19 val).
_base_ = './mdqe_swinl_8xb1-24k_youtubevis2021.py'

dataset_version = '2019'
dataset_preset = 'youtube_vis_' + dataset_version
data_root = f'data/youtube_vis_{dataset_version}/'
test_ann_file = 'valid.json'

# configs replace lists as a whole: the two mixed data sets are restated
coco_pseudo_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='ImageToPseudoVideo',
        num_frames={{_base_.num_frames}},
        label_map=dataset_preset), {{_base_.pseudo_clip_augment}},
    dict(type='FilterEmptyClip'), {{_base_.pack_clip}}
]
coco_pseudo_dataset = dict(pipeline=coco_pseudo_pipeline)
train_dataloader = dict(
    dataset=dict(datasets=[
        dict(
            type='VISDataset',
            preset=dataset_preset,
            data_root=data_root,
            ann_file='annotations/train_sub.json',
            data_prefix=dict(img_path='train/JPEGImages/'),
            pipeline={{_base_.train_pipeline}},
            backend_args=None),
        dict(
            type='CocoDataset',
            data_root='data/coco/',
            ann_file='annotations/instances_train2017.json',
            data_prefix=dict(img='train2017/'),
            filter_cfg=dict(filter_empty_gt=True, min_size=32),
            pipeline=coco_pseudo_pipeline,
            backend_args=None)
    ]))
val_dataloader = dict(dataset=dict(preset=dataset_preset, data_root=data_root))
test_dataloader = dict(
    dataset=dict(
        preset=dataset_preset, data_root=data_root, ann_file=test_ann_file))
val_evaluator = dict(ann_file=data_root + 'annotations/valid_sub.json')
test_evaluator = dict(
    ann_file=data_root + test_ann_file,
    outfile_prefix=f'./work_dirs/{dataset_preset}_results/results')

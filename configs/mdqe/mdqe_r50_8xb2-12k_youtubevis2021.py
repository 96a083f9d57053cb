# Copyright (c) OpenMMLab. All rights reserved.
# MDQE R50 on YouTube-VIS 2021 at 360p (MDQE_SPEC §6 "R50_ytvis21"): the
# YouTube-VIS 2019 config with the 2021 data set (clips, and COCO classes
# mapped to the 2021 classes). Paper: 44.5 AP (YTVIS-21 val); README: 46.6.
_base_ = './mdqe_r50_8xb2-12k_youtubevis2019.py'

dataset_version = '2021'
dataset_preset = 'youtube_vis_' + dataset_version
coco_label_map = dataset_preset
data_root = f'data/youtube_vis_{dataset_version}/'
test_ann_file = 'valid/instances.json'

# configs replace lists as a whole: the two mixed data sets are restated
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
            data_prefix=dict(img_path='train/JPEGImages/'),
            pipeline={{_base_.train_pipeline}},
            backend_args=None), coco_pseudo_dataset
    ]))
val_dataloader = dict(dataset=dict(preset=dataset_preset, data_root=data_root))
test_dataloader = dict(
    dataset=dict(
        preset=dataset_preset, data_root=data_root, ann_file=test_ann_file))
val_evaluator = dict(ann_file=data_root + 'annotations/valid_sub.json')
test_evaluator = dict(
    ann_file=data_root + test_ann_file,
    outfile_prefix=f'./work_dirs/{dataset_preset}_results/results')

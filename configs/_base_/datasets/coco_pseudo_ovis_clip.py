# Copyright (c) OpenMMLab. All rights reserved.
# OVIS clips mixed with COCO pseudo-videos at 1.0 : 0.75 per sample, as in
# MDQE's joint training (about 43% pseudo clips). A COCO image becomes a
# T-frame clip with monotone rotation (+-15 deg), the drifting crop, one
# short side and one flip; COCO classes are mapped to OVIS ones by name
# (COCO_TO_OVIS in mdqe_mm/datasets/vis_classes.py), others are dropped.
_base_ = './ovis_clip.py'

coco_data_root = 'data/coco/'
pseudo_ratio = 0.75
vis_ratio = 1.0

# absolute crop of 384..600 px after the short side is set to 400/500/600
pseudo_drift_crop = dict(
    type='RandomApply',
    prob=0.5,
    transforms=[
        dict(
            type='RandomChoiceResize',
            scales=[(1333, s) for s in (400, 500, 600)],
            keep_ratio=True,
            backend={{_base_.resize_backend}},
            resize_type='mmdet.Resize'),
        dict(
            type='ClipDriftCrop',
            crop_size=(384, 600),
            crop_type='absolute_range')
    ])
# the same motion for every copy: one angle path, crop path, size and flip
pseudo_clip_augment = dict(
    type='TransformBroadcaster',
    share_random_params=True,
    transforms=[
        dict(type='ClipMonotoneRotate', max_angle=15.0),
        pseudo_drift_crop,
        {{_base_.clip_resize}},
        dict(type='RandomFlip', prob=0.5),
    ])
coco_pseudo_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='ImageToPseudoVideo',
        num_frames={{_base_.num_frames}},
        label_map={{_base_.dataset_preset}}), pseudo_clip_augment,
    dict(type='FilterEmptyClip'), {{_base_.pack_clip}}
]
coco_pseudo_dataset = dict(
    type='CocoDataset',
    data_root=coco_data_root,
    ann_file='annotations/instances_train2017.json',
    data_prefix=dict(img='train2017/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=32),
    pipeline=coco_pseudo_pipeline,
    backend_args={{_base_.backend_args}})

train_dataloader = dict(
    _delete_=True,
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='RatioMixSampler', ratios=[vis_ratio, pseudo_ratio]),
    dataset=dict(
        type='ConcatDataset',
        # the two datasets have different class lists; the mixed dataset
        # reports the first one's (the VIS one's) metainfo
        ignore_keys=['classes', 'palette'],
        datasets=[{{_base_.train_dataloader.dataset}}, coco_pseudo_dataset]))

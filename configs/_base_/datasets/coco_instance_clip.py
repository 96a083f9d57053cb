# Copyright (c) OpenMMLab. All rights reserved.
# COCO instance segmentation as T-frame clips, for MDQE's COCO stages
# (MDQE_SPEC §6 "R50_coco"): every image becomes a clip of T copies that
# share one drifting crop (p=0.5; short side 400/500/600, then an absolute
# 384..600 px crop), one short side and one flip, all 80 classes kept. With
# T=1 (the default here) this is plain image training. The 4-frame pseudo-
# video stage adds the monotone rotation (mdqe_r50_8xb2-12k_coco-pseudo4.py).
# Layout: data/coco/annotations/instances_train2017.json, data/coco/train2017/
dataset_type = 'CocoDataset'
data_root = 'data/coco/'
num_frames = 1
train_short_sides = tuple(range(320, 673, 32))
train_max_size = 1333
backend_args = None
resize_backend = 'pillow'  # as Detectron2 (the reference) resizes
pack_meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape',
                  'scale_factor', 'flip', 'flip_direction', 'frame_id',
                  'video_id', 'video_length', 'ori_video_length')
# Pipeline pieces, named so that derived configs can rebuild the pipeline
# with {{_base_.<piece>}}.
# label_map=None keeps the 80 COCO classes
image_to_clip = dict(
    type='ImageToPseudoVideo', num_frames=num_frames, label_map=None)
coco_drift_crop = dict(
    type='RandomApply',
    prob=0.5,
    transforms=[
        dict(
            type='RandomChoiceResize',
            scales=[(1333, s) for s in (400, 500, 600)],
            keep_ratio=True,
            backend=resize_backend,
            resize_type='mmdet.Resize'),
        dict(
            type='ClipDriftCrop',
            crop_size=(384, 600),
            crop_type='absolute_range')
    ])
clip_resize = dict(
    type='RandomChoiceResize',
    scales=[(train_max_size, s) for s in train_short_sides],
    keep_ratio=True,
    backend=resize_backend,
    resize_type='mmdet.Resize')
pack_clip = dict(type='PackTrackInputs', default_meta_keys=pack_meta_keys)

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    image_to_clip,
    dict(
        type='TransformBroadcaster',
        share_random_params=True,
        transforms=[
            coco_drift_crop, clip_resize,
            dict(type='RandomFlip', prob=0.5)
        ]),
    dict(type='FilterEmptyClip'), pack_clip
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline,
        backend_args=backend_args))
# No val/test loaders here: MDQE's output is video tracks, and mdqe_mm has
# no COCO image evaluator for it (the reference ran Detectron2's
# COCOEvaluator); the COCO stages are judged by the VIS models fine-tuned
# from them.

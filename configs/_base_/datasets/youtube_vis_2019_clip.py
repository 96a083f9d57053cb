# Copyright (c) OpenMMLab. All rights reserved.
# YouTube-VIS, MDQE R50 360p recipe: T-frame clips (reference frame + T-1
# frames within +-frame_range), one short side per clip, one flip per clip,
# and with p=0.5 a drifting crop (simulated camera motion). Read straight
# from the official JSON (no conversion). This file is the base of the VIS
# data sets: youtube_vis_2021_clip.py switches dataset_version, and
# ovis_clip.py the data set; both restate only the fields that change.
# Layout (2019):
#   data/youtube_vis_2019/train.json, train/JPEGImages/<video>/*.jpg
#   data/youtube_vis_2019/valid.json, valid/JPEGImages/<video>/*.jpg
#   data/youtube_vis_2019/annotations/{train_sub,valid_sub}.json  made with
#   tools/dataset_converters/split_vis_train.py (local dev split, ~90/10)
# Training uses train_sub and validation valid_sub (local numbers); testing
# uses the official valid file, which has no ground truth (CodaLab only).
dataset_type = 'VISDataset'
dataset_version = '2019'
dataset_preset = 'youtube_vis_' + dataset_version
data_root = f'data/youtube_vis_{dataset_version}/'
num_frames = 4
frame_range = 10
train_short_sides = (320, 352, 384, 416, 448, 480, 512)
train_max_size = 800
crop_pre_short_sides = (400, 500, 600)
crop_size = (0.8, 0.8)
test_short_side = 360
test_max_size = 1333
train_ann_file = 'annotations/train_sub.json'
val_ann_file = 'annotations/valid_sub.json'
test_ann_file = 'valid.json'
train_img_dir = 'train/JPEGImages/'
test_img_dir = 'valid/JPEGImages/'
backend_args = None
# Detectron2 (the reference) resizes uint8 frames with PIL, whose bilinear
# filter antialiases when downscaling; cv2's does not
resize_backend = 'pillow'
# raw per-frame GT ('instances') is only needed by the metric at test
pack_meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape',
                  'scale_factor', 'flip', 'flip_direction', 'frame_id',
                  'video_id', 'video_length', 'ori_video_length')

# Pipeline pieces, named so that derived configs can rebuild a pipeline
# with {{_base_.<piece>}} and change only the resize or crop.
crop_pre_resize = dict(
    type='RandomChoiceResize',
    scales=[(1333, s) for s in crop_pre_short_sides],
    keep_ratio=True,
    backend=resize_backend,
    resize_type='mmdet.Resize')
clip_drift_crop = dict(
    type='RandomApply',
    prob=0.5,
    transforms=[
        crop_pre_resize,
        dict(
            type='ClipDriftCrop',
            crop_size=crop_size,
            crop_type='relative_range')
    ])
clip_resize = dict(
    type='RandomChoiceResize',
    scales=[(train_max_size, s) for s in train_short_sides],
    keep_ratio=True,
    backend=resize_backend,
    resize_type='mmdet.Resize')
pack_clip = dict(type='PackTrackInputs', default_meta_keys=pack_meta_keys)

train_pipeline = [
    dict(
        type='ClipFrameSample', num_frames=num_frames,
        frame_range=frame_range),
    dict(
        type='TransformBroadcaster',
        share_random_params=True,
        transforms=[
            dict(type='LoadImageFromFile', backend_args=backend_args),
            dict(type='LoadTrackAnnotations', with_mask=True),
            clip_drift_crop,
            clip_resize,
            dict(type='RandomFlip', prob=0.5),
        ]),
    dict(type='FilterEmptyClip'), pack_clip
]
# Whole video, frames in order, uint8. GT masks are not decoded here (that
# would need N x T full-size masks for a long video); the metric reads the raw
# RLE of the 'instances' meta key instead.
test_pipeline = [
    dict(
        type='TransformBroadcaster',
        transforms=[
            dict(type='LoadImageFromFile', backend_args=backend_args),
            dict(
                type='Resize',
                scale=(test_max_size, test_short_side),
                keep_ratio=True,
                backend=resize_backend),
        ]),
    dict(type='PackTrackInputs')
]

# One clip per video per item (MDQE samples clips per video): a plain
# infinite sampler over videos, not TrackImgSampler (which enumerates frames).
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=dict(type='TrackAspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        preset=dataset_preset,
        data_root=data_root,
        ann_file=train_ann_file,
        data_prefix=dict(img_path=train_img_dir),
        pipeline=train_pipeline,
        backend_args=backend_args))
# One whole video per item (batch_size=1), in order, as mmdet's VIS configs
# do: the VIS metric needs all frames of a video in one call.
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type=dataset_type,
        preset=dataset_preset,
        data_root=data_root,
        ann_file=val_ann_file,
        data_prefix=dict(img_path=train_img_dir),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type=dataset_type,
        preset=dataset_preset,
        data_root=data_root,
        ann_file=test_ann_file,
        data_prefix=dict(img_path=test_img_dir),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))

# Local numbers on valid_sub; the official valid split has no ground truth,
# so testing writes results.json + a CodaLab zip (format_only) instead.
val_evaluator = dict(type='VISMetric', ann_file=data_root + val_ann_file)
test_evaluator = dict(
    type='VISMetric',
    ann_file=data_root + test_ann_file,
    format_only=True,
    outfile_prefix=f'./work_dirs/{dataset_preset}_results/results')

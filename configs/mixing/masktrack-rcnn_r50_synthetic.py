# Copyright (c) OpenMMLab. All rights reserved.
# mmdet's stock MaskTrackRCNN (R50-FPN) on the synthetic occlusion videos
# through mdqe_mm's data side: VISDataset (SyntheticVISDataset), the clip
# transforms and VISMetric (AP/AR + OVIS occlusion APso/APmo/APho). From
# scratch (nothing to download). MaskTrackRCNN links frame by frame and can
# give two detections of one frame the same id; VISMetric keeps the
# higher-scored one (duplicate_ids='keep_highest'; mmdet's YouTubeVISMetric
# keeps the last one), and raises without the option.
#
# On YouTube-VIS 2021: _base_ = 'mmdet::masktrack_rcnn/
#   masktrack-rcnn_mask-rcnn_r50_fpn_8xb1-12e_youtubevis2021.py' with
# custom_imports = dict(imports=['mdqe_mm']) and val_evaluator =
#   dict(type='VISMetric', ann_file=..., duplicate_ids='keep_highest').
_base_ = [
    'mmdet::masktrack_rcnn/'
    'masktrack-rcnn_mask-rcnn_r50_fpn_8xb1-12e_youtubevis2021.py',
    './_base_/synthetic_vis_data.py'
]
custom_imports = dict(imports=['mdqe_mm'], allow_failed_imports=False)

num_classes = 4  # synthetic_vis_num_classes
model = dict(
    detector=dict(
        init_cfg=None,
        backbone=dict(init_cfg=None),
        roi_head=dict(
            bbox_head=dict(num_classes=num_classes),
            mask_head=dict(num_classes=num_classes))))

train_dataloader = {{_base_.synthetic_vis_train_dataloader}}
val_dataloader = {{_base_.synthetic_vis_val_dataloader}}
test_dataloader = {{_base_.synthetic_vis_test_dataloader}}
val_evaluator = dict(
    _delete_=True,
    type='VISMetric',
    ann_file='data/synthetic_vis/annotations/valid.json',
    duplicate_ids='keep_highest')
test_evaluator = dict(val_evaluator)  # a copy that keeps _delete_

max_iters = 2000  # synthetic_vis_max_iters
train_cfg = {{_base_.synthetic_vis_train_cfg}}
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1.0 / 3.0,
        by_epoch=False,
        begin=0,
        end=100),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iters,
        by_epoch=False,
        milestones=[int(max_iters * 0.9)],
        gamma=0.1)
]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters))
log_processor = dict(by_epoch=False)

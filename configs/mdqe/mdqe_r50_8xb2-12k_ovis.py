# Copyright (c) OpenMMLab. All rights reserved.
# MDQE R50 on OVIS at 360p (MDQE_SPEC §6 "R50_ovis_360"): 8 GPUs x 2 clips of
# 4 frames, OVIS clips mixed with COCO pseudo-videos (1.0 : 0.75), AdamW
# lr 1e-4 (backbone x0.1), wd 1e-4, grad-norm clip 0.01, 12k iterations with
# a x0.1 step at 10k. Paper: 29.2 AP (OVIS val); README: 30.7 AP.
_base_ = [
    '../_base_/models/mdqe_r50.py',
    '../_base_/datasets/coco_pseudo_ovis_clip.py',
    '../_base_/schedules/mdqe_iter_12k.py', '../_base_/default_runtime.py'
]
custom_imports = dict(imports=['mdqe_mm'], allow_failed_imports=False)
default_scope = 'mmdet'

num_classes = 25
model = dict(
    # torchvision://resnet50 through the backbone's init_cfg (base config)
    query_selection=dict(num_classes=num_classes, train_window=5),
    track_head=dict(num_classes=num_classes),
    test_cfg=dict(
        clip_length=4,
        window_length=30,
        cls_thr=0.1,
        max_num_instances=120,
        max_per_frame=15))

# The VIS models start from MDQE trained on COCO and fine-tuned on 4-frame
# COCO pseudo-videos (mdqe_r50_8xb2-12k_coco-pseudo4.py; the reference's
# pretrained/coco/mdqe_r50_coco_bs16_3x_f4_ft.pth, converted with
# tools/model_converters/mdqe_reference_to_mmdet.py, works too). The class
# heads' last layers (80 COCO classes) keep their initialisation, as in the
# reference; a checkpoint of another clip length is inflated on load.
load_from = 'work_dirs/mdqe_r50_8xb2-12k_coco-pseudo4/iter_12000.pth'
custom_hooks = [dict(type='TemporalInflationHook')]

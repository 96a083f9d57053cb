# Copyright (c) OpenMMLab. All rights reserved.
# mmdet's Mask2FormerVideo with MDQE's near-online inference: per-frame
# features once, then every clip of `clip_length` frames (stride 1) decoded,
# linked by ClipTracker and aggregated, so a video of any length is segmented
# with flat memory (the stock predict decodes the whole video as one clip).
# Training is unchanged.
#
# The base is the stock config shrunk for the synthetic videos (CPU). For the
# full-size model on real YouTube-VIS 2021, swap the base:
#   _base_ = 'mmdet::mask2former_vis/mask2former_r50_8xb2-8e_youtubevis2021.py'
# and keep the lines below (with custom_imports, which the stock lacks).
#
#   CFG=configs/mixing/mask2former-video_near-online_synthetic.py
#   python tools/train.py $CFG
#   python tools/test.py $CFG \
#       work_dirs/mask2former-video_near-online_synthetic/iter_2000.pth
_base_ = './_base_/mask2former-video_r18-tiny_synthetic.py'
custom_imports = dict(imports=['mdqe_mm'], allow_failed_imports=False)

model = dict(
    type='NearOnlineMask2FormerVideo',
    # keeps test videos as uint8 on the CPU, normalised window by window
    # (training: exactly TrackDataPreprocessor)
    data_preprocessor=dict(type='VideoStreamDataPreprocessor'),
    test_cfg=dict(
        clip_length=4,
        window_length=30,
        cls_thr=0.1,
        max_per_frame=10,
        max_num_instances=100))

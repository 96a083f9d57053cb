# Copyright (c) OpenMMLab. All rights reserved.
# Baseline of the video comparisons: mmdet's stock Mask2FormerVideo, shrunk
# for a CPU, on the synthetic occlusion videos (see the base for what
# differs from the stock config). Train it beside a mixing config, e.g.
#
#   python tools/train.py \
#       configs/mixing/mask2former-video_r18-tiny_synthetic.py
#   python tools/train.py \
#       configs/mixing/mask2former-video_r18-tiny_repulsion_synthetic.py
_base_ = './_base_/mask2former-video_r18-tiny_synthetic.py'

# Copyright (c) OpenMMLab. All rights reserved.
# Stock Mask2FormerVideo + MDQE's grid-guided, frame-associated query
# initialisation: the decoder starts from one objectness peak per cell of a
# g x g grid on the pixel decoder's stride-8 features of every frame,
# associated across the clip, instead of learned content embeddings
# (GridQueryMask2FormerTrackHead); the selection's semantic-map and
# contrastive losses are added. num_queries must be a square: 9 = 3 x 3
# here (the base has 10); 100 = 10 x 10 at full size.
#
# On YouTube-VIS 2021 at full size:
#   _base_ = 'mmdet::mask2former_vis/mask2former_r50_8xb2-8e_youtubevis2021.py'
# plus custom_imports = dict(imports=['mdqe_mm']); the lines below stay.
_base_ = './_base_/mask2former-video_r18-tiny_synthetic.py'

model = dict(
    track_head=dict(
        type='GridQueryMask2FormerTrackHead',
        num_queries=9,
        query_selection=dict(
            type='GridQuerySelection', embed_channels=16, train_window=2)))

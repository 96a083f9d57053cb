# Copyright (c) OpenMMLab. All rights reserved.
# MDQE with a ResNet-50 backbone (MDQE_SPEC §1-§4).
# Derived configs set num_classes in BOTH model.query_selection and
# model.track_head (25 for OVIS, 40 for YouTube-VIS 2019/2021).
mdqe_num_frames = 4  # T of a training clip (SAMPLING_FRAME_NUM)
mdqe_embed_dims = 256  # C (HIDDEN_DIM)
mdqe_num_classes = 40

model = dict(
    type='MDQE',
    # T; the head and its decoder take it from here (set it only once)
    num_frames=mdqe_num_frames,
    data_preprocessor=dict(
        type='TrackDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_mask=True,
        pad_size_divisor=32),
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(1, 2, 3),  # strides 8/16/32 (res3, res4, res5)
        # FrozenBN as in the reference: statistics and affine frozen, but
        # no stage frozen (FREEZE_AT=-1 from add_swinl_config)
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        # with frozen BN, a zero-initialised last BN would keep every
        # residual branch dead when training without pretrained weights
        zero_init_residual=False,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    # input projection: 1x1 conv + GN(32) per level, plus a 3x3 stride-2
    # conv + GN(32) on the last backbone map (stride 64); convs keep biases
    neck=dict(
        type='ChannelMapper',
        in_channels=[512, 1024, 2048],
        kernel_size=1,
        out_channels=mdqe_embed_dims,
        bias=True,
        act_cfg=None,
        norm_cfg=dict(type='GN', num_groups=32),
        num_outs=4),
    positional_encoding=dict(num_feats=mdqe_embed_dims // 2, normalize=True),
    encoder=dict(  # MDQEDeformableEncoder
        type='MDQEDeformableEncoder',
        num_layers=6,
        layer_cfg=dict(
            embed_dims=mdqe_embed_dims,
            num_heads=8,
            num_levels=4,
            num_points=4,
            ffn_ratio=4)),
    query_selection=dict(  # grid-guided selection + association (§2, §3)
        type='GridQuerySelection',
        num_classes=mdqe_num_classes,
        embed_dims=mdqe_embed_dims,
        num_queries=196,  # 14 x 14 grid
        sem_level=0,  # stride-8 level
        embed_channels=64,
        train_window=5,  # WINDOW_INTER_FRAME_ASSOCIATION (7 for YTVIS)
        test_window=None,  # None = train_window / 2
        true_division_y=True,  # reference quirk, see GridQuerySelection
        loss_sem=dict(
            type='DistanceWeightedFocalLoss',
            loss_weight=2.0,
            num_points=12544),
        loss_reid=dict(
            type='QueryContrastiveLoss',
            loss_weight_ctt=0.5,
            loss_weight_aux=0.5,
            neg_per_frame=50)),
    track_head=dict(
        type='MDQEHead',
        num_classes=mdqe_num_classes,
        embed_dims=mdqe_embed_dims,
        decoder=dict(
            type='MDQETwoStreamDecoder',
            num_layers=6,  # 7 supervised outputs with the warm-up step
            embed_dims=mdqe_embed_dims,
            num_heads=8,
            num_levels=4,
            num_points=4,
            ffn_ratio=4,
            use_temporal_attn=True),
        mask_proto=dict(
            type='MDQEMaskPrototypeNet',
            embed_dims=mdqe_embed_dims,
            num_prototypes=mdqe_embed_dims // 8),
        loss_cls=dict(
            type='VideoQueryFocalLoss', alpha=0.25, gamma=2.0,
            loss_weight=2.0),
        loss_bbox=dict(type='L1Loss', loss_weight=2.0),
        # reference GIoU: a disjoint pair costs 1 with no gradient (mmdet's
        # GIoULoss charges up to 2 and pulls it)
        loss_iou=dict(type='OverlapGIoULoss', loss_weight=2.0),
        loss_mask=dict(
            type='InterInstanceMaskRepulsionLoss',
            loss_weight_bce=4.0,
            loss_weight_dice=4.0,
            nearby_iou_thr=0.1,
            # reference quirk: two instances both absent in a frame count
            # as nearby (IoU of the two 0.05 x 0.05 origin boxes is 1)
            absent_boxes_are_nearby=True)),
    train_cfg=dict(
        query_selection=dict(
            assigner=dict(
                type='ClipPeakAssigner',
                # reference quirk: a later, larger instance overwrites the
                # label of a pixel claimed by a smaller one (dist target 0)
                overwrite_claimed_pixels=True)),
        track_head=dict(
            assigner=dict(
                type='DynamicKVideoAssigner',
                cls_cost_weight=1.0,
                box_cost_weight=2.0,
                mask_cost_weight=4.0,
                center_radius=2.5 / 32,
                out_of_box_cost=100.0,
                num_candidates=10,
                min_k=2))),
    test_cfg=dict(
        clip_batch_size=None,  # clips decoded together by decode_clips
        clip_length=4,  # SAMPLING_FRAME_NUM_TEST
        window_length=30,  # WINDOW_FRAME_NUM_TEST
        clip_stride=1,  # CLIP_STRIDE (only 1 is supported)
        # video score: 0.75 mean + 0.25 max over windows of window_length
        # clips, a window's mean carried into the next (reference); 'clip'
        # takes mean and max over the track's clips instead
        score_aggregation='window',
        # at each window boundary, carry the window's mean masks, clip-query
        # memory and scores into the next window as one clip (reference)
        window_carry=True,
        merge_on_cpu=False,  # MERGE_ON_CPU: link clips on the CPU
        cls_thr=0.1,  # APPLY_CLS_THRES
        max_num_instances=120,
        max_per_frame=15))  # DETECTIONS_PER_IMAGE

# Copyright (c) OpenMMLab. All rights reserved.
# MDQE's VIS recipe (MDQE_SPEC.md section 6): AdamW, backbone lr x0.1,
# weight decay on every parameter, full-model grad-norm clip 0.01,
# 12k iterations with one x0.1 step at 10k, no effective warm-up.
max_iters = 12000
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=2000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.01, norm_type=2),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))

param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iters,
        by_epoch=False,
        milestones=[10000],
        gamma=0.1)
]

# Reference batch: 8 GPUs x 2 clips.
auto_scale_lr = dict(enable=False, base_batch_size=16)

# Copyright (c) OpenMMLab. All rights reserved.
from mmdet.models.tracking_heads import Mask2FormerTrackHead
from mmdet.registry import MODELS

from .repulsion_mask_loss import RepulsionMaskLossMixin


@MODELS.register_module()
class RepulsionMask2FormerTrackHead(RepulsionMaskLossMixin,
                                    Mask2FormerTrackHead):
    """mmdet's ``Mask2FormerTrackHead`` trained with MDQE's repulsion loss.

    Video instance segmentation (Mask2FormerVideo): every matched query's
    clip mask is pushed off the pixels of the other instances of the same
    clip whose boxes overlap its own (IoU > 0.1) in any frame, see
    :class:`RepulsionMaskLossMixin`; the T frames of a pair form one row of
    ``T * num_points`` sampled points, as MDQE's dense loss takes all
    ``T * h * w`` pixels. Everything else is the stock head's.

    Scale: both terms are per pair (MDQE's normalisation), whereas the stock
    video head sums its BCE and dice over the T frames of a pair, so with
    equal weights these terms are about 1/T of the stock ones (about half
    at T=2); scale ``loss_weight_bce`` / ``loss_weight_dice`` by T for the
    stock balance against the class loss.
    """

# Copyright (c) OpenMMLab. All rights reserved.
from mmdet.models.dense_heads import Mask2FormerHead
from mmdet.registry import MODELS

from .repulsion_mask_loss import RepulsionMaskLossMixin


@MODELS.register_module()
class RepulsionMask2FormerHead(RepulsionMaskLossMixin, Mask2FormerHead):
    """mmdet's ``Mask2FormerHead`` trained with MDQE's repulsion loss.

    Image instance segmentation: every matched query's mask is pushed off
    the pixels of the other ground-truth instances whose boxes overlap its
    own (IoU > 0.1) in the same image, see :class:`RepulsionMaskLossMixin`.
    Everything else (queries, matching, class loss, inference) is the stock
    head's. Switch a Mask2Former config by changing the head's ``type`` and
    its two mask losses (``configs/mixing/``).
    """

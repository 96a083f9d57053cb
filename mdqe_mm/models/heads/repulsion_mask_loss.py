# Copyright (c) OpenMMLab. All rights reserved.
"""MDQE's inter-instance repulsion loss for mmdet's Mask2Former heads."""
from typing import List, Tuple

import torch
from mmdet.models.utils import get_uncertain_point_coords_with_randomness
from mmdet.utils import ConfigType, OptConfigType, reduce_mean
from mmengine.structures import InstanceData
from torch import Tensor

from ..losses import (InterInstanceMaskRepulsionLoss,
                      masks_to_normalised_boxes, sample_repulsion_points)

__all__ = ['RepulsionMaskLossMixin']


class RepulsionMaskLossMixin:
    """Replaces a Mask2Former head's mask losses by the repulsion loss.

    Mixed in before mmdet's ``Mask2FormerHead`` (image masks, (B, Q, h, w))
    or ``Mask2FormerTrackHead`` (video masks, (B, Q, T, h, w)). The class
    loss and the Hungarian matching stay the stock ones. For the matched
    (prediction, target) pairs it

    1. finds the nearby pairs: boxes of the binarised target masks, IoU >
       ``nearby_iou_thr`` (0.1) in any frame, within one image or clip
       (:meth:`InterInstanceMaskRepulsionLoss.nearby_matrix`);
    2. picks the head's usual ``num_points`` importance-sampled points per
       mask (and per frame), as the stock loss does;
    3. samples prediction, target and nearby union at these points and takes
       the weighted BCE and repulsion dice over them
       (:func:`sample_repulsion_points`).

    ``loss_mask`` must be an ``InterInstanceMaskRepulsionLoss``; it returns
    both ``loss_mask`` and ``loss_dice``, so ``loss_dice`` must be None.
    In a config derived from a stock one::

        loss_mask=dict(_delete_=True, type='InterInstanceMaskRepulsionLoss',
                       loss_weight_bce=5.0, loss_weight_dice=5.0),
        loss_dice=None

    Args:
        loss_mask (dict): Config of the ``InterInstanceMaskRepulsionLoss``.
            Defaults to weights 5.0 / 5.0, those of Mask2Former's BCE and
            dice.
        loss_dice (dict, optional): Must be None.
    """

    def __init__(self,
                 *args,
                 loss_mask: ConfigType = dict(
                     type='InterInstanceMaskRepulsionLoss',
                     loss_weight_bce=5.0,
                     loss_weight_dice=5.0),
                 loss_dice: OptConfigType = None,
                 **kwargs) -> None:
        name = self.__class__.__name__
        if loss_dice is not None:
            raise ValueError(
                f'{name}: the repulsion loss (loss_mask) gives loss_dice '
                'itself; set loss_dice=None instead of '
                f'{dict(loss_dice).get("type", loss_dice)!r}')
        # the parent builds a dice loss that is never called; it is removed
        super().__init__(
            *args,
            loss_mask=loss_mask,
            loss_dice=dict(type='DiceLoss'),
            **kwargs)
        del self.loss_dice
        if not isinstance(self.loss_mask, InterInstanceMaskRepulsionLoss):
            raise TypeError(
                f'{name}: loss_mask must be an InterInstanceMaskRepulsionLoss,'
                f' got {type(self.loss_mask).__name__} (in a config derived '
                'from a stock one, replace the dict with _delete_=True)')

    def _loss_by_feat_single(self, cls_scores: Tensor, mask_preds: Tensor,
                             batch_gt_instances: List[InstanceData],
                             batch_img_metas: List[dict]) -> Tuple[Tensor]:
        """Losses of one decoder layer: stock class loss, repulsion masks.

        Args:
            cls_scores (Tensor): shape (B, Q, K + 1).
            mask_preds (Tensor): shape (B, Q, h, w) (images) or
                (B, Q, T, h, w) (videos).
            batch_gt_instances (list[:obj:`InstanceData`]): ``labels`` and
                ``masks`` (G, H, W) or (G, T, H, W) per image / video.
            batch_img_metas (list[dict]): Meta information.

        Returns:
            tuple[Tensor]: ``loss_cls``, ``loss_mask``, ``loss_dice``.
        """
        num_imgs = cls_scores.size(0)
        (labels_list, label_weights_list, mask_targets_list, mask_weights_list,
         avg_factor) = self.get_targets(
             [cls_scores[i] for i in range(num_imgs)],
             [mask_preds[i]
              for i in range(num_imgs)], batch_gt_instances, batch_img_metas)
        labels = torch.stack(labels_list, dim=0).flatten(0, 1)
        label_weights = torch.stack(label_weights_list, dim=0).flatten(0, 1)
        # matched targets, in (image, query) order like the predictions below
        mask_targets = torch.cat(mask_targets_list, dim=0)
        mask_weights = torch.stack(mask_weights_list, dim=0)

        class_weight = cls_scores.new_tensor(self.class_weight)
        loss_cls = self.loss_cls(
            cls_scores.flatten(0, 1),
            labels,
            label_weights,
            avg_factor=class_weight[labels].sum())

        num_total_masks = reduce_mean(cls_scores.new_tensor([avg_factor]))
        num_total_masks = max(num_total_masks, 1)

        positive = mask_weights > 0
        pos_preds = mask_preds[positive]
        if mask_targets.shape[0] == 0:
            zero = pos_preds.sum()
            return loss_cls, zero, zero.clone()
        if pos_preds.dim() == 3:  # image masks: one frame per "clip"
            pos_preds = pos_preds[:, None]
            mask_targets = mask_targets[:, None]
        clip_inds = positive.nonzero()[:, 0]

        nearby = self.loss_mask.nearby_matrix(
            masks_to_normalised_boxes(mask_targets.float()), clip_inds)
        with torch.no_grad():
            point_coords = get_uncertain_point_coords_with_randomness(
                pos_preds.flatten(0, 1)[:, None], None, self.num_points,
                self.oversample_ratio, self.importance_sample_ratio)
        points = sample_repulsion_points(pos_preds, mask_targets, nearby,
                                         point_coords)
        losses = self.loss_mask(
            points['logits'],
            points['targets'],
            avg_factor=num_total_masks,
            nearby_union=points['union'])
        return loss_cls, losses['loss_mask'], losses['loss_dice']

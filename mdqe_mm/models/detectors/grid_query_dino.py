# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, Tuple, Union

import torch
from mmdet.models.detectors import DINO
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList, SampleList
from mmdet.utils import ConfigType
from torch import Tensor

from ..necks.query_selection import level_start_index

__all__ = ['GridQueryDINO', 'peak_tokens']


def peak_tokens(query_xy: Tensor, spatial_shapes: Tensor,
                level: int) -> Tensor:
    """Index of the level-``level`` token under each query point.

    Args:
        query_xy (Tensor): points (x, y) in [0, 1], shape (B, Q, 2).
        spatial_shapes (Tensor): shape (L, 2).
        level (int): The level of the tokens.

    Returns:
        Tensor: long indices into the flattened tokens, shape (B, Q).
    """
    height, width = spatial_shapes[level]
    start = level_start_index(spatial_shapes)[level]
    cols = (query_xy[..., 0] * width).long().clamp(min=0, max=width - 1)
    rows = (query_xy[..., 1] * height).long().clamp(min=0, max=height - 1)
    return start + rows * width + cols


@MODELS.register_module()
class GridQueryDINO(DINO):
    """DINO whose decoder queries come from MDQE's grid-guided selection.

    Stock DINO takes the top-k encoder tokens by class score as positions
    and learned embeddings as query contents. Here a
    :class:`GridQuerySelection` (one frame per image) scores the stride-8
    encoder level with a semantic head and takes one objectness peak per
    cell of a ``g x g`` grid (``num_queries = g * g``, e.g. 900 = 30 x 30),
    so the queries are spread over the image instead of piling up on the
    most salient object. Per query:

    - content: the grid-sampled encoder features at the peak (mean over
      levels), as MDQE's initial queries;
    - reference box: DINO's own encoder proposal (class and box branches)
      at the peak's stride-8 token, detached as in DINO; its class score and
      box still get DINO's encoder loss.

    The selection's losses (``loss_sem``, semantic map of
    :class:`DistanceWeightedFocalLoss`; ``loss_reid_*``, zero for one-frame
    clips) are added to the detector's. Their targets come from the ground
    truth masks when the pipeline loads them (``with_mask=True``), else from
    the boxes drawn as filled rectangles.

    Args:
        query_selection (dict): Config of the ``GridQuerySelection``;
            ``num_queries``, ``embed_dims`` and ``num_classes`` default to
            the detector's.
        *args, **kwargs: Those of mmdet's ``DINO``.
    """

    def __init__(self,
                 *args,
                 query_selection: ConfigType = dict(type='GridQuerySelection'),
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        selection = dict(query_selection)
        selection.setdefault('num_queries', self.num_queries)
        selection.setdefault('embed_dims', self.embed_dims)
        selection.setdefault('num_classes', self.bbox_head.num_classes)
        if selection['num_queries'] != self.num_queries:
            raise ValueError(
                'GridQueryDINO: query_selection.num_queries '
                f'({selection["num_queries"]}) must equal num_queries '
                f'({self.num_queries})')
        self.query_selection = MODELS.build(selection)
        # the learned content queries of DINO are replaced by the selection
        del self.query_embedding

    def init_weights(self) -> None:
        """DINO's initialisation, without its learned content queries."""
        # DINO.init_weights initialises self.query_embedding; give it a
        # throw-away one rather than copy the rest of its body.
        self.query_embedding = torch.nn.Embedding(1, self.embed_dims)
        try:
            super().init_weights()
        finally:
            del self.query_embedding
        self.query_selection.init_weights()

    def pre_decoder(
        self,
        memory: Tensor,
        memory_mask: Tensor,
        spatial_shapes: Tensor,
        batch_data_samples: OptSampleList = None,
    ) -> Tuple[Dict]:
        """Grid-selected queries and their reference boxes.

        Args:
            memory (Tensor): encoder output, shape (B, S, C).
            memory_mask (Tensor): padding mask, shape (B, S).
            spatial_shapes (Tensor): shape (L, 2).
            batch_data_samples (list[:obj:`DetDataSample`], optional): The
                batch data samples (ground truth, for denoising queries).

        Returns:
            tuple[dict]: ``decoder_inputs_dict`` (``query`` (B, Q', C),
            ``memory``, ``reference_points`` (B, Q', 4), ``dn_mask``) and
            ``head_inputs_dict`` (training: ``enc_outputs_class``,
            ``enc_outputs_coord``, ``dn_meta`` and ``query_selection``, the
            selection's outputs for its losses; else empty).
        """
        decoder_layer = self.decoder.num_layers
        selection = self.query_selection(
            memory,
            spatial_shapes,
            level_start_index(spatial_shapes),
            num_frames=1)
        output_memory, output_proposals = self.gen_encoder_output_proposals(
            memory, memory_mask, spatial_shapes)
        tokens = peak_tokens(selection['query_xy'], spatial_shapes,
                             self.query_selection.sem_level)
        output_memory = torch.gather(
            output_memory, 1,
            tokens[..., None].expand(-1, -1, output_memory.shape[-1]))
        output_proposals = torch.gather(output_proposals, 1,
                                        tokens[..., None].expand(-1, -1, 4))
        enc_outputs_class = self.bbox_head.cls_branches[decoder_layer](
            output_memory)
        coords_unact = self.bbox_head.reg_branches[decoder_layer](
            output_memory) + output_proposals
        enc_outputs_coord = coords_unact.sigmoid()
        coords_unact = coords_unact.detach()

        query = selection['query']
        if self.training:
            dn_label_query, dn_bbox_query, dn_mask, dn_meta = \
                self.dn_query_generator(batch_data_samples)
            query = torch.cat([dn_label_query, query], dim=1)
            reference_points = torch.cat([dn_bbox_query, coords_unact], dim=1)
        else:
            reference_points = coords_unact
            dn_mask, dn_meta = None, None
        decoder_inputs_dict = dict(
            query=query,
            memory=memory,
            reference_points=reference_points.sigmoid(),
            dn_mask=dn_mask)
        head_inputs_dict = dict(
            enc_outputs_class=enc_outputs_class,
            enc_outputs_coord=enc_outputs_coord,
            dn_meta=dn_meta,
            query_selection=selection) if self.training else dict()
        return decoder_inputs_dict, head_inputs_dict

    def loss(self, batch_inputs: Tensor,
             batch_data_samples: SampleList) -> Union[dict, list]:
        """DINO's losses plus the query-selection losses.

        Args:
            batch_inputs (Tensor): images, shape (B, 3, H, W).
            batch_data_samples (list[:obj:`DetDataSample`]): with
                ``gt_instances`` (``bboxes``, ``labels``, optionally
                ``masks``).

        Returns:
            dict[str, Tensor]: The losses.
        """
        img_feats = self.extract_feat(batch_inputs)
        head_inputs_dict = self.forward_transformer(img_feats,
                                                    batch_data_samples)
        selection = head_inputs_dict.pop('query_selection')
        losses = self.bbox_head.loss(
            **head_inputs_dict, batch_data_samples=batch_data_samples)
        pad_shape = tuple(batch_inputs.shape[-2:])
        clip_targets = [
            self.query_selection.targets_from_masks(
                *self._instance_masks(sample, pad_shape))
            for sample in batch_data_samples
        ]
        losses.update(self.query_selection.loss(selection, clip_targets))
        return losses

    @staticmethod
    def _instance_masks(sample,
                        pad_shape: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
        """Masks (G, 1, H_pad, W_pad) and labels (G,) of one image: the GT
        masks when loaded, else the GT boxes as filled rectangles."""
        gt = sample.gt_instances
        height, width = pad_shape
        device = gt.labels.device
        masks = gt.get('masks', None)
        if masks is not None:
            dense = masks.to_tensor(torch.bool, device) if hasattr(
                masks, 'to_tensor') else masks.bool()
            padded = dense.new_zeros((dense.shape[0], height, width))
            h, w = min(height, dense.shape[-2]), min(width, dense.shape[-1])
            padded[:, :h, :w] = dense[:, :h, :w]
            return padded[:, None], gt.labels
        boxes = gt.bboxes
        boxes = boxes.tensor if hasattr(boxes, 'tensor') else boxes
        ys = torch.arange(height, device=device, dtype=torch.float32) + 0.5
        xs = torch.arange(width, device=device, dtype=torch.float32) + 0.5
        inside_x = (xs[None] >= boxes[:, 0:1]) & (xs[None] < boxes[:, 2:3])
        inside_y = (ys[None] >= boxes[:, 1:2]) & (ys[None] < boxes[:, 3:4])
        masks = inside_y[:, :, None] & inside_x[:, None, :]
        return masks[:, None], gt.labels

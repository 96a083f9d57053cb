# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, List, Optional, Sequence, Tuple

import torch.nn as nn
from mmdet.registry import MODELS
from mmdet.utils import OptConfigType, OptMultiConfig
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor


@MODELS.register_module()
class LearnedQuerySelection(BaseModule):
    """Learned, input-independent object queries: MDQE's ablation baseline
    without grid-guided initialisation (MDQE-internal).

    A drop-in for :class:`GridQuerySelection` in :class:`MDQE`'s
    ``query_selection``: the Q queries are learned embeddings and their
    reference points ``sigmoid(Linear(pos))`` come from learned position
    embeddings, as in Deformable DETR and SeqFormer. Every frame of every
    clip gets the same queries, so there is nothing to associate between
    frames and no query-initialisation loss.

    Args:
        num_classes (int): K; only checked against the head's.
        embed_dims (int): C. Defaults to 256.
        num_queries (int): Q. Defaults to 196.
        train_cfg (dict, optional): Accepted so that a config written for
            :class:`GridQuerySelection` (``train_cfg.query_selection``, its
            assigner) can switch ``type`` alone; nothing here uses it.
        init_cfg (dict or list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 num_classes: int,
                 embed_dims: int = 256,
                 num_queries: int = 196,
                 train_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_queries < 1 or num_classes < 1:
            raise ValueError('num_queries and num_classes must be >= 1, got '
                             f'{num_queries} and {num_classes}')
        self.num_classes = num_classes
        self.embed_dims = embed_dims
        self.num_queries = num_queries
        # GridQuerySelection's interface (MDQE.decode_clips reads it)
        self.test_window = 0.
        self.query_content = nn.Embedding(num_queries, embed_dims)
        self.query_pos = nn.Embedding(num_queries, embed_dims)
        self.reference_points = nn.Linear(embed_dims, 2)

    def init_weights(self) -> None:
        """Normal embeddings, Xavier-uniform reference-point projection with
        zero bias (Deformable DETR), so the initial points are spread by
        the random position embeddings."""
        super().init_weights()
        nn.init.normal_(self.query_content.weight)
        nn.init.normal_(self.query_pos.weight)
        nn.init.xavier_uniform_(self.reference_points.weight)
        nn.init.zeros_(self.reference_points.bias)

    def forward(
        self,
        memory: Tensor,
        spatial_shapes: Tensor,
        level_start_index: Tensor,
        num_frames: int,
        window: Optional[float] = None,
        level_shapes: Optional[Sequence[Tuple[int, int]]] = None
    ) -> Dict[str, Tensor]:
        """The learned queries for N clips of T frames.

        Args:
            memory (Tensor): encoder output, shape (N*T, S, C); only its
                batch size and device are used.
            spatial_shapes (Tensor): unused, (L, 2).
            level_start_index (Tensor): unused, (L,).
            num_frames (int): T.
            window (float, optional): unused.
            level_shapes (Sequence[tuple[int, int]], optional): unused.

        Returns:
            dict[str, Tensor]: ``query`` (N*T, Q, C) and ``query_xy``
            (N*T, Q, 2) in [0, 1].
        """
        num_maps = memory.shape[0]
        if num_frames < 1 or num_maps % num_frames != 0:
            raise ValueError(f'{num_maps} frame maps cannot be split into '
                             f'clips of num_frames={num_frames}')
        query_xy = self.reference_points(self.query_pos.weight).sigmoid()
        return dict(
            query=self.query_content.weight[None].expand(num_maps, -1, -1),
            query_xy=query_xy[None].expand(num_maps, -1, -1))

    def loss(self, outs: Dict[str, Tensor],
             clip_targets: List[InstanceData]) -> Dict[str, Tensor]:
        """No query-initialisation loss: the queries learn through the
        decoder's losses only.

        Returns:
            dict[str, Tensor]: empty.
        """
        return dict()

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_classes={self.num_classes}, '
                f'embed_dims={self.embed_dims}, '
                f'num_queries={self.num_queries})')

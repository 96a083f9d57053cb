# Copyright (c) OpenMMLab. All rights reserved.
import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from mmdet.models.layers.transformer.utils import MLP
from torch import Tensor


@contextlib.contextmanager
def fp32_region(device_type: str) -> Iterator[None]:
    """Disable autocast inside, as the reference runs its transformer in
    fp32 (``autocast(enabled=False)``). Inputs still need ``.float()``.

    Args:
        device_type (str): ``tensor.device.type`` of the inputs.
    """
    if device_type in ('cuda', 'cpu'):
        with torch.autocast(device_type=device_type, enabled=False):
            yield
    else:
        yield


class GELUMLP(MLP):
    """mmdet's DETR ``MLP`` with GELU instead of ReLU between the layers,
    as MDQE's prediction heads use (spec §1.6). Its parameters are named
    ``layers.{i}.weight/bias`` like the reference ``MLP``.

    Args:
        input_dim (int): Input channels.
        hidden_dim (int): Hidden channels.
        output_dim (int): Output channels.
        num_layers (int): Number of Linear layers.
    """

    def forward(self, x: Tensor) -> Tensor:
        """Apply the layers.

        Args:
            x (Tensor): shape (..., input_dim).

        Returns:
            Tensor: shape (..., output_dim).
        """
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < self.num_layers - 1:
                x = F.gelu(x)
        return x

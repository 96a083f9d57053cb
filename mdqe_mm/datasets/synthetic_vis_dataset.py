# Copyright (c) OpenMMLab. All rights reserved.
from typing import Optional

from mmdet.registry import DATASETS

from .synthetic import ensure_synthetic_vis
from .vis_dataset import VISDataset


@DATASETS.register_module()
class SyntheticVISDataset(VISDataset):
    """:class:`VISDataset` over the generated occlusion videos, generating
    them under ``data_root`` on first use.

    If ``data_root/annotations/{train,valid}.json`` are missing, the data set
    is written by :func:`mdqe_mm.datasets.synthetic.ensure_synthetic_vis`
    with ``generator_cfg`` before loading; existing files are reused as they
    are. The class list defaults to the ``'synthetic_vis'`` preset.

    Args:
        generator_cfg (dict, optional): Arguments of
            :func:`mdqe_mm.datasets.synthetic.generate_synthetic_vis`
            (``num_train_videos``, ``num_frames``, ``height``, ``seed``,
            ...). Defaults to the default quick-start set.
        *args, **kwargs: Passed to :class:`VISDataset`.
    """

    def __init__(self,
                 *args,
                 generator_cfg: Optional[dict] = None,
                 preset: Optional[str] = 'synthetic_vis',
                 **kwargs) -> None:
        data_root = kwargs.get('data_root')
        if not data_root:
            raise ValueError('SyntheticVISDataset needs data_root, the '
                             'folder where the videos are (or will be) '
                             'generated')
        self.generator_cfg = dict(generator_cfg or dict())
        ensure_synthetic_vis(data_root, **self.generator_cfg)
        super().__init__(*args, preset=preset, **kwargs)

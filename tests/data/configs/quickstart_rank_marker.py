# Copyright (c) OpenMMLab. All rights reserved.
# The quick-start config plus a hook with which every rank records its
# iterations (tests/data/rank_marker_hook.py must be importable).
_base_ = ['../../../configs/quickstart/mdqe_tiny_1xb2-4k_synthetic.py']

custom_imports = dict(
    imports=['mdqe_mm', 'rank_marker_hook'], allow_failed_imports=False)
custom_hooks = [dict(type='RankMarkerHook')]

# Copyright (c) OpenMMLab. All rights reserved.
import os.path as osp

import pytest
import torch.nn as nn

from .conftest import REPO_ROOT

TINY_CONFIG = osp.join(REPO_ROOT, 'configs', '_base_', 'models',
                       'mdqe_tiny.py')


@pytest.fixture(scope='module')
def count_params(load_tool):
    return load_tool('tools/analysis_tools/count_params.py')


class _Toy(nn.Module):

    def __init__(self):
        super().__init__()
        self.frozen = nn.Linear(3, 2)  # 8 parameters
        self.frozen.requires_grad_(False)
        self.shared = nn.Linear(2, 2)  # 6 parameters
        self.block = nn.Sequential(self.shared, nn.ReLU())
        self.head = nn.Linear(2, 1)  # 3 parameters


def test_table_counts_shared_parameters_once(count_params):
    rows = count_params.parameter_table(_Toy(), depth=2)
    by_name = {name: (total, trainable) for name, total, trainable in rows}
    assert by_name[''] == (8 + 6 + 3, 6 + 3)
    assert by_name['frozen'] == (8, 0)
    assert by_name['shared'] == (6, 6)
    assert by_name['block'] == (6, 6)
    assert by_name['block.0'] == (6, 6)
    assert 'block.1' not in by_name  # parameter-free modules are left out
    assert by_name['head'] == (3, 3)
    # depth 0: the whole model only
    assert [r[0] for r in count_params.parameter_table(_Toy(), 0)] == ['']


def test_cli_on_tiny_config(count_params, capsys):
    result = count_params.main([TINY_CONFIG, '--depth', '1'])
    out = capsys.readouterr().out
    from mmdet.registry import MODELS
    from mmengine.config import Config
    model = MODELS.build(Config.fromfile(TINY_CONFIG).model)
    expected = sum(p.numel() for p in model.parameters())
    assert result['total'] == expected
    assert result['trainable'] <= expected
    for child in ('backbone', 'neck', 'encoder', 'query_selection',
                  'track_head'):
        assert f'\n{child} ' in out
    assert f'{expected:,} parameters' in out


def test_cli_clear_errors(count_params, tmp_path):
    with pytest.raises(SystemExit, match='config file not found'):
        count_params.main([str(tmp_path / 'missing.py')])
    no_model = tmp_path / 'no_model.py'
    no_model.write_text('x = 1\n')
    with pytest.raises(SystemExit, match='defines no `model`'):
        count_params.main([str(no_model)])
    with pytest.raises(SystemExit):
        count_params.main([TINY_CONFIG, '--depth', '-1'])

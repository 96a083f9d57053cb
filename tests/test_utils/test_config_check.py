# Copyright (c) OpenMMLab. All rights reserved.
"""mdqe_mm.utils.config_check: unknown keys and config syntax errors."""
import pytest

from mdqe_mm.utils import (ConfigKeyError, ConfigSyntaxError, check_cfg_keys,
                           load_config)


def test_unknown_keys_suggest_the_closest_accepted_key():
    allowed = ('window_length', 'cls_thr', 'clip_length')
    check_cfg_keys(dict(cls_thr=0.2), allowed, 'model.test_cfg')
    check_cfg_keys(None, allowed, 'model.test_cfg')
    with pytest.raises(
            ConfigKeyError,
            match=r"model.test_cfg: unknown key 'window_lenght' "
            r"\(did you mean 'window_length'\?\); accepted keys: "
            'clip_length, cls_thr, window_length'):
        check_cfg_keys(dict(window_lenght=3), allowed, 'model.test_cfg')
    with pytest.raises(
            ConfigKeyError,
            match=r"unknown keys 'cls_thresh' \(did you mean "
            r"'cls_thr'\?\), 'zzz'; accepted"):
        check_cfg_keys(dict(cls_thresh=0.9, zzz=1), allowed, 'x')
    with pytest.raises(ConfigKeyError, match='x must be a dict, got int'):
        check_cfg_keys(3, allowed, 'x')
    with pytest.raises(ConfigKeyError, match='accepted keys: none'):
        check_cfg_keys(dict(a=1), (), 'x')


def test_syntax_errors_name_file_and_line(tmp_path):
    good = tmp_path / 'good.py'
    good.write_text('a = dict(x=1)\n')
    assert load_config(str(good)).a.x == 1
    bad = tmp_path / 'bad.py'
    bad.write_text('a = 1\nb = dict(x=1,\nc = 3\n')
    with pytest.raises(ConfigSyntaxError) as info:
        load_config(str(bad))
    message = str(info.value)
    assert message.startswith(f'{bad}:2:')
    assert 'syntax error in config' in message
    assert 'b = dict(x=1,' in message
    # an error in a _base_ file names that file
    base_dir = tmp_path / '_base_'
    base_dir.mkdir()
    (base_dir / 'model.py').write_text('model = dict(\n    type="MDQE"\n'
                                       '    num_frames=4)\n')
    child = tmp_path / 'child.py'
    child.write_text("_base_ = ['./_base_/model.py']\nx = 1\n")
    with pytest.raises(ConfigSyntaxError) as info:
        load_config(str(child))
    assert str(info.value).startswith(f'{base_dir / "model.py"}:2:')
    with pytest.raises(FileNotFoundError, match='config file not found'):
        load_config(str(tmp_path / 'nope.py'))

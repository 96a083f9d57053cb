# Copyright (c) OpenMMLab. All rights reserved.
"""mdqe_mm.utils.safe_io: output-over-input refusal, atomic writes."""
import json
import os

import pytest

from mdqe_mm.utils import (OutputOverInputError, atomic_write,
                           check_output_not_input, check_writable,
                           load_json_file, same_path)


def test_output_resolving_to_an_input_is_refused(tmp_path):
    data = tmp_path / 'd'
    data.mkdir()
    ann = data / 'ann.json'
    ann.write_text('{"a": 1}')
    link = tmp_path / 'link.json'
    link.symlink_to(ann)
    hard = tmp_path / 'hard.json'
    os.link(ann, hard)
    for alias in (ann, link, hard, data / '..' / 'd' / 'ann.json',
                  os.path.relpath(ann)):
        assert same_path(alias, ann)
        with pytest.raises(
                OutputOverInputError, match='tool: output .*'
                'is the input file'):
            check_output_not_input(alias, [str(tmp_path / 'x'), ann], 'tool')
    check_output_not_input(tmp_path / 'new.json', [ann, None], 'tool')
    # a symlinked folder reaching the input
    (tmp_path / 'alias_dir').symlink_to(data)
    with pytest.raises(OutputOverInputError):
        check_output_not_input(tmp_path / 'alias_dir' / 'ann.json', ann)
    with pytest.raises(OutputOverInputError, match='inside the input'):
        check_output_not_input(
            data / 'sub' / 'o.json', [], 'tool', input_dirs=[data])
    assert ann.read_text() == '{"a": 1}'


def test_atomic_write_keeps_old_content_on_failure(tmp_path):
    out = tmp_path / 'out.json'
    out.write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_write(out) as f:
            f.write('half of the new content')
            raise RuntimeError('crash')
    assert out.read_text() == 'old'
    assert os.listdir(tmp_path) == ['out.json']  # no temporary file left
    with atomic_write(out) as f:
        f.write('new')
    assert out.read_text() == 'new'
    with atomic_write(tmp_path / 'b.bin', 'wb') as f:
        f.write(b'\x00\x01')
    assert (tmp_path / 'b.bin').read_bytes() == b'\x00\x01'
    umask = os.umask(0)
    os.umask(umask)
    assert (out.stat().st_mode & 0o777) == 0o666 & ~umask


def test_check_writable(tmp_path):
    check_writable(tmp_path / 'a.json')
    with pytest.raises(FileNotFoundError, match='does not exist'):
        check_writable(tmp_path / 'missing' / 'a.json', 'tool')
    check_writable(tmp_path / 'missing' / 'a.json', make_dirs=True)
    with pytest.raises(IsADirectoryError, match='is a folder'):
        check_writable(tmp_path)
    (tmp_path / 'file').write_text('')
    with pytest.raises(NotADirectoryError, match='is a file'):
        check_writable(tmp_path / 'file' / 'x.json', make_dirs=True)
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / 'locked'
        locked.mkdir()
        locked.chmod(0o500)
        with pytest.raises(PermissionError, match='not writable'):
            check_writable(locked / 'a.json')
        locked.chmod(0o700)


def test_load_json_file_names_the_file(tmp_path):
    good = tmp_path / 'good.json'
    good.write_text(json.dumps({'x': [1]}))
    assert load_json_file(good) == {'x': [1]}
    bad = tmp_path / 'bad.json'
    bad.write_text('{"x": [1,\n  2,,]}')
    with pytest.raises(
            ValueError,
            match=r'bad.json is not valid JSON: Expecting value '
            r'at line 2, column 5'):
        load_json_file(bad)
    empty = tmp_path / 'empty.json'
    empty.write_text('  \n')
    with pytest.raises(ValueError, match='empty.json is empty'):
        load_json_file(empty, 'annotation file')
    with pytest.raises(FileNotFoundError, match='nope.json does not exist'):
        load_json_file(tmp_path / 'nope.json')

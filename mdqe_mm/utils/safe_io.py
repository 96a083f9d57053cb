# Copyright (c) OpenMMLab. All rights reserved.
"""Safe file output for the command-line tools.

Every tool that writes files refuses, before any work, an output path that
resolves to one of its inputs (:func:`check_output_not_input`), checks that
it can write there (:func:`check_writable`), and writes through
:func:`atomic_write`, so a run that fails half-way leaves the files of an
earlier run untouched.
"""
import contextlib
import json
import os
import os.path as osp
import tempfile
from typing import IO, Iterator, Optional, Sequence, Union

__all__ = [
    'OutputOverInputError', 'same_path', 'check_output_not_input',
    'check_writable', 'atomic_write', 'load_json_file'
]

PathLike = Union[str, 'os.PathLike[str]']


class OutputOverInputError(ValueError):
    """An output path that is (or would overwrite) one of the inputs."""


def same_path(first: PathLike, second: PathLike) -> bool:
    """Whether two paths name the same file or folder.

    Symbolic links, ``..`` and relative paths are resolved; for two existing
    paths hard links count too (``os.path.samefile``).
    """
    first, second = os.fspath(first), os.fspath(second)
    if osp.exists(first) and osp.exists(second):
        try:
            return osp.samefile(first, second)
        except OSError:
            pass
    return osp.realpath(first) == osp.realpath(second)


def _is_inside(path: str, folder: str) -> bool:
    path, folder = osp.realpath(path), osp.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


PathOrPaths = Union[PathLike, Sequence[PathLike]]


def check_output_not_input(outputs: PathOrPaths,
                           inputs: PathOrPaths,
                           tool: str = '',
                           input_dirs: Sequence[PathLike] = ()) -> None:
    """Refuse outputs that would overwrite an input.

    Args:
        outputs (str | Sequence[str]): Files the tool will write.
        inputs (str | Sequence[str]): Files the tool reads. None entries are
            ignored.
        tool (str): Prefix of the message (the tool's name).
        input_dirs (Sequence[str]): Folders whose content the tool reads
            (e.g. frame folders); an output inside one of them is refused.

    Raises:
        OutputOverInputError: Naming the output and the input it resolves to.
    """
    if isinstance(outputs, (str, os.PathLike)):
        outputs = [outputs]
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    prefix = f'{tool}: ' if tool else ''
    for out in outputs:
        if out is None:
            continue
        for src in inputs:
            if src is not None and same_path(out, src):
                raise OutputOverInputError(
                    f'{prefix}output {os.fspath(out)} is the input file '
                    f'{os.fspath(src)} (resolves to '
                    f'{osp.realpath(os.fspath(src))}); choose another output '
                    'path, the input would be overwritten')
        for folder in input_dirs:
            if folder is not None and _is_inside(
                    os.fspath(out), os.fspath(folder)):
                raise OutputOverInputError(
                    f'{prefix}output {os.fspath(out)} lies inside the input '
                    f'folder {os.fspath(folder)}; choose another output path')


def check_writable(path: PathLike,
                   tool: str = '',
                   make_dirs: bool = False) -> None:
    """Check, before any work, that ``path`` can be written.

    Args:
        path (str): File that will be written (it may exist).
        tool (str): Prefix of the message.
        make_dirs (bool): Whether the tool creates missing parent folders;
            then the nearest existing parent must be writable.

    Raises:
        OSError: Naming the path and the reason.
    """
    path = os.fspath(path)
    prefix = f'{tool}: ' if tool else ''
    if osp.isdir(path):
        raise IsADirectoryError(
            f'{prefix}output {path} is a folder; give a file name')
    parent = osp.dirname(osp.abspath(path))
    if not osp.isdir(parent):
        if not make_dirs:
            raise FileNotFoundError(
                f'{prefix}cannot write {path}: folder {parent} does not '
                'exist')
        while not osp.isdir(parent):
            if osp.exists(parent):
                raise NotADirectoryError(
                    f'{prefix}cannot write {path}: {parent} is a file, not a '
                    'folder')
            parent = osp.dirname(parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(
            f'{prefix}cannot write {path}: folder {parent} is not writable')
    if osp.exists(path) and not os.access(path, os.W_OK):
        raise PermissionError(
            f'{prefix}cannot write {path}: the file exists and is read-only')


@contextlib.contextmanager
def atomic_write(path: PathLike,
                 mode: str = 'w',
                 encoding: Optional[str] = None) -> Iterator[IO]:
    """Open a temporary file next to ``path``; rename it onto ``path`` when
    the ``with`` block ends without an exception.

    On an exception the temporary file is removed and ``path`` keeps its old
    content (or stays absent). The rename is atomic on POSIX and Windows
    (``os.replace`` within one folder). The file gets the permissions a
    plain ``open`` would give it (umask applied).

    Args:
        path (str): Final file.
        mode (str): ``'w'`` (text) or ``'wb'`` (binary).
        encoding (str, optional): Text encoding; UTF-8 for text by default.

    Yields:
        file object: The open temporary file.
    """
    if mode not in ('w', 'wb'):
        raise ValueError(f'atomic_write: mode must be "w" or "wb", got {mode}')
    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    fd, tmp = tempfile.mkstemp(
        dir=folder, prefix=f'.{osp.basename(path)}.', suffix='.tmp')
    if mode == 'wb':
        f = os.fdopen(fd, 'wb')
    else:
        f = os.fdopen(fd, 'w', encoding=encoding or 'utf-8')
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def load_json_file(path: PathLike, what: str = 'JSON file'):
    """``json.load`` whose errors name the file.

    Raises:
        FileNotFoundError: When the file does not exist.
        ValueError: When it is not valid JSON; the message names the file,
            line and column, and says when the file is empty.
    """
    path = os.fspath(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} {path} does not exist')
    with open(path, 'rb') as f:
        raw = f.read()
    if not raw.strip():
        raise ValueError(f'{what} {path} is empty')
    try:
        return json.loads(raw)
    except UnicodeDecodeError as err:
        raise ValueError(f'{what} {path} is not a text (JSON) file: {err}')
    except json.JSONDecodeError as err:
        raise ValueError(f'{what} {path} is not valid JSON: {err.msg} at '
                         f'line {err.lineno}, column {err.colno}') from None

# Copyright (c) OpenMMLab. All rights reserved.
"""Config checks: unknown keys with a "did you mean", and syntax errors
that name the file and the line."""
import ast
import difflib
import os.path as osp
from typing import Iterable, Mapping, Optional

from mmengine.config import Config

__all__ = [
    'ConfigKeyError', 'check_cfg_keys', 'ConfigSyntaxError', 'load_config'
]


class ConfigKeyError(ValueError):
    """A config dict with a key that no code reads."""


def check_cfg_keys(cfg: Optional[Mapping], allowed: Iterable[str],
                   where: str) -> None:
    """Raise :class:`ConfigKeyError` for keys of ``cfg`` not in ``allowed``.

    Args:
        cfg (Mapping, optional): The dict given by the user (None = empty).
        allowed (Iterable[str]): Every key that the code reads.
        where (str): The dict's place in the config, e.g.
            ``'model.test_cfg'``.

    Raises:
        ConfigKeyError: Naming each unknown key with the closest accepted
            one (``difflib``) and listing the accepted keys.
    """
    if cfg is None:
        return
    if not isinstance(cfg, Mapping):
        raise ConfigKeyError(
            f'{where} must be a dict, got {type(cfg).__name__}: {cfg!r}')
    allowed = sorted(set(allowed))
    unknown = [key for key in cfg if key not in allowed]
    if not unknown:
        return
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        hint = f' (did you mean {close[0]!r}?)' if close else ''
        parts.append(f'{key!r}{hint}')
    accepted = ', '.join(allowed) if allowed else 'none'
    raise ConfigKeyError(
        f'{where}: unknown key{"s" if len(unknown) > 1 else ""} '
        f'{", ".join(parts)}; accepted keys: {accepted}')


class ConfigSyntaxError(SyntaxError):
    """A Python config (or one of its ``_base_`` files) that does not
    parse; ``str()`` is ``'file:line:column: message'`` plus the line."""


def _syntax_error_in(path: str, seen: set) -> Optional[SyntaxError]:
    """The first syntax error in ``path`` or its ``_base_`` files."""
    path = osp.abspath(path)
    if path in seen or not path.endswith('.py') or not osp.isfile(path):
        return None
    seen.add(path)
    with open(path, encoding='utf-8') as f:
        source = f.read()
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as err:
        err.filename = path
        return err
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == '_base_'):
            try:
                bases = ast.literal_eval(node.value)
            except ValueError:
                return None
            bases = [bases] if isinstance(bases, str) else list(bases)
            for base in bases:
                if isinstance(base, str) and '::' not in base:
                    found = _syntax_error_in(
                        osp.join(osp.dirname(path), base), seen)
                    if found is not None:
                        return found
    return None


def load_config(path: str) -> Config:
    """``Config.fromfile`` whose syntax errors name the file and the line.

    Raises:
        FileNotFoundError: When ``path`` does not exist.
        ConfigSyntaxError: ``'<file>:<line>:<column>: <message>'`` and the
            offending line, for the config or any of its ``_base_`` files.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    try:
        return Config.fromfile(path)
    except SyntaxError as err:
        found = _syntax_error_in(path, set()) or err
        filename = found.filename if found.filename and osp.isfile(
            found.filename) else path
        line = (found.text or '').rstrip('\n')
        message = (f'{filename}:{found.lineno}:{found.offset}: syntax error '
                   f'in config: {found.msg}')
        if line:
            message += f'\n    {line}'
        raise ConfigSyntaxError(message) from None

#!/usr/bin/env bash
# Copyright (c) OpenMMLab. All rights reserved.
#
# One-command setup for mdqe_mm: torch, mmcv 2.1.0 *with compiled ops*,
# mmengine, mmdet and mdqe_mm (editable), then a self-check.
#
#   bash install.sh [--find-links DIR]... [--with-mim] [--python PY]
#
# It installs into the Python you run it with (activate a venv first if you
# want one). A second run skips every satisfied step and takes seconds.
#
# Environment:
#   PYTHON              interpreter to install into (default: python, else python3)
#   MMCV_WHEEL_DIR      extra folder of prebuilt mmcv wheels (':'-separated)
#   MDQE_WHEEL_CACHE    where an mmcv wheel built here is kept for next time
#                       (default: ~/.cache/mdqe_mm/wheels)
#   MDQE_TORCH_SPEC     torch to install when none is installed
#                       (default: torch==2.13.0, the CPU build)
#   MAX_JOBS            parallel compile jobs for the mmcv build
set -uo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-$(command -v python || command -v python3)}"
FIND_LINKS=()
WITH_MIM=0
TORCH_SPEC="${MDQE_TORCH_SPEC:-torch==2.13.0}"
MMCV_VERSION='2.1.0'
SETUPTOOLS_SPEC='setuptools>=77,<82'

while [[ $# -gt 0 ]]; do
  case "$1" in
    --find-links) FIND_LINKS+=("$2"); shift 2 ;;
    --find-links=*) FIND_LINKS+=("${1#*=}"); shift ;;
    --with-mim) WITH_MIM=1; shift ;;
    --python) PY="$2"; shift 2 ;;
    -h|--help) sed -n '3,20p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [[ -n "${MMCV_WHEEL_DIR:-}" ]]; then
  IFS=':' read -r -a _dirs <<< "$MMCV_WHEEL_DIR"
  FIND_LINKS+=("${_dirs[@]}")
fi

LOG_DIR="${MDQE_LOG_DIR:-${TMPDIR:-/tmp}/mdqe_mm-install}"
mkdir -p "$LOG_DIR"
T_START=$(date +%s)

say() { printf '[mdqe_mm setup] %s\n' "$*"; }

# fail STEP LOG HINT: a short, useful failure report instead of a pip dump.
fail() {
  local step="$1" log="$2" hint="$3"
  printf '\n[mdqe_mm setup] FAILED at step: %s\n' "$step" >&2
  if [[ -f "$log" ]]; then
    printf '  last relevant lines of %s:\n' "$log" >&2
    grep -iE 'error|fail|not found|no matching|could not|denied|refused|timed out|resolve' "$log" \
      | grep -v '^\s*$' | tail -n 8 | sed 's/^/    /' >&2
  fi
  printf '  why / what to do: %s\n' "$hint" >&2
  printf '  full log: %s\n' "$log" >&2
  exit 1
}

# run STEP HINT CMD...: run quietly into a per-step log; report on failure.
run() {
  local step="$1" hint="$2"; shift 2
  local log="$LOG_DIR/${step// /_}.log"
  if ! "$@" >"$log" 2>&1; then
    fail "$step" "$log" "$hint"
  fi
}

pip_() { "$PY" -m pip --disable-pip-version-check --no-input "$@"; }

NET_HINT='pip could not get a package: check the network / package index (pip config list), or pass --find-links DIR with the wheels.'

# --- 0. interpreter -------------------------------------------------------
if ! "$PY" -c 'import sys; assert sys.version_info >= (3, 8)' 2>/dev/null; then
  echo "[mdqe_mm setup] FAILED: '$PY' is not a Python >= 3.8 (set PYTHON=...)" >&2
  exit 1
fi
if ! "$PY" -m pip --version >/dev/null 2>&1; then
  echo "[mdqe_mm setup] FAILED: '$PY -m pip' does not work; install pip (e.g. '$PY -m ensurepip')." >&2
  exit 1
fi
say "python: $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])')"

# satisfied REQ...: true when every requirement is already installed.
satisfied() {
  "$PY" - "$@" <<'PYEOF' 2>/dev/null
import sys
from importlib import metadata
try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement
for spec in sys.argv[1:]:
    req = Requirement(spec)
    if req.marker is not None and not req.marker.evaluate():
        continue
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        sys.exit(1)
    if req.specifier and not req.specifier.contains(version, prereleases=True):
        sys.exit(1)
PYEOF
}

# --- 1. build tools (setuptools<82 keeps pkg_resources for mmcv) -----------
if satisfied "$SETUPTOOLS_SPEC" wheel; then
  say 'setuptools/wheel: ok'
else
  run 'build tools' "$NET_HINT" pip_ install "$SETUPTOOLS_SPEC" wheel
  say "setuptools/wheel: installed ($SETUPTOOLS_SPEC)"
fi

# --- 2. torch: keep an installed one (e.g. a CUDA build) ------------------
if "$PY" -c 'import torch' >/dev/null 2>&1; then
  say "torch: keeping installed $("$PY" -c 'import torch; print(torch.__version__)')"
else
  say "torch: installing $TORCH_SPEC ..."
  run 'torch' "$NET_HINT" pip_ install "$TORCH_SPEC"
fi
TORCH_TAG=$("$PY" -W ignore -c 'import torch, sys; print("torch%s-py%d%d" % (torch.__version__.replace("+", "_"), *sys.version_info[:2]))' 2>/dev/null)
CACHE_DIR="${MDQE_WHEEL_CACHE:-$HOME/.cache/mdqe_mm/wheels}/$TORCH_TAG"

# --- 3. mmcv 2.1.0 with compiled ops --------------------------------------
mmcv_ok() {
  "$PY" -c "import mmcv, mmcv._ext; assert mmcv.__version__ == '$MMCV_VERSION'" >/dev/null 2>&1
}
MMCV_RUNTIME_DEPS=(addict numpy packaging Pillow pyyaml yapf opencv-python 'mmengine==0.10.7')

install_mmcv_from() {  # install_mmcv_from DIR: true if a working mmcv came from DIR
  local dir="$1"
  ls "$dir"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1 || return 1
  pip_ install --no-index --no-deps --force-reinstall --find-links "$dir" \
    "mmcv==$MMCV_VERSION" >"$LOG_DIR/mmcv_from_cache.log" 2>&1 || return 1
  if mmcv_ok; then
    return 0
  fi
  say "  the mmcv wheel in $dir does not load with this torch; ignoring it"
  pip_ uninstall -y mmcv >/dev/null 2>&1
  return 1
}

if mmcv_ok; then
  say "mmcv: $MMCV_VERSION with ops already installed"
else
  if ! satisfied "${MMCV_RUNTIME_DEPS[@]}"; then
    run 'mmcv runtime deps' "$NET_HINT" pip_ install "${MMCV_RUNTIME_DEPS[@]}"
  fi
  got=0
  for dir in "${FIND_LINKS[@]}" "$CACHE_DIR"; do
    [[ -d "$dir" ]] || continue
    if install_mmcv_from "$dir"; then
      say "mmcv: installed $MMCV_VERSION from wheel cache $dir"
      got=1
      break
    fi
  done
  if [[ $got -eq 0 ]]; then
    # Build from the PyPI sdist against *this* torch. A plain `pip install
    # mmcv` would build in an isolated env without torch and silently drop
    # the ops, hence MMCV_WITH_OPS=1 and --no-build-isolation.
    command -v "${CXX:-g++}" >/dev/null 2>&1 || fail 'mmcv build' '' \
      "no C++ compiler found: install g++ (e.g. 'apt-get install g++'), or pass --find-links DIR with a prebuilt mmcv $MMCV_VERSION wheel for this torch."
    "$PY" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
      || fail 'mmcv build' '' "Python headers (Python.h) are missing: install python3-dev for $PY."
    if ! satisfied ninja; then
      run 'mmcv build tools' "$NET_HINT" pip_ install ninja
    fi
    export MMCV_WITH_OPS=1
    export MAX_JOBS="${MAX_JOBS:-$("$PY" -c 'import os; print(max(os.cpu_count() or 1, 1))')}"
    if "$PY" -c 'import torch, sys; sys.exit(not (torch.version.cuda and torch.cuda.is_available()))' 2>/dev/null; then
      export FORCE_CUDA=1
      say 'mmcv: building with CUDA ops (FORCE_CUDA=1)'
    fi
    mkdir -p "$CACHE_DIR"
    say "mmcv: building $MMCV_VERSION from source with ops (MAX_JOBS=$MAX_JOBS); this takes ~15-20 min on 2 cores, once ..."
    run 'mmcv build' \
      "building mmcv from the sdist failed: see the log (compiler errors, or no network to fetch mmcv-$MMCV_VERSION.tar.gz)." \
      pip_ wheel --no-build-isolation --no-deps "mmcv==$MMCV_VERSION" -w "$CACHE_DIR"
    install_mmcv_from "$CACHE_DIR" || fail 'mmcv install' "$LOG_DIR/mmcv_from_cache.log" \
      "the freshly built mmcv wheel does not import its ops (mmcv._ext); see the build log $LOG_DIR/mmcv_build.log"
    say "mmcv: built and installed; wheel kept in $CACHE_DIR"
  fi
fi

# --- 4. mmengine, mmdet and the rest of the runtime/test requirements ------
REQS=()
while IFS= read -r line; do
  line="${line%%#*}"; line="$(echo "$line" | xargs)"
  [[ -n "$line" && "$line" != -r* ]] && REQS+=("$line")
done < <(cat "$REPO_ROOT/requirements/runtime.txt" "$REPO_ROOT/requirements/tests.txt")
if satisfied "${REQS[@]}" "$SETUPTOOLS_SPEC"; then
  say 'mmengine/mmdet/runtime requirements: ok'
else
  run 'runtime requirements' "$NET_HINT" pip_ install "${REQS[@]}" "$SETUPTOOLS_SPEC"
  say 'mmengine/mmdet/runtime requirements: installed'
fi

# --- 5. mdqe_mm itself, editable (creates mdqe_mm/.mim links for mim) -----
editable_ok() {
  [[ -L "$REPO_ROOT/mdqe_mm/.mim/configs" && -L "$REPO_ROOT/mdqe_mm/.mim/tools" ]] || return 1
  (cd / && "$PY" -c "import os, importlib.util as u; s = u.find_spec('mdqe_mm'); assert s and os.path.realpath(s.origin).startswith(os.path.realpath('$REPO_ROOT'))") >/dev/null 2>&1
}
if editable_ok; then
  say 'mdqe_mm: editable install ok'
else
  run 'mdqe_mm editable install' \
    'pip could not install the repo in editable mode; see the log.' \
    pip_ install --no-build-isolation --no-deps -e "$REPO_ROOT"
  say 'mdqe_mm: installed in editable mode'
fi

# OpenMIM finds a package's tools at <dist location>/mdqe_mm/.mim. A PEP 660
# editable install puts the dist-info in site-packages but the code stays in
# the checkout, so that path would not exist; link it to the checkout.
link_out=$(cd / && "$PY" - "$REPO_ROOT" <<'PYEOF' 2>&1
import os, sys
from importlib import metadata
repo_pkg = os.path.join(sys.argv[1], 'mdqe_mm')
location = str(metadata.distribution('mdqe_mm').locate_file(''))
target = os.path.join(location, 'mdqe_mm')
if os.path.realpath(target) != os.path.realpath(repo_pkg):
    if os.path.islink(target):
        os.remove(target)
    if os.path.exists(target):
        sys.exit(f'{target} exists and is not this checkout; not touching it')
    os.symlink(repo_pkg, target)
    print(f'linked {target} -> {repo_pkg}')
PYEOF
) || fail 'mim link' '' "$link_out"
[[ -n "$link_out" ]] && say "mim: $link_out"

# --- 6. optional: OpenMIM ---------------------------------------------------
if [[ $WITH_MIM -eq 1 ]]; then
  if ! satisfied 'openmim==0.3.9'; then
    run 'openmim' "$NET_HINT" pip_ install 'openmim==0.3.9'
    # openmim's dependency openxlab pins setuptools~=60.2; mmcv builds and
    # torch 2.13 need >=77, and pkg_resources is still in <82.
    run 'setuptools after openmim' "$NET_HINT" pip_ install "$SETUPTOOLS_SPEC"
  fi
  say 'openmim: ok'
fi

# --- 7. self-check ------------------------------------------------------------
say 'self-check:'
(cd / && "$PY" - <<'PYEOF')
import importlib
import sys

ok = True


def line(name, value):
    print(f'  {name:<22} {value}')


import torch
line('torch', f'{torch.__version__} (CUDA available: {torch.cuda.is_available()})')
import mmcv
line('mmcv', mmcv.__version__)
try:
    importlib.import_module('mmcv._ext')
    line('mmcv._ext (ops)', 'loads')
except Exception as exc:  # report, do not hide
    ok = False
    line('mmcv._ext (ops)', f'FAILED to load: {exc}')
try:
    from mmcv.ops import get_compiling_cuda_version
    cuda_ops = get_compiling_cuda_version()
    line('mmcv CUDA ops', 'available (CUDA %s)' % cuda_ops
         if cuda_ops != 'not available' else 'not compiled (CPU ops only)')
except Exception as exc:
    line('mmcv CUDA ops', f'unknown ({exc})')
import mmengine
line('mmengine', mmengine.__version__)
import mmdet
line('mmdet', mmdet.__version__)
try:
    import mdqe_mm
    from mmdet.registry import MODELS
    line('mdqe_mm', f'{mdqe_mm.__version__} ({mdqe_mm.__file__})')
except Exception as exc:
    ok = False
    line('mdqe_mm', f'FAILED to import: {exc}')
sys.exit(0 if ok else 1)
PYEOF
rc=$?
if [[ $rc -ne 0 ]]; then
  echo '[mdqe_mm setup] FAILED at step: self-check (see the lines above)' >&2
  exit 1
fi
say "done in $(( $(date +%s) - T_START ))s. Run the tests with: python -m pytest tests"

#!/usr/bin/env bash
# Set up everything OpenHorde needs on this machine: a Python 3.11 virtual environment in .venv with the
# project and its development tools. Safe to run again: it reinstalls only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $PYTHON"
    "$PYTHON" -m venv .venv
fi

stamp=".venv/.openhorde-installed"
wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "==> installing openhorde and its dependencies into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[dev,worker]'
    # The "spandrel" extra without its torchvision requirement (pyproject.toml says why); same pins as there.
    .venv/bin/python -m pip install --quiet --no-deps 'spandrel==0.4.2' 'spandrel-extra-arches==0.2.0'
    echo "$wanted" > "$stamp"
fi
# Single-file checkpoints carry no tokenizer: the worker builds CLIP's from this merge list (fetched once).
.venv/bin/openhorde worker fetch-vocab
echo "==> .venv ready ($(.venv/bin/python --version))"

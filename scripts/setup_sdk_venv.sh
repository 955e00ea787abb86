#!/usr/bin/env bash
# Create (or refresh) /work/main/.venv-sdk: a Python 3.12 virtualenv holding the
# independent AI Horde client library `horde-sdk`, used by tests/e2e/sdk_driver.py
# to drive a live OpenHorde server. Idempotent: re-running only re-checks the install.
#
# Env overrides:
#   PYTHON312   interpreter to use (default: pyenv 3.12.1, else python3.12 on PATH)
#   SDK_VENV    venv location (default: <repo>/.venv-sdk)
#   HORDE_SDK_SPEC  pip requirement for the SDK (default: horde-sdk, i.e. latest)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SDK_VENV:-$REPO_ROOT/.venv-sdk}"
SPEC="${HORDE_SDK_SPEC:-horde-sdk}"

PY="${PYTHON312:-/root/.pyenv/versions/3.12.1/bin/python3.12}"
if [ ! -x "$PY" ]; then
    if command -v python3.12 >/dev/null 2>&1; then
        PY="$(command -v python3.12)"
    else
        echo "setup_sdk_venv: no Python 3.12 found (tried \$PYTHON312, $PY, python3.12 on PATH)" >&2
        exit 1
    fi
fi

if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 12) else 1)'; then
    echo "setup_sdk_venv: $PY is not Python >= 3.12 (horde-sdk requires it)" >&2
    exit 1
fi

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 12) else 1)' 2>/dev/null; then
    echo "setup_sdk_venv: reusing existing venv $VENV"
else
    echo "setup_sdk_venv: creating venv $VENV with $PY ($("$PY" --version 2>&1))"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
fi

if "$VENV/bin/python" -c 'import horde_sdk' >/dev/null 2>&1 && [ -z "${SDK_UPGRADE:-}" ]; then
    echo "setup_sdk_venv: horde-sdk already installed (set SDK_UPGRADE=1 to upgrade)"
else
    echo "setup_sdk_venv: installing $SPEC"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet --upgrade "$SPEC"
fi

VERSION="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("horde-sdk"))')"
"$VENV/bin/python" -c 'import horde_sdk.ai_horde_api, PIL, httpx' 2>/dev/null \
    || "$VENV/bin/python" -c 'import horde_sdk.ai_horde_api, PIL'
echo "setup_sdk_venv: ok, horde-sdk $VERSION in $VENV"

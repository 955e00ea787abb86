#!/usr/bin/env bash
# Create (or refresh) the virtualenvs of the published AI Horde client libraries that tests/e2e drives,
# unmodified, against a live OpenHorde (the horde-sdk one is scripts/setup_sdk_venv.sh):
#
#   .venv-aihordeclient   aihordeclient (the library of the GIMP and LibreOffice plug-ins)
#   .venv-horde-client    horde-client with its pinned dependencies (langchain 0.0.291, pydantic 2.3.0, ...)
#
# Each library has its own venv because their pins clash with ours and with each other. Idempotent:
# re-running only re-checks the installs.
#
# Env overrides:
#   PYTHON311              interpreter to use (default: pyenv 3.11.7, else python3.11 on PATH)
#   AIHORDECLIENT_VENV     venv location (default: <repo>/.venv-aihordeclient)
#   AIHORDECLIENT_SPEC     pip requirement (default: aihordeclient==0.5.1, the version the tests were written for)
#   HORDE_CLIENT_VENV      venv location (default: <repo>/.venv-horde-client)
#   HORDE_CLIENT_SPEC      pip requirement (default: horde-client==1.0.3)
#   CLIENTS_UPGRADE        set to reinstall the requirements even when the package imports
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

PY="${PYTHON311:-/root/.pyenv/versions/3.11.7/bin/python3.11}"
if [ ! -x "$PY" ]; then
    if command -v python3.11 >/dev/null 2>&1; then
        PY="$(command -v python3.11)"
    else
        echo "setup_client_venvs: no Python 3.11 found (tried \$PYTHON311, $PY, python3.11 on PATH)" >&2
        exit 1
    fi
fi

# make_venv VENV SPEC MODULE DISTRIBUTION
make_venv() {
    local venv="$1" spec="$2" module="$3" dist="$4"
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 10) else 1)' 2>/dev/null; then
        echo "setup_client_venvs: reusing existing venv $venv"
    else
        echo "setup_client_venvs: creating venv $venv with $PY ($("$PY" --version 2>&1))"
        rm -rf "$venv"
        "$PY" -m venv "$venv"
    fi
    if "$venv/bin/python" -c "import $module" >/dev/null 2>&1 && [ -z "${CLIENTS_UPGRADE:-}" ]; then
        echo "setup_client_venvs: $dist already installed in $venv (set CLIENTS_UPGRADE=1 to reinstall)"
    else
        echo "setup_client_venvs: installing $spec into $venv"
        "$venv/bin/python" -m pip install --disable-pip-version-check --quiet "$spec"
    fi
    "$venv/bin/python" -W ignore -c "import $module"
    echo "setup_client_venvs: ok, $dist $("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('$dist'))") in $venv"
}

make_venv "${AIHORDECLIENT_VENV:-$REPO_ROOT/.venv-aihordeclient}" "${AIHORDECLIENT_SPEC:-aihordeclient==0.5.1}" \
    aihordeclient aihordeclient &
first=$!
make_venv "${HORDE_CLIENT_VENV:-$REPO_ROOT/.venv-horde-client}" "${HORDE_CLIENT_SPEC:-horde-client==1.0.3}" \
    horde_client horde-client
wait "$first"

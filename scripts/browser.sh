#!/usr/bin/env bash
# Install Debian's Chromium for the web UI's browser tests (Playwright drives it with executable_path;
# Playwright's own browser download cannot work offline). Needs root or sudo the first time.
set -euo pipefail

CHROMIUM="${OPENHORDE_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
echo "==> installing Debian's chromium for the browser tests"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends chromium >/dev/null; then
    $SUDO apt-get update -qq
    $SUDO apt-get install -y --no-install-recommends chromium >/dev/null
fi
"$CHROMIUM" --version

#!/usr/bin/env bash
# Prints the path of a yacron to benchmark against, installing it first when needed: yacron
# from PyPI in its own virtualenv, bench/.venv (Debian's python refuses a system-wide
# `pip install`). YACRON_VERSION pins a version (default: the newest). Installs python3-venv
# with apt-get when the venv module is missing. Used by bench/daemon.sh and bench/all.sh.
set -euo pipefail
cd "$(dirname "$0")"
venv=$PWD/.venv
if [ ! -x "$venv/bin/yacron" ]; then
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt-get update -qq >&2 && apt-get install -y -qq python3-venv >/dev/null
  fi
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "yacron${YACRON_VERSION:+==$YACRON_VERSION}" >&2
fi
echo "$venv/bin/yacron"

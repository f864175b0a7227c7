#!/usr/bin/env bash
# Set up distill in ./.venv and run something in it.
#
#   bash scripts/setup.sh quickstart   # install, then run the whole pipeline on the tiny world
#   bash scripts/setup.sh test         # install with test extras and system packages, then run the tests
#   bash scripts/setup.sh install      # install only
#
# torch: if the Python you run this with already has torch (a CUDA build on a GPU machine, say),
# the venv sees it through --system-site-packages and pip keeps it, since distill only asks for
# torch>=2.4. Otherwise torch==2.13.0 is installed first (a CPU build on CPU-only machines here).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-install}
shift || true
PYTHON=${PYTHON:-python3}
VENV=${DISTILL_VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
  if "$PYTHON" -c "import torch" 2>/dev/null; then
    echo "setup: using the torch already installed for $PYTHON ($("$PYTHON" -c 'import torch; print(torch.__version__)'))"
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
py="$VENV/bin/python"
if ! "$py" -c "import torch" 2>/dev/null; then
  "$py" -m pip install -q torch==2.13.0
fi

extras=""
if [ "$mode" = test ]; then
  extras="[dev]"
  # System packages the tests use: bubblewrap (code sandbox) and chromium (report rendering).
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    need=""
    command -v bwrap >/dev/null || need="$need bubblewrap"
    command -v chromium >/dev/null || need="$need chromium"
    if [ -n "$need" ]; then
      apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null \
        || echo "setup: could not install$need; the tests that need them will say so" >&2
    fi
  fi
fi
"$py" -m pip install -q -e ".$extras"

case "$mode" in
  install) ;;
  quickstart) exec "$VENV/bin/distill" run recipes/quickstart.yaml "$@" ;;
  test) exec "$py" -m pytest "$@" ;;
  *) echo "usage: bash scripts/setup.sh [install|quickstart|test]" >&2; exit 2 ;;
esac

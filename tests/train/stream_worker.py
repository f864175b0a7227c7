"""The trainer under an address-space limit, run by tests/train/test_data_scaling.py in a subprocess:

    python tests/train/stream_worker.py CORPUS_DIR OUT LIMIT_BYTES RESULT.json

Sets RLIMIT_AS to LIMIT_BYTES (0: no limit) before anything large is imported, trains students/tiny.yaml for 10
steps with `streaming: true` on CORPUS_DIR, then tries to read the whole corpus file into memory (which must fail
when the corpus is larger than the limit: the proof that the limit binds). Writes its VmPeak (the largest
address space it reached), the losses and whether the whole file fitted into RESULT.json.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path


def vm_peak() -> int:
    """This process's peak virtual memory (VmPeak), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmPeak:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmPeak in /proc/self/status")


def main() -> None:
    """Train under the limit and write the result."""
    corpus, out, limit, result = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from distill.train import train
    from tests.train.conftest import FAST

    summary = train(Path(__file__).resolve().parents[2] / "students" / "tiny.yaml", corpus, out, max_steps=10,
                    settings=[*FAST, "streaming=true", "save_steps=1000"])
    peak = vm_peak()  # before the read below
    try:
        size = len((corpus / "corpus.jsonl").read_bytes())
    except MemoryError:
        size = -1
    result.write_text(json.dumps({
        "vm_peak": peak, "losses": [h["loss"] for h in summary["log_history"]],
        "global_step": summary["global_step"], "whole_file_read": size, "data": summary["data"],
    }))


if __name__ == "__main__":
    main()

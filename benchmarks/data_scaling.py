"""Tokenizing a large corpus into the cached Arrow dataset: rows/s with 2 workers against 1, and peak RSS per rank.

    python benchmarks/data_scaling.py                  # 1M toy rows of about 150 tokens (needs ~3 GB of disk)
    python benchmarks/data_scaling.py --rows 100000    # the check on a busy machine
    python benchmarks/data_scaling.py --rows 100000 --legacy   # also the old in-process path (a list per row)

The corpus: toy rows from distill.toy.problems (difficulty 1-2; a pool of `--pool` distinct problems written
in turn with distinct problem ids until `--rows`), tokenized with students/tiny.yaml's tokenizer and template
(max_length 512, drop, packing on), so each row is what `distill train` tokenizes.

Each arm runs in its own subprocess, one after another, on the same corpus file:
- build-1 / build-2: `distill.train.datacache.build_cache` with dataset_num_proc 1 or 2 into a fresh cache:
  JSONL -> Arrow, tokenization, over-long filter, TRL's BFD packing, save. Printed: the tokenization rows/s
  (the tokenizing `Dataset.map` alone, timed by wrapping it), the whole build's seconds, the
  builder's peak RSS (ru_maxrss of the process) and its workers' (ru_maxrss of RUSAGE_CHILDREN: the largest).
- rank: what a training rank does with the cache: `load_cache` (memory-mapped) and one pass over every
  packed row, the way the trainer's batches read them; the figure the 2 GB per rank target is about (rank 0
  also builds the cache: the build arms' figures).
- legacy (with --legacy): the previous path, `read_corpus` (every row in a Python list) and `build_dataset`
  (tokenized ids in Python lists) in one process; its peak RSS is the baseline the cache replaces.
Every peak RSS is printed twice: ru_maxrss (VmHWM), and in brackets the peak of RssAnon sampled every 50 ms
(`AnonPeak`): ru_maxrss also counts the pages of memory-mapped Arrow files a process has read, which are
shared between processes (ranks map the same files) and which the kernel reclaims under pressure; RssAnon is
the private memory a process cannot give back. The ratio printed is build-2 rows/s over build-1 rows/s,
measured in the same run. Threads are pinned to 1
(OMP_NUM_THREADS, RAYON_NUM_THREADS for the tokenizers' Rust pool) and the load average is printed: figures
on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "students" / "tiny.yaml"


def write_corpus(path: Path, rows: int, pool: int) -> None:
    """`rows` toy rows shaped like `distill filter`'s corpus, cycling over `pool` distinct problems."""
    from distill.text import MATH_PROMPT_SUFFIX
    from distill.toy.problems import generate

    lines = []
    for problem, gold in generate(pool, seed=1, difficulty=(1, 2)):
        messages = [{"role": "user", "content": f"{problem.prompt}\n{MATH_PROMPT_SUFFIX}"},
                    {"role": "assistant", "content": gold}]
        lines.append((json.dumps(messages), problem.id))
    with path.open("w", encoding="utf-8") as handle:
        for i in range(rows):
            messages, pid = lines[i % pool]
            handle.write(f'{{"messages": {messages}, "problem_id": "{pid}-{i}", "source": "toy"}}\n')


def setup(corpus: Path, out: Path, num_proc: int):
    """The recipe, tokenizer and corpus list `train()` would use."""
    from distill.train.corpora import corpora
    from distill.train.recipe import load_student_recipe
    from distill.train.sft import base_path, load_tokenizer

    recipe = load_student_recipe(TINY, ["max_length=512", f"dataset_num_proc={num_proc}", f"data_cache={out / 'cache'}"])
    tokenizer = load_tokenizer(recipe, base_path(recipe, out))
    return recipe, tokenizer, corpora(recipe, corpus)


def arm_build(corpus: Path, out: Path, num_proc: int) -> dict:
    """Build the cache with `num_proc` tokenizing processes; time the tokenization map."""
    from distill.train import datacache
    from distill.train.sft import packing_mode

    recipe, tokenizer, sources = setup(corpus, out, num_proc)
    timing = {}
    import datasets

    real_map = datasets.Dataset.map

    def map_timed(self, function, *args, **kwargs):
        start = time.perf_counter()
        result = real_map(self, function, *args, **kwargs)
        if function is datacache.tokenize_batch:
            timing["tokenize_s"] = time.perf_counter() - start
            timing["rows"] = len(self)
        return result

    datasets.Dataset.map = map_timed  # times the tokenizing map alone (not the JSONL read, filter, pack, save)
    layout = packing_mode(recipe)
    key, description = datacache.cache_key(recipe, tokenizer, sources, layout)
    folder = datacache.cache_root(recipe, out) / key
    start = time.perf_counter()
    datacache.build_cache(recipe, tokenizer, sources, layout, folder, description)
    build_s = time.perf_counter() - start
    size = sum(p.stat().st_size for p in (folder / "dataset").iterdir())
    return {"rows": timing["rows"], "tokenize_s": timing["tokenize_s"], "build_s": build_s, "arrow_bytes": size,
            "folder": str(folder)}


def arm_rank(folder: Path) -> dict:
    """A rank's use of the cache: memory-map it and read every row once."""
    from distill.train.datacache import load_cache

    start = time.perf_counter()
    dataset, report, _ = load_cache(folder)
    tokens = 0
    for batch in dataset.with_format("numpy").iter(batch_size=1024):
        tokens += sum(len(ids) for ids in batch["input_ids"])
    return {"packed_rows": len(dataset), "tokens": tokens, "kept": report.kept, "pass_s": time.perf_counter() - start}


def arm_legacy(corpus: Path, out: Path) -> dict:
    """The previous path: every row and its ids in Python lists in this process."""
    from distill.train.data import build_dataset, read_corpus

    recipe, tokenizer, _ = setup(corpus, out, 1)
    start = time.perf_counter()
    rows = read_corpus(corpus)
    _dataset, report = build_dataset(rows, tokenizer, recipe.max_length, recipe.overlong)
    return {"rows": len(rows), "build_s": time.perf_counter() - start, "kept": report.kept}


class AnonPeak:
    """The peak of anonymous (private) resident memory, RssAnon, of this process and of its worker processes,
    sampled every 50 ms in a thread. ru_maxrss also counts the pages of memory-mapped Arrow files a process
    has read (file-backed: shared between processes and reclaimable by the kernel), so it overstates what
    a process holds once it has read a large mapped dataset; RssAnon is what it cannot give back."""

    def __init__(self) -> None:
        self.own = 0
        self.worker = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _anon(pid: int | str) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.own = max(self.own, self._anon("self"))
            for task in Path("/proc/self/task").iterdir():
                try:
                    children = (task / "children").read_text().split()
                except OSError:
                    continue
                for pid in children:
                    self.worker = max(self.worker, self._anon(pid))
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop sampling (after one last sample)."""
        self._stop.set()
        self._thread.join()
        self.own = max(self.own, self._anon("self"))


def child(args: argparse.Namespace) -> None:
    """Run one arm in this process and print its result (with peak RSS) as one JSON line."""
    import logging

    import torch

    sampler = AnonPeak()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    corpus, out = Path(args.corpus), Path(args.out)
    if args.arm.startswith("build"):
        result = arm_build(corpus, out, int(args.arm.split("-")[1]))
    elif args.arm == "rank":
        result = arm_rank(Path(args.folder))
    else:
        result = arm_legacy(corpus, out)
    sampler.stop()
    result["peak_anon_bytes"], result["workers_peak_anon_bytes"] = sampler.own, sampler.worker
    kib = 1024
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib
    result["workers_peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kib
    print("RESULT " + json.dumps(result), flush=True)


def run_arm(arm: str, corpus: Path, out: Path, folder: str = "") -> dict:
    """One arm in a fresh subprocess."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(REPO), "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    cmd = [sys.executable, __file__, "--arm", arm, "--corpus", str(corpus), "--out", str(out), "--folder", folder]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"arm {arm} failed:\n{done.stderr[-4000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main() -> None:
    """Write the corpus, run the arms, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pool", type=int, default=20_000, help="distinct toy problems the rows cycle over")
    parser.add_argument("--legacy", action="store_true", help="also measure the old in-process path")
    parser.add_argument("--work", default=None, help="work folder (default: a temporary one, removed after)")
    parser.add_argument("--arm", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folder", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        child(args)
        return
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="data-scaling-"))
    try:
        bench(args, work)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


def bench(args: argparse.Namespace, work: Path) -> None:
    """The arms on one corpus, printed as they finish."""
    gib = 1 << 30
    corpus = work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    write_corpus(corpus / "corpus.jsonl", args.rows, args.pool)
    print(f"corpus: {args.rows} rows, {(corpus / 'corpus.jsonl').stat().st_size / gib:.2f} GiB of JSONL, written in "
          f"{time.perf_counter() - start:.0f} s; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} CPUs", flush=True)
    results = {}
    for workers in (1, 2):
        arm = f"build-{workers}"
        r = results[arm] = run_arm(arm, corpus, work / arm)
        print(f"{arm}: tokenized {r['rows']} rows in {r['tokenize_s']:.1f} s = {r['rows'] / r['tokenize_s']:.0f} rows/s; "
              f"whole build {r['build_s']:.1f} s; Arrow {r['arrow_bytes'] / gib:.2f} GiB; peak RSS (anonymous) "
              f"builder {gb(r, 'peak')}, largest worker {gb(r, 'workers_peak')}; load average "
              f"{os.getloadavg()[0]:.1f}", flush=True)
    rank = run_arm("rank", corpus, work / "rank", results["build-2"]["folder"])
    print(f"rank: memory-mapped {rank['packed_rows']} packed rows ({rank['tokens']} tokens of {rank['kept']} rows), "
          f"one pass in {rank['pass_s']:.1f} s; peak RSS (anonymous) {gb(rank, 'peak')}", flush=True)
    if args.legacy:
        legacy = run_arm("legacy", corpus, work / "legacy")
        print(f"legacy (read_corpus + build_dataset in process): {legacy['rows']} rows in {legacy['build_s']:.1f} s = "
              f"{legacy['rows'] / legacy['build_s']:.0f} rows/s; peak RSS (anonymous) {gb(legacy, 'peak')}",
              flush=True)
    one, two = (results[f"build-{w}"] for w in (1, 2))
    ratio = (two["rows"] / two["tokenize_s"]) / (one["rows"] / one["tokenize_s"])
    worst = max(rank["peak_rss_bytes"], one["peak_rss_bytes"], two["peak_rss_bytes"], two["workers_peak_rss_bytes"])
    anon = max(rank["peak_anon_bytes"], one["peak_anon_bytes"], two["peak_anon_bytes"], two["workers_peak_anon_bytes"])
    print(f"tokenization rows/s, 2 workers / 1: {ratio:.2f}x; largest peak RSS of any process: {worst / gib:.2f} GiB "
          f"({'under' if worst < 2 * gib else 'OVER'} the 2 GiB per rank target), of it anonymous (private) at most "
          f"{anon / gib:.2f} GiB ({'under' if anon < 2 * gib else 'OVER'})")


def gb(result: dict, name: str) -> str:
    """`name`'s ru_maxrss and sampled RssAnon peaks of an arm's result, in GiB."""
    gib = 1 << 30
    return f"{result[name + '_rss_bytes'] / gib:.2f} GiB ({result[name + '_anon_bytes'] / gib:.2f})"


if __name__ == "__main__":
    main()

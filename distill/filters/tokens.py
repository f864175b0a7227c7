"""Corpus rows for token-level distillation: each kept sample's logprob record and the teacher's token ids.

A run sampled with `--logprobs K` has a sidecar (`distill/logprobs.py`). Its corpus rows carry the teacher's
generated ids (`token_ids`) and a reference to the record (`logprobs`: run name, side file, offset, length),
never a copy of the logprobs. KD trains on those ids, not on re-tokenized text: a sampled sequence is often
not the tokenizer's own segmentation, and the corpus reformats the think block. So a row is kept only when
its rendered assistant turn is exactly the text the ids decode to (after the think opener the prompt held);
otherwise it is refused as `token_mismatch`, with the first differing character, and counted in the funnel.

Where the run is on this machine is local information: it goes to OUT/local.json (`{"runs": {name: path}}`),
never into the published corpus.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.atomic import atomic_write_json
from distill.errors import DistillError
from distill.logprobs import LogprobRecord, SidecarReader
from distill.records import CorpusRow, Problem, Sample
from distill.rundir import RunDir
from distill.text import THINK_OPEN, assistant_text

NAME = "token_mismatch"
LOCAL = "local.json"
SIDE = "logprobs"


def first_difference(a: str, b: str) -> int:
    """The index of the first character where two strings differ (the shorter length if one is a prefix).

    >>> first_difference("abc", "abd"), first_difference("ab", "abc")
    (2, 2)
    """
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return index
    return min(len(a), len(b))


class TeacherTokens:
    """The sidecar of one run, its teacher's tokenizer, and the rows' references into it."""

    def __init__(self, run: RunDir, tokenizer: Any) -> None:
        self.run = run
        self.name = run.path.resolve().name
        self.tokenizer = tokenizer
        self._readers: dict[str, SidecarReader] = {}
        self._single = (run.manifest().get("shards") or 1) == 1

    @classmethod
    def of(cls, run: RunDir | None, tokenizer: str | None) -> TeacherTokens | None:
        """For a run sampled with logprobs, the reader of its sidecar; None for any other input. The teacher's
        tokenizer is `tokenizer`, else the local checkpoint the run's manifest records, else the profile's
        `tokenizer:`; a run with logprobs and none of these is refused (the rows could not be checked)."""
        manifest = run.manifest() if run is not None and run.is_run() else {}
        if not (manifest.get("sampling") or {}).get("logprobs"):
            return None
        assert run is not None
        candidates = [tokenizer, (manifest.get("local") or {}).get("teacher_model_path"),
                      (manifest.get("teacher") or {}).get("tokenizer")]
        found = next((Path(c) for c in candidates if c and Path(c).is_dir()), None)
        if found is None:
            raise DistillError(f"{run.path}: the run holds teacher logprobs, but no local tokenizer of the teacher is "
                               "known to check each row's text against its token ids; pass --tokenizer DIR")
        from transformers import AutoTokenizer, PreTrainedTokenizerFast

        # PreTrainedTokenizerFast reads tokenizer.json as saved (AutoTokenizer can swap in another pre-tokenizer).
        if (found / "tokenizer.json").is_file():
            loaded = PreTrainedTokenizerFast.from_pretrained(str(found), local_files_only=True)
        else:
            loaded = AutoTokenizer.from_pretrained(str(found), local_files_only=True)
        return cls(run, loaded)

    def ref(self, sample: Sample) -> dict[str, Any] | None:
        """The sample's logprob reference with its side file named (old single-shard runs omit the name)."""
        ref = (sample.side or {}).get(SIDE)
        if not ref:
            return None
        name = ref.get("file")
        if name is None and self._single:
            name = self.run.side_path((0, 1), SIDE).name
        if not isinstance(name, str) or "/" in name or not name.endswith(f".{SIDE}"):
            raise DistillError(f"{self.run.path}: sample {sample.problem_id}/{sample.sample_index}: its logprob "
                               f"reference names no side file of this run ({name!r})")
        return {"file": name, "offset": int(ref["offset"]), "length": int(ref["length"])}

    def record(self, ref: dict[str, Any]) -> LogprobRecord:
        """The record a reference points at, read through the side file's memory map."""
        name = ref["file"]
        if name not in self._readers:
            self._readers[name] = SidecarReader(self.run.samples_dir / name)
        return self._readers[name].read(ref["offset"], ref["length"])

    def check(self, sample: Sample, problem: Problem) -> str | None:
        """A filter: None when the row's assistant turn is the text of the teacher's ids, else the reason."""
        ref = self.ref(sample)
        if ref is None:
            return "no logprob record for this sample"
        record = self.record(ref)
        decoded = self.tokenizer.decode(record.token_ids.tolist(), skip_special_tokens=True)
        prompt = self.tokenizer.decode(record.prompt_ids.tolist(), skip_special_tokens=False)
        # The prompt may open the think block; the corpus's assistant turn always starts with it.
        opened = f"{THINK_OPEN}\n" if prompt.endswith(f"{THINK_OPEN}\n") else ""
        text = opened + decoded
        rendered = assistant_text(sample.reasoning, sample.content)
        if text == rendered:
            return None
        at = first_difference(text, rendered)
        return (f"the assistant turn differs from the text of the teacher's {len(record.token_ids)} token ids at "
                f"character {at}: {rendered[at:at + 12]!r} vs {text[at:at + 12]!r}")

    def attach(self, row: CorpusRow, sample: Sample) -> CorpusRow:
        """Fill the row's token ids and its reference to the sample's record."""
        ref = self.ref(sample)
        assert ref is not None  # rows without one were refused by `check`
        row.token_ids = self.record(ref).token_ids.tolist()
        row.logprobs = {"run": self.name, **ref}
        return row

    def write_local(self, out: Path) -> None:
        """OUT/local.json: where the named run is on this machine (local-only, like a manifest's `local`)."""
        atomic_write_json(out / LOCAL, {"runs": {self.name: str(self.run.path.resolve())}})

    def close(self) -> None:
        """Release the memory maps."""
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()

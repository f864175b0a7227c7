"""Reward functions in TRL's shape (`f(prompts, completions, completion_ids, **columns) -> list[float | None]`)
that call the project's verifiers, so GRPO is rewarded by exactly the checks the rest of the pipeline uses.

- accuracy: 1.0 for a verified-correct answer, 0.0 for a wrong one, None (no signal) when the verifier
  cannot judge (`correct: null`, e.g. a sandbox error); TRL turns None into NaN and leaves it out.
- format: 1.0 for a closed think block followed by an answer (after `</think>`, or `<answer>` tags for
  R1-Zero's template), else 0.0.
- language: R1's language-consistency reward, the share of the reasoning in the target language.

`RewardSet` builds the active functions (non-zero weight) and their weights for `GRPOConfig.reward_weights`,
and logs the within-group standard deviation of the weighted reward, which TRL does not log itself.
"""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from distill.records import Problem, Sample
from distill.text import THINK_CLOSE, THINK_OPEN, language_share, split_completion
from distill.verify import answer_part, extract_math_answer, verify_sample, verify_samples
from distill.verify.extract import code_blocks

log = logging.getLogger(__name__)

RewardFunc = Callable[..., list]


def completion_text(completion: Any) -> str:
    """The generated text of a TRL completion: a string, or the assistant messages of a conversation."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content") or "" for m in completion if m.get("role", "assistant") == "assistant")


def well_formed(text: str, think_in_prompt: bool, answer_format: str) -> bool:
    """One closed, non-empty think block followed by a non-empty answer (and nothing but the answer, for tags).

    >>> well_formed("<think> 1+1=2 </think> <answer> 2 </answer>", False, "answer_tags")
    True
    >>> well_formed("<think> 1+1=2 </think> 2", False, "answer_tags")
    False
    >>> well_formed("1+1=2\\n</think>\\n\\nThe answer is 2.", True, "after_think")
    True
    >>> well_formed("1+1=2 and then more thinking", True, "after_think")
    False
    """
    if text.count(THINK_CLOSE) != 1:
        return False
    if not think_in_prompt and not text.lstrip().startswith(THINK_OPEN):
        return False
    if text.count(THINK_OPEN) > (0 if think_in_prompt else 1):
        return False
    reasoning, content, closed = split_completion(text)
    if not closed or not reasoning:
        return False
    if answer_format == "answer_tags":
        return re.fullmatch(r"\s*<answer>(?:(?!<answer>).)+?</answer>\s*", content, re.DOTALL) is not None
    return bool(content.strip())


def has_answer(problem: Problem, answer: str) -> bool:
    """Whether the answer part holds something the problem's verifier can read (a number/box, a code block)."""
    if problem.kind == "math":
        return extract_math_answer(answer) is not None
    if problem.kind == "code":
        return bool(code_blocks(answer)) or "def " in answer
    return bool(answer.strip())


class RewardSet:
    """The reward functions for one run, sharing the problems, the answer format and a per-batch ledger.

    `problems_by_id` maps the dataset's `problem_id` column to problems; `think_in_prompt` says the
    prompt opens `<think>`; `eos_token_ids` mark a completion that stopped (others were truncated).
    Code completions run in the bubblewrap sandbox (`SandboxUnavailable` without one) unless
    `unsafe_no_sandbox`, where a policy could learn to forge its reward.
    """

    def __init__(
        self,
        problems_by_id: dict[str, Problem],
        weights: dict[str, float],
        answer_format: str = "after_think",
        think_in_prompt: bool = True,
        language: str = "en",
        workers: int = 1,
        eos_token_ids: Sequence[int] = (),
        unsafe_no_sandbox: bool = False,
    ) -> None:
        self.problems_by_id = problems_by_id
        self.answer_format = answer_format
        self.think_in_prompt = think_in_prompt
        self.language = language
        self.workers = workers
        self.eos_token_ids = set(eos_token_ids)
        self.unsafe_no_sandbox = unsafe_no_sandbox
        available = {"accuracy": self.accuracy, "format": self.format, "language": self.language_consistency}
        unknown = set(weights) - set(available)
        if unknown:
            raise ValueError(f"unknown reward(s) {sorted(unknown)} (known: {', '.join(available)})")
        self.active = [(name, available[name], w) for name, w in weights.items() if w]
        self._ledger: dict[str, list[float | None]] = {}

    @property
    def funcs(self) -> list[RewardFunc]:
        """The active reward functions, named so that TRL logs each as `rewards/<name>/mean`."""
        return [self._named(name, fn) for name, fn, _ in self.active]

    @property
    def weights(self) -> list[float]:
        """The weights of `funcs`, in order (TRL's `reward_weights`)."""
        return [w for _, _, w in self.active]

    def _named(self, name: str, fn: Callable[..., list[float | None]]) -> RewardFunc:
        def reward(prompts: list, completions: list, completion_ids: list | None = None, **kwargs: Any) -> list:
            values = fn(completions, kwargs["problem_id"], completion_ids)
            self._record(name, values, kwargs)
            return values

        reward.__name__ = reward.__qualname__ = name
        return reward

    # The rewards themselves, over plain lists so that tests can call them on literal completions.

    def samples(self, completions: list, problem_ids: list[str], completion_ids: list | None = None) -> list[Sample]:
        """The completions as Samples (split into reasoning and content) for the verifiers."""
        out = []
        for i, (completion, pid) in enumerate(zip(completions, problem_ids, strict=True)):
            reasoning, content, closed = split_completion(completion_text(completion))
            finish = None
            if completion_ids is not None and self.eos_token_ids:
                ids = completion_ids[i]
                finish = "stop" if len(ids) and ids[-1] in self.eos_token_ids else "length"
            out.append(Sample(pid, i, reasoning, content, finish_reason=finish, think_closed=closed))
        return out

    def problem(self, pid: str) -> Problem:
        """The problem for a dataset row; an unknown id is a bug in the dataset, said plainly."""
        try:
            return self.problems_by_id[pid]
        except KeyError:
            raise KeyError(f"reward: problem_id {pid!r} is not in the problem set") from None

    def accuracy(self, completions: list, problem_ids: list[str], completion_ids: list | None = None) -> list:
        """1.0 verified correct, 0.0 wrong, None when the verifier cannot judge."""
        samples = self.samples(completions, problem_ids, completion_ids)
        if self.workers > 1 and any(self.problem(s.problem_id).kind == "code" for s in samples):
            judged = verify_samples(self.problems_by_id, samples, workers=self.workers, answer_format=self.answer_format,
                                    unsafe_no_sandbox=self.unsafe_no_sandbox)
            verdicts = [s.correct for s in judged]
        else:
            verdicts = [verify_sample(self.problem(s.problem_id), s, answer_format=self.answer_format,
                                      unsafe_no_sandbox=self.unsafe_no_sandbox).correct for s in samples]
        return [None if v is None else float(v) for v in verdicts]

    def format(self, completions: list, problem_ids: list[str], completion_ids: list | None = None) -> list:
        """1.0 for a closed think block followed by an answer the problem's verifier can read, else 0.0."""
        out = []
        for completion, pid in zip(completions, problem_ids, strict=True):
            text = completion_text(completion)
            ok = well_formed(text, self.think_in_prompt, self.answer_format)
            if ok:
                _, content, _ = split_completion(text)
                answer = answer_part(content, self.answer_format)
                # Inside <answer> tags the whole text is the answer; after </think> it must be readable.
                tagged = self.answer_format == "answer_tags"
                ok = bool(answer and answer.strip()) and (tagged or has_answer(self.problem(pid), answer))
            out.append(1.0 if ok else 0.0)
        return out

    def language_consistency(self, completions: list, problem_ids: list[str], completion_ids: list | None = None) -> list:
        """The share of the reasoning written in the target language (R1's language-consistency reward)."""

        out = []
        for completion in completions:
            reasoning, _, _ = split_completion(completion_text(completion))
            out.append(float(language_share(reasoning, self.language)) if reasoning.strip() else 0.0)
        return out

    # Within-group spread: TRL logs the batch-wide `reward_std`; GRPO's advantages use the spread
    # inside each prompt's group, which is the number that says whether a batch teaches anything.

    def _record(self, name: str, values: list, kwargs: dict[str, Any]) -> None:
        self._ledger[name] = values
        if len(self._ledger) < len(self.active):
            return
        totals = weighted_totals([self._ledger[n] for n, _, _ in self.active], self.weights)
        self._ledger = {}
        log_metric = kwargs.get("log_metric")
        spread = group_std(totals, kwargs["problem_id"])
        if log_metric is not None and spread is not None:
            log_metric("reward_group_std", spread)


def weighted_totals(columns: list[list], weights: list[float]) -> list[float | None]:
    """Per completion, the weighted sum of the rewards that are not None (None when all are), as TRL sums them.

    >>> weighted_totals([[1.0, None, None], [1.0, 0.0, None]], [1.0, 0.5])
    [1.5, 0.0, None]
    """
    out: list[float | None] = []
    for row in zip(*columns, strict=True):
        present = [w * v for w, v in zip(weights, row, strict=True) if v is not None and not math.isnan(v)]
        out.append(sum(present) if present else None)
    return out


def group_std(totals: list[float | None], problem_ids: list[str]) -> float | None:
    """The mean over groups (completions of one problem) of the std of their rewards, with Bessel's
    correction as TRL's advantage uses it.

    >>> round(group_std([1.0, 0.0, 1.0, 1.0], ["a", "a", "b", "b"]), 4)
    0.3536
    """
    groups: dict[str, list[float]] = defaultdict(list)
    for total, pid in zip(totals, problem_ids, strict=True):
        if total is not None:
            groups[pid].append(total)
    stds = []
    for values in groups.values():
        if len(values) > 1:
            mean = sum(values) / len(values)
            stds.append(math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)))
    return sum(stds) / len(stds) if stds else None

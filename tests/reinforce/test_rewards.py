"""The reward functions on literal completions, through the real verifiers and language_share."""

from __future__ import annotations

import math

import pytest
from need import need

from distill.records import Problem
from distill.reinforce.rewards import RewardSet, group_std, weighted_totals, well_formed

MATH = Problem(id="m1", prompt="Ann has 40 apples and gets 2 more. How many?", answer="42", source="toy")
FRACTION = Problem(id="m2", prompt="Half of one?", answer="\\frac{1}{2}")
NO_REFERENCE = Problem(id="m3", prompt="A problem whose reference answer is missing.", answer=None)
CODE = Problem(
    id="c1",
    prompt="Write add(a, b).",
    kind="code",
    tests={"type": "asserts", "asserts": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"], "setup": "", "entry_point": "add"},
)
PROBLEMS = {p.id: p for p in (MATH, FRACTION, NO_REFERENCE, CODE)}
ALL = {"accuracy": 1.0, "format": 1.0, "language": 1.0}


def rewards(**kw) -> RewardSet:
    return RewardSet(PROBLEMS, kw.pop("weights", ALL), **kw)


# The chat template opens <think> in the prompt, so completions start inside the block.
CORRECT = "40 + 2: 0+2=2, 4+0=4, so 42.\n</think>\n\nThe answer is \\boxed{42}."
WRONG = "40 + 2: 0+2=2, 4+0=4, so 43.\n</think>\n\nThe answer is \\boxed{43}."
UNPARSEABLE = "I add them.\n</think>\n\nThe answer is many apples."
UNCLOSED = "40 + 2: 0+2=2, 4+0=4, so 42. The answer is \\boxed{42}."
TWO_BLOCKS = "first\n</think>\n<think>again\n</think>\n\nThe answer is \\boxed{42}."
MIXED = "首先 我们 计算 四十 加 二 得到 answer 42\n</think>\n\nThe answer is \\boxed{42}."
CHINESE = "首先我们计算四十加二等于四十二\n</think>\n\nThe answer is \\boxed{42}."


def test_accuracy_on_literal_completions() -> None:
    r = rewards()
    got = r.accuracy([CORRECT, WRONG, UNPARSEABLE, UNCLOSED], ["m1"] * 4)
    assert got == [1.0, 0.0, 0.0, 0.0]


def test_accuracy_uses_math_equivalence() -> None:
    got = rewards().accuracy(["halve\n</think>\n\n\\boxed{0.5}", "halve\n</think>\n\n\\boxed{0.6}"], ["m2", "m2"])
    assert got == [1.0, 0.0]


def test_null_verdict_gives_no_signal() -> None:
    # The verifier cannot judge against a missing reference (correct: null): no reward, not a zero.
    assert rewards().accuracy([CORRECT], ["m3"]) == [None]


def test_accuracy_reads_conversational_completions() -> None:
    got = rewards().accuracy([[{"role": "assistant", "content": CORRECT}]], ["m1"])
    assert got == [1.0]


def test_format_rewards_a_closed_block_followed_by_an_answer() -> None:
    got = rewards().format([CORRECT, WRONG, UNPARSEABLE, UNCLOSED, TWO_BLOCKS, "\n</think>\n\n\\boxed{42}"], ["m1"] * 6)
    # A wrong answer is well formatted; no readable answer, no closed block, two blocks or an empty
    # block are not.
    assert got == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]


def test_format_when_the_prompt_does_not_open_think() -> None:
    r = rewards(think_in_prompt=False)
    assert r.format(["<think>\n2+40\n</think>\n\n\\boxed{42}", CORRECT], ["m1", "m1"]) == [1.0, 0.0]


def test_answer_tags_template() -> None:
    r = rewards(answer_format="answer_tags", think_in_prompt=False)
    good = " <think> 40 + 2 = 42 </think> <answer> 42 </answer>"
    wrong = " <think> 40 + 2 = 43 </think> <answer> 43 </answer>"
    untagged = " <think> 40 + 2 = 42 </think> 42"
    unclosed = " <think> 40 + 2 = 42 <answer> 42 </answer>"
    completions = [good, wrong, untagged, unclosed]
    assert r.format(completions, ["m1"] * 4) == [1.0, 1.0, 0.0, 0.0]
    assert r.accuracy(completions, ["m1"] * 4) == [1.0, 0.0, 0.0, 0.0]


def test_well_formed_answer_tags_rejects_text_around_the_answer() -> None:
    assert not well_formed("<think> a </think> <answer> 4 </answer> and more", False, "answer_tags")
    assert not well_formed("<think> a </think> <answer> 4 </answer><answer> 5 </answer>", False, "answer_tags")


def test_language_consistency_is_the_share_of_target_language_words() -> None:
    r = rewards()
    english, mixed, chinese, unclosed, empty = r.language_consistency(
        [CORRECT, MIXED, CHINESE, UNCLOSED, "\n</think>\n\n\\boxed{42}"], ["m1"] * 5
    )
    assert english == 1.0
    assert 0.0 < mixed < 1.0
    assert chinese < 0.1
    assert unclosed == 1.0  # an unclosed block is all reasoning, in English
    assert empty == 0.0  # no reasoning earns nothing
    assert rewards(language="zh").language_consistency([CHINESE], ["m1"]) == [1.0]


def test_code_rewarded_through_the_sandbox_in_parallel() -> None:
    right = "I add.\n</think>\n\n```python\ndef add(a, b):\n    return a + b\n```"
    wrong = "I subtract.\n</think>\n\n```python\ndef add(a, b):\n    return a - b\n```"
    r = rewards(workers=2)
    assert r.accuracy([right, wrong, right, CORRECT], ["c1", "c1", "c1", "m1"]) == [1.0, 0.0, 1.0, 1.0]
    assert r.format([right, "no block\n</think>\n\nadd them"], ["c1", "c1"]) == [1.0, 0.0]


def test_truncated_completions_are_marked_and_judged_unfinished() -> None:
    r = rewards(eos_token_ids=[7])
    samples = r.samples([CORRECT, UNCLOSED], ["m1", "m1"], completion_ids=[[1, 2, 7], [1, 2, 3]])
    assert [s.finish_reason for s in samples] == ["stop", "length"]
    assert [s.think_closed for s in samples] == [True, False]


def test_trl_shaped_functions_are_named_weighted_and_log_group_spread() -> None:
    r = rewards(weights={"accuracy": 1.0, "format": 0.5, "language": 0.0})
    funcs = r.funcs
    assert [f.__name__ for f in funcs] == ["accuracy", "format"]  # zero weight: not a reward
    assert r.weights == [1.0, 0.5]
    logged: dict[str, float] = {}
    kwargs = {"problem_id": ["m1", "m1", "m3", "m3"], "log_metric": logged.__setitem__}
    completions = [CORRECT, WRONG, CORRECT, UNPARSEABLE]
    columns = [f(prompts=["p"] * 4, completions=completions, completion_ids=None, **kwargs) for f in funcs]
    assert columns == [[1.0, 0.0, None, None], [1.0, 1.0, 1.0, 0.0]]
    # totals: m1 -> 1.5, 0.5 (std 0.707); m3 -> 0.5, 0.0 (accuracy gives no signal; std 0.354)
    assert logged["reward_group_std"] == pytest.approx((math.sqrt(0.5) + math.sqrt(0.125)) / 2)


def test_unknown_reward_and_unknown_problem_are_named() -> None:
    with pytest.raises(ValueError, match="unknown reward"):
        RewardSet(PROBLEMS, {"accuracy": 1.0, "length": 1.0})
    with pytest.raises(KeyError, match="nope"):
        rewards().accuracy([CORRECT], ["nope"])


def test_weighted_totals_and_group_std_follow_trl() -> None:
    assert weighted_totals([[None, 1.0], [None, 0.0]], [1.0, 1.0]) == [None, 1.0]
    assert group_std([1.0, 1.0], ["a", "a"]) == 0.0
    assert group_std([1.0, None], ["a", "a"]) is None


# Wrong programs that each earned accuracy 1.0 against the harness before issue #13 (tests/verify/forgeries.py
# has the full suite): an object equal to everything, builtins patched so the asserts never run, the
# harness's own helpers rewritten from the caller's frame, and the asserts read back from memory.
FORGED = {
    "always_equal": "class Yes:\n    def __eq__(self, other):\n        return True\n"
                    "def add(a, b):\n    return Yes()\n",
    "patched_exec": "import builtins\n_exec = builtins.exec\n"
                    "builtins.exec = lambda code, *a, **k: None if 'assert' in getattr(code, 'co_filename', '') "
                    "else _exec(code, *a, **k)\ndef add(a, b):\n    return 0\n",
    "caller_frames": "import sys\ndef add(a, b):\n    frame = sys._getframe(1)\n    while frame is not None:\n"
                     "        for name in ('_kind', 'failure'):\n            if name in frame.f_globals:\n"
                     "                frame.f_globals[name] = lambda *x: 'passed'\n        frame = frame.f_back\n"
                     "    return 0\n",
    "gc_scan": "import gc, re\ndef add(a, b):\n    for o in gc.get_objects():\n"
               "        for s in (o if isinstance(o, (list, tuple)) else ()):\n"
               "            m = re.search(r'add\\(%d, %d\\) == (-?\\d+)' % (a, b), s) if isinstance(s, str) else None\n"
               "            if m:\n                return int(m.group(1))\n    return 0\n",
}


def _need_bwrap() -> None:
    import shutil

    need(shutil.which("bwrap") is not None, "bubblewrap (bwrap) is not installed (scripts/setup.sh installs it)")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_forged_code_completion_earns_accuracy_zero(workers: int) -> None:
    _need_bwrap()
    right = "I add.\n</think>\n\n```python\ndef add(a, b):\n    return a + b\n```"
    completions = [f"I forge.\n</think>\n\n```python\n{program}```" for program in FORGED.values()] + [right]
    accuracy = rewards(workers=workers, weights={"accuracy": 1.0}).funcs[0]
    values = accuracy(prompts=["p"] * len(completions), completions=completions, completion_ids=None,
                      problem_id=["c1"] * len(completions))
    assert values == [0.0] * len(FORGED) + [1.0]

"""A seeded generator of arithmetic word problems with exact answers and gold R1-format traces.

Each problem starts from a number and applies a few steps: add or subtract a multi-digit number,
or multiply by one digit. The gold trace works every step column by column, right to left, the
way a small model can learn it, then gives the answer in `\\boxed{}` after `</think>`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from distill.records import Problem

NAMES = ("Ann", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jo")
ITEMS = ("apples", "coins", "books", "stamps", "shells", "cards", "beads", "pens")


@dataclass(frozen=True)
class Step:
    """One operation: `op` is '+', '-' or '*', applied with `operand`."""

    op: str
    operand: int


def _digits(rng: random.Random, n: int) -> int:
    return rng.randint(10 ** (n - 1) if n > 1 else 1, 10**n - 1)


def make_steps(rng: random.Random, difficulty: int) -> tuple[int, list[Step]]:
    """Draw a start value and the steps for one problem; harder means more steps and more digits."""
    width = 1 + min(difficulty, 3)
    n_steps = 1 + (difficulty + 1) // 2
    start = value = _digits(rng, width)
    steps: list[Step] = []
    for _ in range(n_steps):
        op = rng.choice("+-*") if value < 10**5 else rng.choice("+-")
        if op == "*":
            operand = rng.randint(2, 9)
            value *= operand
        elif op == "-" and value > 1:
            operand = rng.randint(1, min(value, 10**width - 1))
            value -= operand
        else:
            op, operand = "+", _digits(rng, rng.randint(1, width))
            value += operand
        steps.append(Step(op, operand))
    return start, steps


def apply(start: int, steps: list[Step]) -> int:
    """The exact result of applying `steps` to `start`."""
    value = start
    for step in steps:
        value = value + step.operand if step.op == "+" else value - step.operand if step.op == "-" else value * step.operand
    return value


def work_step(value: int, step: Step) -> tuple[str, int]:
    """The column-by-column working of one step and its result.

    >>> work_step(47, Step("+", 85))[0]
    '47 + 85: 7+5=12, 4+8+1=13, so 132.'
    >>> work_step(141, Step("-", 25))[0]
    '141 - 25: 11-5=6, 4-1-2=1, 1-0=1, so 116.'
    >>> work_step(47, Step("*", 3))[0]
    '47 * 3: 7*3=21, 4*3+2=14, so 141.'
    """
    a = str(value)[::-1]
    parts: list[str] = []
    if step.op == "*":
        carry = 0
        for digit in a:
            product = int(digit) * step.operand + carry
            parts.append(f"{digit}*{step.operand}" + (f"+{carry}" if carry else "") + f"={product}")
            carry = product // 10
        result = value * step.operand
    else:
        b = str(step.operand)[::-1]
        carry = 0
        for i in range(len(a) if step.op == "-" else max(len(a), len(b))):
            x = int(a[i]) if i < len(a) else 0
            y = int(b[i]) if i < len(b) else 0
            if step.op == "+":
                total = x + y + carry
                parts.append(f"{x}+{y}" + (f"+{carry}" if carry else "") + f"={total}")
                carry = total // 10
            else:
                top = x - carry
                borrow = 1 if top < y else 0
                shown = f"{10 + x}" if borrow else f"{x}"
                parts.append(shown + (f"-{carry}" if carry else "") + f"-{y}={top + 10 * borrow - y}")
                carry = borrow
        result = value + step.operand if step.op == "+" else value - step.operand
    return f"{value} {step.op} {step.operand}: {', '.join(parts)}, so {result}.", result


def gold_trace(start: int, steps: list[Step]) -> tuple[str, str]:
    """The gold reasoning (inside the think block) and the final answer text for a problem."""
    lines = [f"Start with {start}."]
    value = start
    for step in steps:
        line, value = work_step(value, step)
        lines.append(line)
    return "\n".join(lines), f"The answer is \\boxed{{{value}}}."


def _sentence(step: Step, name: str, item: str) -> str:
    if step.op == "+":
        return f"{name} gets {step.operand} more {item}."
    if step.op == "-":
        return f"{name} gives away {step.operand} {item}."
    return f"Then the number of {item} becomes {step.operand} times as many."


def make_problem(rng: random.Random, difficulty: int, index: int, seed: int) -> tuple[Problem, str]:
    """One toy problem and its full gold completion (`<think>\\n...\\n</think>\\n\\n...`)."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    start, steps = make_steps(rng, difficulty)
    text = " ".join([f"{name} has {start} {item}."] + [_sentence(s, name, item) for s in steps])
    text += f" How many {item} does {name} have now?"
    reasoning, answer_text = gold_trace(start, steps)
    problem = Problem(
        id=f"toy-{seed}-{index}",
        prompt=text,
        kind="math",
        answer=str(apply(start, steps)),
        source="toy",
        meta={"difficulty": difficulty, "steps": len(steps)},
    )
    return problem, f"<think>\n{reasoning}\n</think>\n\n{answer_text}"


def generate(n: int, seed: int = 0, difficulty: int | tuple[int, int] = (1, 3)) -> list[tuple[Problem, str]]:
    """`n` toy problems with their gold completions; the same seed gives the same problems.

    `difficulty` is one level (1 = one step on two-digit numbers ... 5 = four steps on four digits)
    or an inclusive range drawn uniformly per problem.
    """
    rng = random.Random(seed)
    low, high = (difficulty, difficulty) if isinstance(difficulty, int) else difficulty
    if not 1 <= low <= high <= 5:
        raise ValueError(f"difficulty must be within 1..5, got {difficulty!r}")
    return [make_problem(rng, rng.randint(low, high), i, seed) for i in range(n)]

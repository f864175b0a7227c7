"""Prompts as R1 builds them: no system prompt by default; math prompts end with the boxed-answer
instruction; code prompts as given; rendered with the model's own chat template."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from distill.records import Message, Problem
from distill.sampling.profile import TeacherProfile
from distill.text import THINK_OPEN


@lru_cache(maxsize=16)
def _read_template(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


def user_text(problem: Problem, profile: TeacherProfile) -> str:
    """The user turn for a string prompt: the profile's template, or the prompt plus the math suffix."""
    assert isinstance(problem.prompt, str)
    suffix = profile.math_prompt_suffix if problem.kind == "math" else ""
    if profile.prompt_template:
        template = _read_template(str(profile.resolve(profile.prompt_template)))
        return template.format(prompt=problem.prompt, suffix=suffix)
    return f"{problem.prompt}\n{suffix}" if suffix else problem.prompt


def build_prompt(problem: Problem, profile: TeacherProfile) -> list[Message]:
    """The chat messages sent to a teacher for one problem.

    >>> from distill.sampling.profile import TeacherProfile
    >>> build_prompt(Problem(id="p", prompt="1+1?"), TeacherProfile(name="t", model="m"))[0]["content"]
    '1+1?\\nPlease reason step by step, and put your final answer within \\\\boxed{}.'
    """
    if isinstance(problem.prompt, list):
        messages = [dict(m) for m in problem.prompt]
    else:
        messages = [{"role": "user", "content": user_text(problem, profile)}]
    if profile.system_prompt and not any(m.get("role") == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": profile.system_prompt})
    return messages


def render_prompt(messages: list[Message], tokenizer: Any, profile: TeacherProfile) -> str:
    """The prompt text for local engines, from the tokenizer's chat template.

    `open_think` is passed to templates that take it (the tiny world's); when the profile wants an
    open think block and the template did not add one, it is appended, so completions always start
    inside the block for such teachers.
    """
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                             open_think=profile.open_think)
    else:
        text = "\n\n".join(m["content"] for m in messages) + "\n\n"
    if profile.open_think and not text.rstrip().endswith(THINK_OPEN):
        text += THINK_OPEN + "\n"
    return text

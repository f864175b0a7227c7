"""Teacher sampling: profiles, prompts, backends (transformers, openai, vllm), the resumable run store.

    profile = resolve_teacher("tiny")                 # a shipped name, or a path to a profile
    teacher = build_teacher(profile)
    samples = teacher.generate(problems, SamplingConfig(n=4, max_new_tokens=512))
    generate_run(problems, profile, SamplingConfig(n=4), "runs/r1")   # resumable, exactly once per key
"""

from __future__ import annotations

from distill.rundir import parse_shard, read_manifest, read_samples
from distill.sampling.config import Budget, SamplingConfig
from distill.sampling.engine import Teacher, build_teacher, generate_run
from distill.sampling.profile import TeacherProfile, load_profile, profile_for_model, resolve_teacher
from distill.sampling.prompts import build_prompt, render_prompt

__all__ = [
    "Budget", "SamplingConfig", "Teacher", "TeacherProfile", "build_prompt", "build_teacher", "generate_run",
    "load_profile", "parse_shard", "profile_for_model", "read_manifest", "read_samples", "render_prompt",
    "resolve_teacher",
]

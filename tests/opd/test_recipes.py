"""The shipped KD and on-policy distillation recipes load offline, reach their teachers, and say what is unverified."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.opd import load_opd_recipe
from distill.paths import shipped_root
from distill.sampling import resolve_teacher
from distill.train.recipe import load_student_recipe

OPD = sorted((shipped_root() / "students" / "opd").glob("*.yaml"))
KD = sorted((shipped_root() / "students" / "kd").glob("*.yaml"))


@pytest.mark.parametrize("path", OPD, ids=lambda p: p.name)
def test_every_opd_recipe_loads_and_names_a_teacher_that_can_score(path: Path) -> None:
    recipe = load_opd_recipe(path.stem)  # reachable by its shipped name
    assert recipe.path == str(path.resolve())
    profile = resolve_teacher(teacher=recipe.teacher)
    if path.stem == "tiny":
        assert profile.backend == "transformers" and recipe.opd.loss == "reverse_kl"
        return
    # A 32B teacher is served by vLLM: it scores sampled tokens, so the loss is the sampled form.
    assert profile.backend == "openai" and profile.tokenizer and recipe.opd.loss == "sampled"
    assert "tokenizer compatibility unverified" in recipe.notes
    assert "TOKENIZER COMPATIBILITY UNVERIFIED" in path.read_text()


@pytest.mark.parametrize("path", KD, ids=lambda p: p.name)
def test_every_kd_recipe_validates_and_says_its_tokenizers_are_unverified(path: Path) -> None:
    recipe = load_student_recipe(f"kd/{path.stem}")
    assert recipe.objective == "kd" and recipe.kd.top_k == 20 and recipe.kd.loss == "forward_kl"
    assert recipe.file(recipe.chat_template or "").is_file()
    assert "tokenizer compatibility unverified" in recipe.sources
    text = path.read_text()
    assert "TOKENIZER COMPATIBILITY UNVERIFIED" in text and "Cross-tokenizer pairs are refused" in text


def test_the_pairs_cover_both_teachers_and_both_student_sizes() -> None:
    kd = {(load_student_recipe(f"kd/{p.stem}").model, p.stem.split("from-")[1]) for p in KD}
    assert kd == {("Qwen/Qwen2.5-Math-1.5B", "r1-32b"), ("Qwen/Qwen2.5-Math-7B", "r1-32b"), ("Qwen/Qwen2.5-Math-7B", "qwq-32b")}
    teachers = {load_opd_recipe(p.stem).teacher for p in OPD}
    assert teachers == {"tiny", "r1-distill-qwen-32b-serve", "qwq-32b-serve"}

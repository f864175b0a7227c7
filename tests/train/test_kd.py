"""Offline logit KD (`objective: kd`): each loss against a hand computation on a 3-token example, packed equals
unpacked, the teacher's top-K read through the sidecar's memory map, mismatched tokenizers and templates
refused naming the first differing id, and `distill train` with the KD objective end to end."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from distill.errors import ConfigError
from distill.filters import filter_run, load_filter_config
from distill.jsonl import read_jsonl, write_jsonl
from distill.records import to_dict
from distill.sampling import generate_run, resolve_teacher
from distill.toy.problems import generate
from distill.train import train
from distill.train.data import IGNORE, read_corpus
from distill.train.kd import KDCollator, mean_loss, token_losses
from distill.train.kd_data import build_kd_dataset, check_same_tokens
from distill.train.recipe import KDSettings, load_student_recipe
from distill.train.sft import load_tokenizer
from distill.verify_run import verify_run

REPO = Path(__file__).resolve().parents[2]
torch.set_num_threads(1)


# ------------------------------------------------------------------ the losses, by hand


def hand(logits: list[list[float]], labels: list[int], top_ids: list[list[int]], top_lp: list[list[float]],
         loss: str, beta: float = 0.5, temperature: float = 1.0, alpha: float = 0.0) -> float:
    """The KD loss of module distill.train.kd written out with `math`: per trained token, K+1 buckets (the
    teacher's K ids and the rest), tempered alike, the divergence times T^2, mixed with CE by alpha, averaged."""
    total = 0.0
    for z, label, ids, t in zip(logits, labels, top_ids, top_lp, strict=True):
        norm = math.log(sum(math.exp(v) for v in z))
        s = [v - norm for v in z]
        q = [math.exp(s[i]) for i in ids]
        q.append(1 - sum(q))
        p = [math.exp(v) for v in t]
        p.append(1 - sum(p))
        if temperature != 1.0:
            q = [x ** (1 / temperature) for x in q]
            q = [x / sum(q) for x in q]
            p = [x ** (1 / temperature) for x in p]
            p = [x / sum(p) for x in p]
        if loss == "forward_kl":
            kd = sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))
        elif loss == "reverse_kl":
            kd = sum(b * math.log(b / a) for a, b in zip(p, q, strict=True))
        else:
            m = [beta * a + (1 - beta) * b for a, b in zip(p, q, strict=True)]
            kd = beta * sum(a * math.log(a / c) for a, c in zip(p, m, strict=True)) + \
                (1 - beta) * sum(b * math.log(b / c) for b, c in zip(q, m, strict=True))
        total += alpha * -s[label] + (1 - alpha) * kd * temperature**2
    return total / len(labels)


# Four positions, vocabulary 5: logits at positions 0..2 predict the trained tokens at 1..3 (position 0 is prompt).
LOGITS = [[1.0, 0.2, -0.5, 2.0, 0.0], [0.3, 1.5, 0.1, -1.0, 0.4], [-0.2, 0.0, 2.5, 0.7, 1.1], [0.0] * 5]
LABELS = [IGNORE, 3, 1, 2]
TOP_IDS = [[0, 0], [3, 0], [1, 4], [2, 4]]
TOP_LP = [[0.0, 0.0], [math.log(0.6), math.log(0.3)], [math.log(0.5), math.log(0.2)], [math.log(0.7), math.log(0.25)]]


@pytest.mark.parametrize(("loss", "extra"), [
    ("forward_kl", {}), ("reverse_kl", {}), ("jsd", {"beta": 0.5}), ("jsd", {"beta": 0.2}),
    ("forward_kl", {"temperature": 2.0}), ("reverse_kl", {"alpha": 0.3}),
])
def test_each_kd_loss_matches_a_hand_computation_on_three_tokens(loss: str, extra: dict) -> None:
    settings = KDSettings(loss=loss, top_k=2, **extra)
    got = mean_loss(torch.tensor([LOGITS]), torch.tensor([LABELS]), torch.tensor([TOP_IDS]), torch.tensor([TOP_LP]),
                    settings)
    want = hand([LOGITS[t] for t in range(3)], LABELS[1:], TOP_IDS[1:], TOP_LP[1:], loss, **extra)
    assert got.item() == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_the_mass_beyond_the_top_k_counts() -> None:
    # A student that matches the teacher's top-2 probabilities exactly has zero loss; moving its mass from the
    # rest onto another id outside the top 2 keeps the loss at zero (the rest bucket is one), but taking mass
    # from the top 2 into the rest is charged.
    settings = KDSettings(loss="forward_kl", top_k=2)
    probs = torch.tensor([0.6, 0.3, 0.05, 0.03, 0.02])
    ids, lp = torch.tensor([[[0, 0], [0, 1]]]), torch.log(torch.tensor([[[1.0, 1.0], [0.6, 0.3]]]))
    labels = torch.tensor([[IGNORE, 0]])

    def loss_of(student_probs: torch.Tensor) -> float:
        return mean_loss(torch.log(torch.stack([student_probs, student_probs]))[None], labels, ids, lp, settings).item()

    assert loss_of(probs) == pytest.approx(0.0, abs=1e-6)
    assert loss_of(torch.tensor([0.6, 0.3, 0.0999, 0.00005, 0.00005])) == pytest.approx(0.0, abs=1e-6)
    assert loss_of(torch.tensor([0.5, 0.2, 0.1, 0.1, 0.1])) > 0.02


# ------------------------------------------------------------------ a KD corpus from the tiny teacher


@pytest.fixture(scope="module")
def kd_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus filtered from 16 samples of the tiny teacher with top-8 logprobs (rows with ids and references)."""
    root = tmp_path_factory.mktemp("kd")
    problems = [p for p, _ in generate(16, seed=21, difficulty=(1, 1))]
    write_jsonl(root / "problems.jsonl", (to_dict(p) for p in problems))
    profile = resolve_teacher("tiny", settings=["local.batch_size=16"])
    config = profile.sampling.replace(n=1, max_new_tokens=160, seed=0, logprobs=8)
    generate_run(problems, profile, config, root / "run", problems_source=str(root / "problems.jsonl"), progress=False)
    verify_run(root / "run")
    # Every sample, right or wrong: KD learns the teacher's distribution, not only its correct answers.
    settings = ["decontamination.enabled=false", "correctness.enabled=false", "duplicates.exact=false",
                "duplicates.near=false"]
    funnel = filter_run(root / "run", root / "corpus", config=load_filter_config(None, settings))
    assert funnel["remaining"] >= 12
    return root / "corpus"


def kd_recipe(tmp_path: Path, *settings: str):
    return load_student_recipe("tiny-student", ["objective=kd", "kd.top_k=8", "max_length=320", *settings])


@pytest.mark.parametrize("layout", ["rows", "padding_free"])
def test_packed_kd_loss_equals_unpacked(kd_corpus: Path, tmp_path: Path, layout: str) -> None:
    from transformers import AutoModelForCausalLM

    recipe = kd_recipe(tmp_path)
    tokenizer = load_tokenizer(recipe, recipe.resolve(recipe.model))
    dataset, report, records = build_kd_dataset(read_corpus(kd_corpus), tokenizer, recipe, kd_corpus)
    # No logprob is held in the dataset: only ids, labels and each token's record index and step.
    assert set(dataset.column_names) == {"input_ids", "labels", "kd_row", "kd_pos"}
    model = AutoModelForCausalLM.from_pretrained(recipe.resolve(recipe.model), dtype=torch.float32)
    model.config.use_cache = False
    model.eval()
    from distill.train.data import pack_rows

    padded = KDCollator(records, tokenizer.pad_token_id, "off", 8)(list(dataset))
    packed_set = pack_rows(dataset, 320)
    assert len(packed_set) < len(dataset)
    packed = KDCollator(records, tokenizer.pad_token_id, layout, 8)(list(packed_set))
    with torch.no_grad():
        results = []
        for batch in (padded, packed):
            inputs = {k: v for k, v in batch.items() if k not in ("labels", "kd_ids", "kd_logprobs")}
            logits = model(**inputs).logits
            loss, _, _, mask = token_losses(logits, batch["labels"], batch["kd_ids"], batch["kd_logprobs"], recipe.kd)
            results.append((loss.sum() / mask.sum(), mask.sum()))
    assert results[0][1] == results[1][1] == report.label_tokens
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-5)
    records.close()


def test_mismatched_tokenizers_are_refused_naming_the_first_differing_id(kd_corpus: Path, tmp_path: Path) -> None:
    from distill.toy.tokenizer import build_tokenizer

    recipe = kd_recipe(tmp_path)
    teacher = load_tokenizer(recipe, str(REPO / "teachers" / "tiny"))
    other = build_tokenizer(seed=7)  # the same recipe of tokenizer, trained on other text: other ids
    other.chat_template = teacher.chat_template
    with pytest.raises(ConfigError, match=r"tokenizers differ at token id \d+ \('.*' for the teacher, '.*' for the student\)"):
        check_same_tokens(teacher, other, range(len(teacher)), "corpus")
    check_same_tokens(teacher, load_tokenizer(recipe, recipe.resolve(recipe.model)), range(len(teacher)), "corpus")
    # Through the dataset builder the student's rendering of the prompt already differs: named by position and id.
    with pytest.raises(ConfigError, match=r"corpus.jsonl:1: the student's chat template renders the prompt to other "
                                          r"ids than the teacher saw: at position \d+ the student has id \d+"):
        build_kd_dataset(read_corpus(kd_corpus), other, recipe, kd_corpus)


def test_a_template_that_renders_another_prompt_is_refused(kd_corpus: Path, tmp_path: Path) -> None:
    recipe = kd_recipe(tmp_path)
    tokenizer = load_tokenizer(recipe, recipe.resolve(recipe.model))
    tokenizer.chat_template = tokenizer.chat_template.replace("{{- '<think>\\n' -}}", "{{- '<think>' -}}")
    with pytest.raises(ConfigError, match=r"at position \d+ the student has .* where the teacher had id \d+ \('.*'\)"):
        build_kd_dataset(read_corpus(kd_corpus), tokenizer, recipe, kd_corpus)


def test_a_corpus_without_references_or_with_a_moved_run_is_refused(kd_corpus: Path, tmp_path: Path) -> None:
    recipe = kd_recipe(tmp_path)
    tokenizer = load_tokenizer(recipe, recipe.resolve(recipe.model))
    plain = tmp_path / "plain"
    plain.mkdir()
    rows = [r for _, r in read_jsonl(kd_corpus / "corpus.jsonl")]
    write_jsonl(plain / "corpus.jsonl", [{k: v for k, v in r.items() if k not in ("token_ids", "logprobs")} for r in rows])
    with pytest.raises(ConfigError, match="corpus.jsonl:1: objective kd needs rows with 'token_ids' and 'logprobs'"):
        build_kd_dataset(read_corpus(plain), tokenizer, recipe, plain)
    shutil.copy(kd_corpus / "corpus.jsonl", plain / "corpus.jsonl")
    with pytest.raises(ConfigError, match="is not named in .*local.json"):
        build_kd_dataset(read_corpus(plain), tokenizer, recipe, plain)
    rows[0]["token_ids"] = rows[0]["token_ids"][:-1]
    write_jsonl(plain / "corpus.jsonl", rows)
    shutil.copy(kd_corpus / "local.json", plain / "local.json")
    with pytest.raises(ConfigError, match="corpus.jsonl:1: field 'token_ids' differs from the ids of its logprob record"):
        build_kd_dataset(read_corpus(plain), tokenizer, recipe, plain)
    with pytest.raises(ConfigError, match="kd.top_k': 9, but .* stores only 8"):
        build_kd_dataset(read_corpus(kd_corpus), tokenizer, kd_recipe(tmp_path, "kd.top_k=9"), kd_corpus)


def test_distill_train_with_the_kd_objective_learns_and_resumes(kd_corpus: Path, tmp_path: Path) -> None:
    settings = ["objective=kd", "kd.top_k=8", "max_length=320", "per_device_train_batch_size=4", "learning_rate=2e-3",
                "warmup_ratio=0.0", "lr_scheduler_type=constant", "logging_steps=1", "save_steps=4"]
    summary = train("tiny-student", kd_corpus, tmp_path / "kd", max_steps=8, settings=settings)
    history = summary["log_history"]
    assert summary["global_step"] == 8 and len(history) == 8
    assert all("kd_loss" in h for h in history)
    first, last = history[0]["kd_loss"], sum(h["kd_loss"] for h in history[-3:]) / 3
    assert last < first * 0.9, (first, last)
    assert "objective: kd" in (tmp_path / "kd" / "recipe.yaml").read_text()
    again = train("tiny-student", kd_corpus, tmp_path / "kd", max_steps=10, settings=settings)
    assert again["resumed_from"].endswith("checkpoint-8") and again["global_step"] == 10

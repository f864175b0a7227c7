"""A byte-level BPE tokenizer for the tiny world, built locally with the `tokenizers` library.

Digits are split one per token so that column arithmetic is learnable, and the ChatML and think
markers are single special tokens. Saved as a `PreTrainedTokenizerFast` with a chat template.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from distill.paths import shipped_path
from distill.text import MATH_PROMPT_SUFFIX, THINK_CLOSE, THINK_OPEN
from distill.toy.problems import generate

if TYPE_CHECKING:  # tokenizers and transformers load when the tokenizer is built, not on import
    from transformers import PreTrainedTokenizerFast

EOS = "<|im_end|>"
PAD = "<|endoftext|>"
SPECIAL_TOKENS = [PAD, "<|im_start|>", EOS]


def toy_corpus(n: int = 3000, seed: int = 12345) -> Iterable[str]:
    """Text the tokenizer is trained on: toy prompts and gold completions, plus the math prompt suffix."""
    for problem, completion in generate(n, seed=seed, difficulty=(1, 5)):
        yield f"system\nuser\n{problem.prompt} {MATH_PROMPT_SUFFIX}\nassistant\n{completion}"


def build_tokenizer(vocab_size: int = 512, seed: int = 12345) -> PreTrainedTokenizerFast:
    """Train the tiny world's tokenizer from scratch (deterministic, a second or two on one core)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(toy_corpus(seed=seed), trainer=trainer)
    # Think markers are whole tokens but not special ones (as in R1's tokenizer), so decoding with
    # skip_special_tokens=True keeps them in the text.
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in (THINK_OPEN, THINK_CLOSE)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=None,
        bos_token=None,
        additional_special_tokens=["<|im_start|>"],
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
        padding_side="left",
    )
    # The toy world's ChatML template with the think block (shipped beside the other students' templates).
    fast.chat_template = shipped_path("students", "templates", "toy-think.jinja").read_text(encoding="utf-8")
    return fast


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, out: str | Path) -> None:
    """Save the tokenizer so that `AutoTokenizer.from_pretrained(out)` returns the same ids."""
    tokenizer.save_pretrained(str(out))

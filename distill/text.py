"""Text helpers every stage shares: the think block, R1's prompt and sampling defaults, and text statistics.

- The think block: `THINK_OPEN`/`THINK_CLOSE`, `split_completion` (reasoning and answer of a teacher's
  output, however the block arrives) and `assistant_text` (the assistant turn as corpora store it).
- R1's defaults: the math prompt suffix and the sampling values of the DeepSeek-R1 paper and model card.
- Text statistics for filters and rewards: normalisation, words, Unicode script shares (language
  consistency), compression ratio and repeated n-grams.

Language identification here is script statistics: each word is assigned the Unicode script of
its letters (Latin, Han, Cyrillic, ...), and a language is judged by the share of words in its
script. This catches what R1 filtered (chains of thought that drift from English into Chinese or
back) with nothing to download; it cannot tell two languages of one script apart.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections import Counter

from distill.records import Problem

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

# DeepSeek-R1 (paper, "Evaluation setup", and the R1 model card): temperature 0.6, top-p 0.95, up to
# 32,768 generated tokens, and math prompts that ask for the final answer in \\boxed{}.
R1_TEMPERATURE = 0.6
R1_TOP_P = 0.95
R1_MAX_NEW_TOKENS = 32768
MATH_PROMPT_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."


def split_completion(text: str, reasoning: str | None = None) -> tuple[str, str, bool]:
    """Return `(reasoning, content, think_closed)` for a teacher's output.

    The same completion gives the same split whether the opening `<think>` is in the output, only
    the closing `</think>` is (the prompt opened the block), or the server sent the reasoning in a
    separate field (`reasoning_content` / `reasoning`). A completion whose think block never
    closes is kept whole as reasoning with `think_closed=False`, so the filter can drop it.

    >>> split_completion("<think>\\nadd\\n</think>\\n\\nThe answer is 4.")
    ('add', 'The answer is 4.', True)
    >>> split_completion("add\\n</think>\\n\\nThe answer is 4.")
    ('add', 'The answer is 4.', True)
    >>> split_completion("The answer is 4.", reasoning="add\\n")
    ('add', 'The answer is 4.', True)
    >>> split_completion("<think>\\nadd and add and")
    ('add and add and', '', False)
    """
    if reasoning is not None:
        body = text
        if THINK_CLOSE in body:  # some servers echo the block in the content as well
            body = body.split(THINK_CLOSE, 1)[1]
        return reasoning.strip(), body.strip(), True
    body = text.lstrip()
    if body.startswith(THINK_OPEN):
        body = body[len(THINK_OPEN):]
    if THINK_CLOSE not in body:
        return body.strip(), "", False
    thought, content = body.split(THINK_CLOSE, 1)
    return thought.strip(), content.strip(), True


def default_messages(problem: Problem) -> list[dict[str, str]]:
    """R1's prompt for a problem when no other was recorded: the user turn alone, with the boxed-answer
    instruction after a math prompt (chat prompts are kept, without any assistant turn).

    >>> default_messages(Problem("p", "1+1?"))[0]["content"]
    '1+1?\\nPlease reason step by step, and put your final answer within \\\\boxed{}.'
    """
    if isinstance(problem.prompt, list):
        return [dict(m) for m in problem.prompt if m.get("role") != "assistant"]
    text = f"{problem.prompt}\n{MATH_PROMPT_SUFFIX}" if problem.kind == "math" else problem.prompt
    return [{"role": "user", "content": text}]


def assistant_text(reasoning: str, content: str) -> str:
    """The assistant turn as corpora store it: `<think>\\n{reasoning}\\n</think>\\n\\n{content}`.

    >>> assistant_text(" a ", "b")
    '<think>\\na\\n</think>\\n\\nb'
    """
    return f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{content.strip()}"


# Language codes mapped to the script their words are written in; a script name works too.
LANGUAGE_SCRIPTS: dict[str, str] = {
    "en": "latin", "fr": "latin", "de": "latin", "es": "latin", "it": "latin", "pt": "latin", "nl": "latin",
    "pl": "latin", "tr": "latin", "vi": "latin", "id": "latin", "sv": "latin", "cs": "latin",
    "zh": "han", "ja": "japanese", "ko": "hangul", "ru": "cyrillic", "uk": "cyrillic", "bg": "cyrillic",
    "ar": "arabic", "fa": "arabic", "he": "hebrew", "hi": "devanagari", "el": "greek", "th": "thai",
}
SCRIPTS = ("latin", "han", "japanese", "hangul", "cyrillic", "arabic", "hebrew", "devanagari", "greek", "thai")
# The language a script stands for when a problem's language is detected from its prompt.
SCRIPT_LANGUAGE = {"latin": "en", "han": "zh", "japanese": "ja", "hangul": "ko", "cyrillic": "ru", "arabic": "ar",
                   "hebrew": "he", "devanagari": "hi", "greek": "el", "thai": "th"}

# Maths and code carry Latin letters in any language: LaTeX commands, $...$ spans and fenced blocks
# are removed before words are counted.
_FENCE = re.compile(r"```.*?(```|$)", re.S)
_MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]*\$|\\\(.*?\\\)|\\\[.*?\\\]", re.S)
_COMMAND = re.compile(r"\\[A-Za-z]+")
# A word: a run of letters of one script, or a single Han/kana character (those languages have no spaces).
_WORD = re.compile(r"[^\W\d_]+", re.U)


def normalise(text: str) -> str:
    """Lower-case and fold all whitespace to single spaces.

    >>> normalise("  The  ANSWER\\n is 4 ")
    'the answer is 4'
    """
    return " ".join(text.lower().split())


def words(text: str) -> list[str]:
    """Whitespace-separated words of the normalised text.

    >>> words("Two  words")
    ['two', 'words']
    """
    return normalise(text).split()


def char_script(char: str) -> str | None:
    """The script of one letter, or None for anything that is not a letter of a known script.

    >>> char_script("a"), char_script("中"), char_script("я"), char_script("7")
    ('latin', 'han', 'cyrillic', None)
    """
    code = ord(char)
    if code < 0x80:
        return "latin" if char.isalpha() else None
    if 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF:
        return "han"
    if 0x3040 <= code <= 0x30FF:
        return "japanese"
    if 0xAC00 <= code <= 0xD7AF or 0x1100 <= code <= 0x11FF:
        return "hangul"
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    for script in ("LATIN", "CYRILLIC", "ARABIC", "HEBREW", "DEVANAGARI", "GREEK", "THAI"):
        if name.startswith(script):
            return script.lower()
    return None


def script_counts(text: str) -> Counter[str]:
    """How many words of each script the prose of `text` holds (maths, LaTeX and code removed).

    Han and kana characters count one word each, since those languages do not separate words.

    >>> sorted(script_counts("We compute $\\\\frac{1}{2}$ then 我们 check").items())
    [('han', 2), ('latin', 4)]
    """
    prose = _COMMAND.sub(" ", _MATH.sub(" ", _FENCE.sub(" ", text)))
    counts: Counter[str] = Counter()
    if prose.isascii():  # the common case: every word is Latin
        n = len(_WORD.findall(prose))
        if n:
            counts["latin"] = n
        return counts
    for match in _WORD.finditer(prose):
        token = match.group()
        if token.isascii():
            counts["latin"] += 1
            continue
        run_script, run_len = None, 0
        for char in token:
            script = char_script(char)
            if script in ("han", "japanese"):
                counts[script] += 1
                if run_len:
                    counts[run_script or "other"] += 1
                run_script, run_len = None, 0
            elif run_len and script != run_script:
                counts[run_script or "other"] += 1
                run_script, run_len = script, 1
            else:
                run_script, run_len = script, run_len + 1
        if run_len:
            counts[run_script or "other"] += 1
    return counts


def detect_language(text: str) -> str | None:
    """The language code of the dominant script of `text` (`en` for Latin), or None with no words.

    >>> detect_language("How many apples?"), detect_language("有多少个苹果？"), detect_language("1 + 1")
    ('en', 'zh', None)
    """
    counts = script_counts(text)
    if not counts:
        return None
    script = counts.most_common(1)[0][0]
    if script == "japanese" or (script == "han" and counts.get("japanese")):
        return "ja"
    return SCRIPT_LANGUAGE.get(script)


def language_share(text: str, language: str, empty: float = 1.0) -> float:
    """The share of the words of `text` written in `language`'s script (0.0 to 1.0).

    `language` is a code (`en`, `zh`, `ru`, ...) or a script name (`latin`, `han`, ...). Maths,
    LaTeX commands and code blocks are not counted. A text with no words at all returns `empty`.
    Japanese counts Han and kana; Chinese counts Han only.

    >>> language_share("First add the numbers, then divide.", "en")
    1.0
    >>> language_share("First 我 add the numbers", "en")
    0.8
    >>> language_share("首先计算 $x^2$", "zh")
    1.0
    >>> language_share("12 + 30 = 42", "en")
    1.0
    """
    script = LANGUAGE_SCRIPTS.get(language, language)
    if script not in SCRIPTS:
        raise ValueError(f"unknown language {language!r} (codes: {', '.join(LANGUAGE_SCRIPTS)}; scripts: {', '.join(SCRIPTS)})")
    counts = script_counts(text)
    total = sum(counts.values())
    if not total:
        return empty
    hits = counts.get(script, 0) + (counts.get("han", 0) if script == "japanese" else 0)
    return hits / total


def compression_ratio(text: str) -> float:
    """Raw size over zlib-compressed size of the UTF-8 text; looping text compresses far better.

    >>> compression_ratio("abc") < 1.5 < compression_ratio("wait, let me check. " * 50)
    True
    """
    raw = text.encode("utf-8")
    if not raw:
        return 1.0
    return len(raw) / len(zlib.compress(raw, 6))


def duplicate_ngram_share(tokens: list[str], n: int) -> float:
    """The share of tokens covered by word n-grams that occur more than once in `tokens`.

    >>> duplicate_ngram_share("a b c d e f".split(), 2)
    0.0
    >>> duplicate_ngram_share("x y z x y z x y z".split(), 3)
    1.0
    """
    if len(tokens) < n:
        return 0.0
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    counts = Counter(grams)
    covered = bytearray(len(tokens))
    for i, gram in enumerate(grams):
        if counts[gram] > 1:
            covered[i : i + n] = b"\x01" * n
    return sum(covered) / len(tokens)


def max_ngram_count(tokens: list[str], n: int) -> int:
    """How often the most frequent word n-gram of `tokens` occurs.

    >>> max_ngram_count("so so so so".split(), 2)
    3
    """
    if len(tokens) < n:
        return 0
    return max(Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)).values())

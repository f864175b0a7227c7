"""A planted-defect set: clean samples and at least five variants of every defect, each labelled with
the filter that must drop it (None for clean ones)."""

from __future__ import annotations

import random

from distill.problems import load_problems
from distill.records import Problem, Sample
from distill.toy.problems import generate

# The config the planted set is filtered with: defaults plus bounds and the readability filters switched on.
PLANTED_OVERRIDES = [
    "length.min=5", "length.max=400",
    "long_paragraphs.enabled=true", "long_paragraphs.max_words=150",
    "code_in_reasoning.enabled=true",
    "duplicates.threshold=0.8",
]

VOCAB = ("first second value number term sum product total result check step case side angle length "
         "area point line circle square digit factor prime ratio part whole carry column left right").split()

# Long, varied English reasoning with short paragraphs, so the clean texts pass every filter.
CLEAN_LONG = [
    "We want the number of ordered pairs that satisfy both conditions. Start by listing the constraints: "
    "the first coordinate is positive, the second is at most ten, and their sum must be even.\n\n"
    "Split into cases by the parity of the first coordinate. If it is odd, the second must be odd too, "
    "which leaves five choices for it. If it is even, the second must be even, again five choices.\n\n"
    "The first coordinate ranges over one to ten, so there are five odd and five even values. That gives "
    "five times five plus five times five, which is fifty pairs in total. Checking a small case by hand, "
    "with coordinates up to two, gives two pairs, matching the same rule.",
    "Let the three consecutive integers be n minus one, n and n plus one. Their product is n cubed minus n, "
    "and we are told it equals two hundred ten.\n\n"
    "Try small values: five gives one hundred twenty, six gives two hundred ten. So the middle integer is "
    "six and the integers are five, six and seven.\n\n"
    "The question asks for their sum, which is eighteen. A quick check: five times six is thirty, and "
    "thirty times seven is two hundred ten, as required. No other positive solution exists because the "
    "product grows strictly with n.",
    "The circle has radius three, so its area is nine pi. The inscribed square has a diagonal equal to the "
    "diameter, six, which makes its side six over the square root of two.\n\n"
    "Squaring the side gives thirty six over two, so the square's area is eighteen. The region inside the "
    "circle but outside the square therefore has area nine pi minus eighteen.\n\n"
    "Numerically that is about ten point two seven, which is positive and smaller than the circle's area, "
    "so the answer is plausible.",
]


def _sample(pid: str, index: int, reasoning: str, content: str, **kw: object) -> Sample:
    fields: dict = {"finish_reason": "stop", "think_closed": True, "correct": True, "teacher": "planted", **kw}
    return Sample(pid, index, reasoning, content, **fields)


def _words(rng: random.Random, n: int, per_paragraph: int | None = None) -> str:
    out = []
    for i in range(n):
        out.append(rng.choice(VOCAB))
        if per_paragraph and (i + 1) % per_paragraph == 0:
            out.append("\n\n")
    return " ".join(out).replace(" \n\n ", "\n\n")


def planted_set() -> tuple[list[Problem], list[tuple[Sample, str | None]]]:
    """Problems and (sample, expected filter) pairs; expected None means the sample must be kept."""
    rng = random.Random(0)
    toy = generate(120, seed=7)
    problems: list[Problem] = []
    rows: list[tuple[Sample, str | None]] = []
    it = iter(toy)

    def fresh(kind: str = "math") -> tuple[Problem, str]:
        problem, gold = next(it)
        if kind == "code":
            problem = Problem(problem.id, problem.prompt, kind="code", tests={"type": "asserts", "asserts": ["assert True"]},
                              source="toy")
        problems.append(problem)
        return problem, gold

    def gold_parts(gold: str) -> tuple[str, str]:
        reasoning, content = gold.split("</think>")
        return reasoning.replace("<think>", "").strip(), content.strip()

    # Clean: tiny-world gold traces, long prose traces, and a code sample.
    for _ in range(8):
        problem, gold = fresh()
        rows.append((_sample(problem.id, 0, *gold_parts(gold)), None))
    long_clean: list[tuple[Problem, str]] = []
    for i, text in enumerate(CLEAN_LONG):
        problem, _ = fresh()
        rows.append((_sample(problem.id, 0, text, f"The answer is \\boxed{{{i + 1}}}."), None))
        long_clean.append((problem, text))
    problem, _ = fresh("code")
    rows.append((_sample(problem.id, 0, "We need a function that returns the sum, so add the two arguments.",
                         "```python\ndef f(a, b):\n    return a + b\n```"), None))

    def defect(filter_name: str, reasoning: str, content: str = "The answer is \\boxed{5}.", kind: str = "math",
               **kw: object) -> None:
        problem, _ = fresh(kind)
        rows.append((_sample(problem.id, 0, reasoning, content, **kw), filter_name))

    ok = "Add the two numbers and then check the sum carefully once more."
    # correctness
    defect("correctness", ok, correct=False, reason="wrong_answer")
    defect("correctness", ok, correct=False, reason="no_answer")
    defect("correctness", ok, correct=False, reason="runtime_error")
    defect("correctness", ok, correct=None, reason="timeout")
    defect("correctness", ok, correct=None, reason="sandbox_error")
    # format
    defect("format", "", "The answer is \\boxed{5}.")
    defect("format", ok, "   ")
    defect("format", ok + " </think> <think> Let me start over.", "\\boxed{5}")
    defect("format", ok, "<think>one more thought</think> The answer is \\boxed{5}.")
    defect("format", ok, "The answer is five, I think.")
    defect("format", ok, "def f(a, b): return a + b", kind="code")
    # truncation
    defect("truncation", ok, "The answer is \\boxed{5}.", finish_reason="length")
    defect("truncation", ok + " Next we", "", finish_reason="length", think_closed=False)
    defect("truncation", ok, "", finish_reason="stop", think_closed=False)
    defect("truncation", _words(rng, 60, 20), "", finish_reason="length", think_closed=False, correct=None)
    defect("truncation", ok, "The answer is \\boxed{5}", finish_reason="length", correct=False)
    # language
    english = "First we add the apples that Ann has to the apples she gets, then we subtract the ones she gives away."
    defect("language", "首先我们把安有的苹果和她得到的苹果加起来，然后减去她送出去的苹果，所以答案是五。")
    defect("language", english + " 然后我们再仔细检查一遍这个结果，确认每一步的进位都没有错误，最后得到五个苹果。")
    defect("language", "Сначала сложим яблоки, которые есть у Анны, и яблоки, которые она получает, затем вычтем отданные.")
    defect("language", "أولا نجمع التفاحات التي لدى آن مع التفاحات التي تحصل عليها ثم نطرح التي تعطيها للآخرين")
    defect("language", "まず、アンが持っているりんごと、もらったりんごを足します。それから、あげたりんごを引きます。")
    # repetition
    loop = "Wait, let me recompute the sum of the first two terms again to be completely sure about it. "
    defect("repetition", loop * 25)
    defect("repetition", english + "\n\n" + ("So the total is five and we are done. " * 60))
    defect("repetition", "the " * 300)
    defect("repetition", english + " " + "\n".join(["12 + 30 = 42, so carry the one and add again."] * 40))
    defect("repetition", "Hmm. " + ("Let me think. Maybe the answer is five. Or maybe not. " * 30))
    # length (test config: 5 to 400 words)
    for text in ("5", "so 5", "add: 5", "it is 5"):
        defect("length", text, "\\boxed{5}")
    defect("length", _words(rng, 500, 40))
    defect("length", _words(rng, 900, 60))
    # long paragraphs (test config: 150 words)
    for n in (160, 200, 260, 320, 380):
        defect("long_paragraphs", _words(rng, n))
    # code in the reasoning of a math problem
    for block in ("```python\nprint(2 + 3)\n```", "```\n2 + 3\n```", "```py\nx = 2\nprint(x + 3)\n```",
                  "```javascript\nconsole.log(2 + 3)\n```", "```bash\necho $((2 + 3))\n```"):
        defect("code_in_reasoning", f"Let me verify with code.\n{block}\nIt prints five.")
    # exact and near duplicates of the long clean traces (same problem as the original)
    for n, (problem, text) in enumerate(long_clean + long_clean[:2]):
        variant = text.upper().replace(" ", "  ") if n % 2 == 0 else text.replace("\n\n", "\n")
        rows.append((_sample(problem.id, 1 + n, variant, f"The answer is \\boxed{{{CLEAN_LONG.index(text) + 1}}}."),
                     "exact_duplicate"))
    edits = [("positive", "nonnegative"), ("five", "5"), ("inscribed", "drawn"), ("total", "all"), ("consecutive", "successive")]
    for n, (old, new) in enumerate(edits):
        problem, text = long_clean[n % len(long_clean)]
        assert old in text
        variant = text.replace(old, new, 1)
        rows.append((_sample(problem.id, 10 + n, variant, f"The answer is \\boxed{{{CLEAN_LONG.index(text) + 1}}}."),
                     "near_duplicate"))
    # decontamination: benchmark problems with changed case and spacing, or embedded in other text
    math500 = load_problems("math500")
    gsm8k = load_problems("gsm8k")
    humaneval = load_problems("humaneval")
    contaminated = [
        math500[3].prompt.upper().replace(" ", "   "),
        "  ".join(math500[10].prompt.lower().split()),
        "Solve this: " + gsm8k[5].prompt.title(),
        "Here is a task.\n" + humaneval[2].prompt.replace("\n", "\n\n"),
        load_problems("aime2024")[0].prompt.swapcase(),
    ]
    for n, prompt in enumerate(contaminated):
        problem = Problem(f"contaminated-{n}", prompt, source="scraped")
        problems.append(problem)
        rows.append((_sample(problem.id, 0, english + " So the answer is five.", "The answer is \\boxed{5}."),
                     "decontamination"))
    return problems, rows

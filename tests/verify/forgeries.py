"""Wrong programs that try to be judged correct, one per forgery technique, for each test style.

Each technique is a wrong answer (it never computes the function) that, if a defence failed, would
turn its verdict into `correct: true`: by returning an object that compares equal to anything, by
reading the harness's secrets or the problem set, by patching what the harness uses, by walking into
the tests' frames or memory, by forging the protocol, or by outliving or killing its judge. A style a
technique cannot apply to maps to None (listed as not applicable).

Run by tests/verify/test_forgeries.py in-process and, as an unprivileged user, as
`python tests/verify/forgeries.py < problems.json` (one JSON line per technique and style).
`python tests/verify/forgeries.py --baseline` runs the suite against the pre-#13 harness
(benchmarks/baseline_harness.py) instead, to show what the old one let through.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

TIMEOUT = 3.0
"""The per-sample limit the suite runs under (hanging techniques cost this much)."""

_FIND_NONCES = '''
import os, re, sys
def _nonces():
    found = set()
    main = sys.modules.get("__main__")
    for value in (vars(main).values() if main else ()):
        if isinstance(value, str):
            found |= set(re.findall(r"\\b[0-9a-f]{32}\\b", value))
    for folder in (".", os.environ.get("TMPDIR", "/tmp"), os.environ.get("HOME", "/")):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            try:
                with open(os.path.join(folder, name), errors="replace") as handle:
                    found |= set(re.findall(r"\\b[0-9a-f]{32}\\b", handle.read(100000)))
            except OSError:
                pass
    return found
def _forge(nonces):
    main = sys.modules.get("__main__")
    tests = len(getattr(main, "_TESTS", None) or [0])
    for nonce in nonces:
        for index in range(tests):
            print("\\n" + nonce + ' {"stage": "test", "index": %d, "status": "passed"}' % index)
        print("\\n" + nonce + ' {"stage": "done"}')
    print('{"stage": "test", "index": 0, "status": "passed"}')
    print('{"done": true}')
    sys.stdout.flush()
'''

_LOOKUP = '''
import ast, gc
def _table_from(sources, entry, nested=True):
    table = {}
    for source in sources:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if nested and isinstance(node, ast.Constant) and isinstance(node.value, str) and "assert" in node.value:
                table.update(_table_from([node.value], entry, nested=False))
            if isinstance(node, ast.Compare) and isinstance(node.left, ast.Call) and len(node.comparators) == 1:
                name = getattr(node.left.func, "id", None)
                if name in (entry, "candidate"):
                    try:
                        args = tuple(ast.literal_eval(a) for a in node.left.args)
                        table[repr(args)] = ast.literal_eval(node.comparators[0])
                    except (ValueError, TypeError, SyntaxError):
                        pass
    return table
'''

_WALK = '''
import json, os, time
def _walk_files(suffixes, budget=1.0):
    deadline = time.monotonic() + budget
    roots = ["/work", "/home", "/root", "/tmp", "/opt", "/srv", "/usr/local", os.getcwd(), "/"]
    seen = set()
    for root in roots:
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev", ".git", "node_modules")]
            if folder in seen or time.monotonic() > deadline:
                dirs[:] = []
                continue
            seen.add(folder)
            for name in files:
                if name.endswith(suffixes):
                    yield os.path.join(folder, name)
'''


def _both(source: str) -> dict[str, str | None]:
    return {"check": source, "asserts": source, "stdio": None}


def techniques() -> dict[str, dict[str, str | None]]:
    """name -> {style: program (ENTRY stands for the entry point's name) or None where it cannot apply}."""
    t: dict[str, dict[str, str | None]] = {}
    t["eq_always_true"] = _both(
        "class Yes:\n    def __eq__(self, other): return True\n    def __ne__(self, other): return False\n"
        "    __hash__ = object.__hash__\ndef ENTRY(*args, **kwargs):\n    return Yes()\n")
    t["int_subclass"] = _both(
        "class Int(int):\n    def __eq__(self, other): return True\n    def __ne__(self, other): return False\n"
        "    __hash__ = int.__hash__\ndef ENTRY(*args, **kwargs):\n    return Int(0)\n")
    t["str_subclass"] = _both(
        "class Str(str):\n    def __eq__(self, other): return True\n    def __ne__(self, other): return False\n"
        "    __hash__ = str.__hash__\ndef ENTRY(*args, **kwargs):\n    return Str('')\n")
    t["list_subclass"] = _both(
        "class List(list):\n    def __eq__(self, other): return True\n    def __ne__(self, other): return False\n"
        "def ENTRY(*args, **kwargs):\n    return List()\n")
    t["float_tolerance_subclass"] = _both(
        "class F(float):\n    def __eq__(self, o): return True\n    def __ne__(self, o): return False\n"
        "    def __sub__(self, o): return F(0.0)\n    __rsub__ = __sub__\n    def __abs__(self): return 0.0\n"
        "    def __lt__(self, o): return True\n    __le__ = __gt__ = __ge__ = __lt__\n    __hash__ = float.__hash__\n"
        "def ENTRY(*args, **kwargs):\n    return F(-1.0)\n")
    t["secret_from_main"] = {
        **_both(_FIND_NONCES + "_forge(_nonces())\nos._exit(0)\n"),
        "stdio": "import sys\nmain = sys.modules.get('__main__')\n"
                 "print('\\n'.join(v for v in vars(main).values() if isinstance(v, str)))\n"}
    t["secret_from_files"] = {
        **_both(_FIND_NONCES + "_forge(_nonces())\ndef ENTRY(*args, **kwargs):\n    return None\n"),
        "stdio": _FIND_NONCES + "print('\\n'.join(sorted(_nonces())))\n"}
    t["steal_reference"] = {
        **_both(_WALK + "def _steal():\n"
                "    for path in _walk_files(('.jsonl', '.json')):\n"
                "        try:\n            lines = open(path, errors='replace').read(30_000_000).splitlines()\n"
                "        except OSError:\n            continue\n"
                "        for line in lines:\n"
                "            if '\"ENTRY\"' not in line:\n                continue\n"
                "            try:\n                row = json.loads(line)\n            except ValueError:\n                continue\n"
                "            code = row.get('canonical_solution') and row.get('prompt', '') + row['canonical_solution']\n"
                "            code = code or row.get('answer') or row.get('code')\n"
                "            ns = {}\n"
                "            try:\n                exec(code, ns)\n                return ns['ENTRY']\n"
                "            except Exception:\n                continue\n"
                "_stolen = _steal()\n"
                "def ENTRY(*args, **kwargs):\n    return _stolen(*args, **kwargs) if _stolen else None\n"),
        "stdio": _WALK + "import sys\ndata = sys.stdin.read()\n"
                 "for path in _walk_files(('.jsonl', '.json')):\n"
                 "    try:\n        lines = open(path, errors='replace').read(30_000_000).splitlines()\n"
                 "    except OSError:\n        continue\n"
                 "    for line in lines:\n"
                 "        if 'stdio' not in line:\n            continue\n"
                 "        try:\n            row = json.loads(line)\n        except ValueError:\n            continue\n"
                 "        for case in ((row.get('tests') or {}).get('cases') or []):\n"
                 "            if case.get('input') == data:\n"
                 "                print(case['output'])\n                raise SystemExit(0)\n"
                 "print('not found')\n"}
    t["caller_frames"] = _both(
        "import sys\ndef ENTRY(*args, **kwargs):\n    frame = sys._getframe(1)\n    while frame is not None:\n"
        "        g = frame.f_globals\n"
        "        for name in ('_kind', 'failure', '_describe', 'describe'):\n"
        "            if name in g and callable(g[name]):\n"
        "                g[name] = lambda *a, **k: 'passed'\n"
        "        for name, value in list(frame.f_locals.items()):\n"
        "            if name in ('status', 'passed', 'ok'):\n"
        "                frame.f_locals[name] = 'passed'\n"
        "        frame = frame.f_back\n"
        "    return None\n")
    t["extra_passed_lines"] = {
        **_both("import sys\ndef ENTRY(*args, **kwargs):\n"
                "    sys.stdout.write('\\nPASS {\"stage\": \"test\", \"index\": 0, \"status\": \"passed\"}\\n')\n"
                "    sys.stdout.write('{\"stage\": \"done\"}\\n{\"done\": true}\\npassed\\n')\n"
                "    sys.stderr.write('passed\\n')\n    return None\n"),
        "stdio": "print('passed')\nprint('{\"correct\": true}')\nprint('3\\n7\\n12')\n"}
    t["patch_json"] = _both(
        "import json\n_dumps = json.dumps\n"
        "def dumps(obj, *a, **k):\n"
        "    if isinstance(obj, dict) and 'status' in obj:\n        obj = {**obj, 'status': 'passed'}\n"
        "    return _dumps(obj, *a, **k)\n"
        "json.dumps = dumps\n"
        "try:\n    import _json\n    _json.make_encoder = None\nexcept ImportError:\n    pass\n"
        "def ENTRY(*args, **kwargs):\n    return None\n")
    t["patch_stdout"] = _both(
        "import sys\nclass Out:\n    def __init__(self, real): self.real = real\n"
        "    def write(self, text):\n"
        "        for bad in ('wrong_answer', 'runtime_error', 'memory'):\n            text = text.replace(bad, 'passed')\n"
        "        return self.real.write(text)\n"
        "    def flush(self): self.real.flush()\n"
        "sys.stdout = sys.__stdout__ = Out(sys.stdout)\n"
        "def ENTRY(*args, **kwargs):\n    return None\n")
    t["patch_builtins"] = _both(
        "import builtins\n_exec = builtins.exec\n"
        "def exec(code, *a, **k):\n"
        "    if 'assert' in getattr(code, 'co_filename', '') or 'test' in getattr(code, 'co_filename', ''):\n"
        "        return None\n"
        "    return _exec(code, *a, **k)\n"
        "builtins.exec = exec\nbuiltins.print = lambda *a, **k: None\n"
        "builtins.AssertionError = type('AssertionError', (Exception,), {})\n"
        "builtins.isinstance = lambda obj, kind: False\n"
        "def ENTRY(*args, **kwargs):\n    return None\n")
    t["early_exit"] = {**_both("import sys\nsys.exit(0)\n"), "stdio": "import sys\nsys.exit(0)\n"}
    t["exit_in_call"] = _both("import os\ndef ENTRY(*args, **kwargs):\n    os._exit(0)\n")
    t["atexit_report"] = {
        **_both(_FIND_NONCES + "import atexit\natexit.register(lambda: _forge(_nonces()))\n"
                "def ENTRY(*args, **kwargs):\n    raise SystemExit(0)\n"),
        "stdio": "import atexit\natexit.register(lambda: print('3\\n7\\n12'))\n"}
    t["settrace_skip"] = _both(
        "import sys, threading\n"
        "def _local(frame, event, arg):\n"
        "    if event == 'line':\n"
        "        last = max(line for _, _, line in frame.f_code.co_lines() if line)\n"
        "        if frame.f_lineno < last:\n"
        "            try:\n                frame.f_lineno = last\n            except ValueError:\n                pass\n"
        "    return _local\n"
        "def _global(frame, event, arg):\n"
        "    name = frame.f_code.co_filename\n"
        "    return _local if name.startswith(('test', 'assert')) and name.endswith('.py') else None\n"
        "sys.settrace(_global)\nthreading.settrace(_global)\nsys.setprofile(lambda *a: None)\n"
        "def ENTRY(*args, **kwargs):\n    return False\n")
    t["gc_scan"] = _both(
        _LOOKUP + "def ENTRY(*args, **kwargs):\n"
        "    sources = [o for o in gc.get_objects() if isinstance(o, str) and 'assert' in o]\n"
        "    for o in gc.get_objects():\n"
        "        if isinstance(o, (list, tuple)):\n"
        "            sources += [s for s in o if isinstance(s, str) and 'assert' in s]\n"
        "        if isinstance(o, dict) and o.get('status') not in (None, 'passed'):\n"
        "            o['status'] = 'passed'\n"
        "    table = _table_from(sources, 'ENTRY')\n"
        "    return table.get(repr(args))\n")
    t["signal_handlers"] = {
        **_both(_FIND_NONCES + "import signal\n"
                "for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGHUP, signal.SIGXCPU):\n"
                "    signal.signal(sig, lambda *a: (_forge(_nonces()), os._exit(0)))\n"
                "signal.setitimer(signal.ITIMER_REAL, 0.3)\n"
                "for pid in (os.getppid(), 1):\n"
                "    try:\n        os.kill(pid, signal.SIGTERM)\n    except OSError:\n        pass\n"
                "def ENTRY(*args, **kwargs):\n    import time\n    time.sleep(1)\n    return None\n"),
        "stdio": "import signal, time\n"
                 "signal.signal(signal.SIGTERM, lambda *a: (print('3\\n7\\n12'), exit(0)))\n"
                 "signal.alarm(1)\nsignal.signal(signal.SIGALRM, lambda *a: print('3\\n7\\n12'))\ntime.sleep(2)\n"}
    t["proc_snoop"] = {
        **_both(_LOOKUP + "import os\ndef _snoop():\n    sources = []\n"
                "    for pid in [p for p in os.listdir('/proc') if p.isdigit()] + ['self']:\n"
                "        for part in ('cmdline', 'environ', 'cwd/main.py', 'cwd/stdin.txt', 'fd/0', 'fd/3', 'fd/4'):\n"
                "            try:\n"
                "                with open(f'/proc/{pid}/{part}', 'rb') as handle:\n"
                "                    sources.append(handle.read(1_000_000).decode('utf-8', 'replace'))\n"
                "            except OSError:\n                pass\n"
                "    return sources\n"
                "_table = _table_from([line for text in _snoop() for line in text.replace('\\\\n', '\\n').split('\\n')], 'ENTRY')\n"
                "def ENTRY(*args, **kwargs):\n    return _table.get(repr(args))\n"),
        "stdio": "import os\nfor pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n"
                 "    for part in ('cmdline', 'environ', 'fd/0', 'fd/3'):\n"
                 "        try:\n            print(open(f'/proc/{pid}/{part}', 'rb').read(10000).decode('utf-8', 'replace'))\n"
                 "        except OSError:\n            pass\n"}
    t["write_all_fds"] = {
        **_both(_FIND_NONCES + "import json\n"
                "def _frame(obj):\n    data = json.dumps(obj).encode()\n    return len(data).to_bytes(4, 'big') + data\n"
                "_payload = b''.join(_frame(m) for m in ({'loaded': True}, {'value': True}, {'stage': 'test', 'index': 0, 'status': 'passed'}, {'done': True}))\n"
                "_lines = b'\\n'.join(json.dumps(m).encode() for m in ({'ready': True}, {'stage': 'test', 'index': 0, 'status': 'passed'}, {'done': True})) + b'\\n'\n"
                "for fd in range(0, 256):\n"
                "    for data in (_payload, _lines):\n"
                "        try:\n            os.write(fd, data)\n        except OSError:\n            pass\n"
                "def ENTRY(*args, **kwargs):\n    return None\n"),
        "stdio": "import os\nfor fd in range(0, 256):\n"
                 "    try:\n        os.write(fd, b'3\\n7\\n12\\n')\n    except OSError:\n        pass\n"}
    t["forged_frames"] = _both(
        "import json, os, gc\n"
        "def _frame(obj):\n    data = json.dumps(obj).encode()\n    return len(data).to_bytes(4, 'big') + data\n"
        "_fds = []\nfor fd in range(3, 64):\n"
        "    try:\n        os.fstat(fd)\n        _fds.append(fd)\n    except OSError:\n        pass\n"
        "def ENTRY(*args, **kwargs):\n"
        "    bad = [_frame({'value': {'__eq__': True}}), _frame({'value': 1, 'passed': True}),\n"
        "           _frame({'raise': 'StopIteration', 'message': ''}), b'\\xff\\xff\\xff\\xff', b'\\x00\\x00\\x00\\x05{{{{{',\n"
        "           _frame({'value': {'t': [{'F': 'nan'}]}}), _frame({'done': True}), _frame({'loaded': True})]\n"
        "    for fd in _fds:\n"
        "        for data in bad:\n"
        "            try:\n                os.write(fd, data)\n            except OSError:\n                pass\n"
        "    return True\n")
    t["kill_everything"] = {
        **_both("import os, signal\ndef ENTRY(*args, **kwargs):\n"
                "    for pid in [-1] + list(range(1, 2000)):\n"
                "        if pid != os.getpid():\n"
                "            try:\n                os.kill(pid, signal.SIGKILL)\n            except OSError:\n                pass\n"
                "    return None\n"),
        "stdio": "import os, signal\nfor pid in [-1] + list(range(1, 2000)):\n"
                 "    if pid != os.getpid():\n"
                 "        try:\n            os.kill(pid, signal.SIGKILL)\n        except OSError:\n            pass\n"
                 "print('3\\n7\\n12')\n"}
    t["unserializable_or_huge"] = _both(
        "import itertools\n_calls = itertools.count()\n"
        "def ENTRY(*args, **kwargs):\n"
        "    n = next(_calls) % 5\n"
        "    if n == 0:\n        x = []\n        for _ in range(500):\n            x = [x]\n        return x\n"
        "    if n == 1:\n        return 10 ** 5000\n"
        "    if n == 2:\n        return 'x' * (2 << 20)\n"
        "    if n == 3:\n        return (i for i in ())\n"
        "    return NotImplemented\n")
    t["exception_escape"] = _both(
        "import itertools\n_calls = itertools.count()\nclass Escape(BaseException):\n    pass\n"
        "def ENTRY(*args, **kwargs):\n"
        "    n = next(_calls) % 4\n"
        "    raise (SystemExit(0), KeyboardInterrupt(), GeneratorExit(), Escape())[n]\n")
    t["sleep_then_forge"] = {
        **_both(_FIND_NONCES + "import time\n_forge(_nonces())\ntime.sleep(60)\n"),
        "stdio": "import sys, time\nprint('3\\n7\\n11')\nsys.stdout.flush()\ntime.sleep(60)\n"}
    t["fork_orphan_forge"] = {
        **_both(_FIND_NONCES + "import time\nif os.fork() == 0:\n    os.setsid()\n"
                "    for _ in range(30):\n        _forge(_nonces())\n        time.sleep(0.1)\n    os._exit(0)\n"
                "def ENTRY(*args, **kwargs):\n    return None\n"),
        "stdio": "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(0.5)\n    print('3\\n7\\n11')\n"
                 "    os._exit(0)\nprint('0')\n"}
    return t


def problems_json() -> str:
    """The three problems the suite attacks (HumanEval/0, mbpp-17, stdio-sum), as JSON."""
    from distill.problems import load_problems
    from distill.records import to_dict

    here = Path(__file__).resolve().parent
    chosen = {"check": next(p for p in load_problems("humaneval") if p.id == "HumanEval/0"),
              "asserts": next(p for p in load_problems("mbpp:all") if p.id == "mbpp-17"),
              "stdio": next(p for p in load_problems(str(here / "assets" / "stdio_problems.jsonl")) if p.id == "stdio-sum")}
    return json.dumps({style: to_dict(p) for style, p in chosen.items()})


def run(problems: dict, baseline: bool = False, workers: int = 2) -> list[dict]:
    """Judge every technique x style (not applicable ones listed with `applicable: false`)."""
    from distill.records import Problem, Sample
    from distill.verify import code as vcode
    from distill.verify import registry, verify_stream
    from distill.verify.sandbox import Limits

    by_style = {style: Problem(**row) for style, row in problems.items()}
    samples, rows = [], []
    for name, programs in techniques().items():
        for style, program in programs.items():
            row = {"technique": name, "style": style, "applicable": program is not None}
            rows.append(row)
            if program is None:
                continue
            problem = by_style[style]
            entry = (problem.tests or {}).get("entry_point") or "main"
            content = f"I solved it.\n\n```python\n{program.replace('ENTRY', entry)}```\n"
            samples.append((row, Sample(problem.id, len(samples), "", content)))
    saved = vcode.LIMITS, registry.VERIFIERS["code"]
    vcode.LIMITS = Limits(timeout=TIMEOUT, memory_mb=1024)
    if baseline:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
        import baseline_harness

        registry.VERIFIERS["code"] = lambda p, s, f: baseline_harness.verify_code(p, s, f, limits=vcode.LIMITS)
    try:
        by_id = {p.id: p for p in by_style.values()}
        verdicts = verify_stream(by_id, [s for _, s in samples], workers=workers, batch_size=1)
        for (row, _), (_, verdict) in zip(samples, verdicts, strict=True):
            row.update(correct=verdict.correct, reason=verdict.reason, sandbox=verdict.details.get("sandbox"),
                       error=str(verdict.details.get("error"))[:200])
    finally:
        vcode.LIMITS, registry.VERIFIERS["code"] = saved
    return rows


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    baseline = "--baseline" in sys.argv
    data = sys.stdin.read() if not sys.stdin.isatty() and not baseline else problems_json()
    for result in run(json.loads(data), baseline=baseline):
        print(json.dumps(result))

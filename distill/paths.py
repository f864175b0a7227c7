"""Where files are: the one path resolver, and the files that ship inside the package.

Shipped files (problem sets, teacher profiles and the tiny teacher, student and GRPO recipes, chat
templates, pipeline recipes) live under `distill/shipped/` and are package data, read through
`importlib.resources`, so an installed wheel finds them from any directory. In a checkout the
top-level `data/`, `teachers/`, `students/` and `recipes/` are links into that folder.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from distill.errors import ConfigError

# The folder of the shipped tree that holds each kind of file a name can refer to.
KINDS = {"teacher": "teachers", "student": "students", "rl": "students/rl", "opd": "students/opd", "recipe": "recipes",
         "set": "data"}


def shipped_root() -> Path:
    """The folder of the shipped files inside the installed package."""
    return Path(str(importlib.resources.files("distill") / "shipped"))


def shipped_path(*parts: str) -> Path:
    """A file or folder of the shipped tree, e.g. `shipped_path("teachers", "tiny.yaml")`; it must exist."""
    path = shipped_root().joinpath(*parts)
    if not path.exists():
        raise ConfigError(f"{'/'.join(parts)}: not a shipped file (looked in {shipped_root()})")
    return path


def shipped_names(kind: str) -> list[str]:
    """The names of the shipped YAML files of a kind (`teacher` -> ['deepseek-r1-api', ..., 'tiny'])."""
    folder = shipped_root() / KINDS[kind]
    return sorted(p.stem for p in folder.glob("*.yaml"))


def _shipped_candidates(value: str, kind: str | None) -> list[Path]:
    root = shipped_root()
    names = [value] if value.endswith((".yaml", ".yml")) or kind is None else [f"{value}.yaml", value]
    found = [root / name for name in names]  # a path inside the shipped tree, e.g. teachers/tiny.yaml
    if kind is not None:
        found += [root / KINDS[kind] / name for name in names]  # a bare name, e.g. tiny
    return found


def find(value: str | Path, *, relative_to: str | Path | None = None, kind: str | None = None) -> Path | None:
    """The file or folder that `value` names, or None. One search order everywhere:

    1. an absolute path, as it is;
    2. relative to `relative_to`, the folder of the file that names it (a recipe, a profile), when given;
    3. relative to the working directory;
    4. the shipped tree: a path inside it (`teachers/tiny.yaml`) or, with `kind`, a shipped name with or
       without `.yaml` (`--teacher tiny`).

    With `kind` (a config file of that kind is wanted) only files match, never folders.

    >>> find("tiny", kind="teacher").name
    'tiny.yaml'
    >>> find("no-such-profile", kind="teacher") is None
    True
    """
    path = Path(value)
    if path.is_absolute():
        return path if path.exists() else None
    candidates = ([Path(relative_to) / path] if relative_to is not None else []) + [path]
    candidates += _shipped_candidates(str(value), kind)
    return next((c for c in candidates if (c.is_file() if kind is not None else c.exists())), None)


def resolve(value: str | Path, *, relative_to: str | Path | None = None, kind: str | None = None,
            what: str = "file") -> Path:
    """Like `find`, but a name found nowhere is an error that says where it looked (and, with `kind`,
    which shipped names exist)."""
    found = find(value, relative_to=relative_to, kind=kind)
    if found is not None:
        return found
    where = f"relative to {relative_to} or " if relative_to is not None else ""
    shipped = f"; shipped {KINDS[kind]}: {', '.join(shipped_names(kind))}" if kind in KINDS else ""
    raise ConfigError(f"{value}: no such {what} ({where}in the working directory, or shipped){shipped}")


def local_or_id(value: str, *, relative_to: str | Path | None = None) -> str:
    """A model reference: the absolute path of a local checkpoint when `value` names one (by the search
    order of `find`), else `value` unchanged (a hub id or an API model name)."""
    found = find(value, relative_to=relative_to)
    return str(found.resolve()) if found is not None and found.is_dir() else value


def public_name(value: str | Path | None) -> str | None:
    """How a published artifact (a card, a funnel, a report) names a file: a path on this machine by its
    last component, so that no local path leaks; names that are not paths (`math500`, a hub id) unchanged.

    >>> public_name("/home/me/runs/q/problems/train.jsonl"), public_name("math500"), public_name("org/model")
    ('train.jsonl', 'math500', 'org/model')
    """
    if value is None:
        return None
    text = str(value)
    path = Path(text)
    if path.is_absolute() or path.exists() or text.startswith(("./", "../", "~")):
        return path.name
    return text

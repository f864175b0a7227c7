"""Small helpers that several CLI commands share."""

from __future__ import annotations

from distill.errors import ConfigError


def parse_mapping(pairs: list[str] | None, flag: str = "--map") -> dict[str, str]:
    """Parse repeated `FIELD=COLUMN` flags into a dict.

    >>> parse_mapping(["prompt=question", "answer=final"])
    {'prompt': 'question', 'answer': 'final'}
    """
    mapping: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise ConfigError(f"{flag} {pair}: expected FIELD=COLUMN")
        mapping[key.strip()] = value.strip()
    return mapping

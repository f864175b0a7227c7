"""The errors distill raises for bad input; the CLI prints them as one line and exits non-zero."""


class DistillError(Exception):
    """Base class: a user-facing error whose message says what is wrong and where."""


class RecordError(DistillError, ValueError):
    """A record failed validation; the message starts with `file:line:` and names the field."""


class ConfigError(DistillError, ValueError):
    """A config (YAML recipe, profile or flag) is invalid; the message names the file and key."""

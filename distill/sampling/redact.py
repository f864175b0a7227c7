"""Secrets out of everything a run writes or logs: one `redact_url` for base URLs (userinfo and
key-like query parameters), a loopback test for where a key may go over plain http, and a logging
filter that masks known secrets in the HTTP libraries' own log lines (httpx logs full URLs)."""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
from urllib.parse import unquote_plus, urlsplit, urlunsplit

MASK = "***"
# Query parameter names that carry credentials (Gemini's `key=`, `api_key=`, `access_token=`, signed
# URLs' `sig=`...); matched anywhere in the name, case-insensitively, so `x-api-key` is caught too.
_SECRET_PARAM = re.compile(r"key|token|secret|passw|auth|sig|cred|session", re.IGNORECASE)
# The loggers of the HTTP stack whose records can carry a URL or a header (httpcore's are per module,
# and a filter on a parent logger does not see its children's records).
HTTP_LOGGERS = ("httpx", "httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2",
                "httpcore.proxy", "httpcore.socks")


def redact_url(url: str) -> str:
    """`url` with its userinfo and the values of key-like query parameters replaced by `***`.

    A URL that does not parse is replaced whole, since nothing in it can be shown safely.

    >>> redact_url("https://user:pw@api.example.com/v1?key=abc&api-version=2024")
    'https://***@api.example.com/v1?key=***&api-version=2024'
    >>> redact_url("http://127.0.0.1:8000/v1")
    'http://127.0.0.1:8000/v1'
    >>> redact_url("http://[::1")
    '<unparsable URL>'
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@" + netloc.rsplit("@", 1)[1]
    query = "&".join(f"{name}={MASK}" if secret else f"{name}{sep}{value}"
                     for name, sep, value, secret in _query_pairs(parts.query))
    del host, port  # parsed only to reject malformed hosts and ports
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _query_pairs(query: str) -> list[tuple[str, str, str, bool]]:
    """The raw `name`, `=`, `value` of each query parameter, and whether the name is key-like."""
    pairs = []
    for part in query.split("&") if query else []:
        name, sep, value = part.partition("=")
        pairs.append((name, sep, value, bool(_SECRET_PARAM.search(unquote_plus(name)))))
    return pairs


def url_secrets(url: str) -> list[str]:
    """The credentials a URL carries (userinfo, values of key-like query parameters), to mask in logs.

    >>> url_secrets("https://u:pw@h/v1?token=t0k&q=1")
    ['u:pw', 'pw', 't0k']
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        found.append(userinfo)
        if ":" in userinfo:
            found.append(userinfo.split(":", 1)[1])
    for _, _, value, secret in _query_pairs(parts.query):
        if secret and value:
            found += [value, unquote_plus(value)]  # httpx logs the encoded form, errors may hold either
    return list(dict.fromkeys(s for s in found if s))


def is_loopback(url: str) -> bool:
    """Whether a URL's host is this machine: `localhost`, 127.0.0.0/8 or ::1 (IPv4-mapped included).

    Other names that happen to resolve to loopback do not count: the check must not depend on DNS.

    >>> [is_loopback(u) for u in ("http://localhost:8000", "http://127.9.0.1", "http://[::1]:80", "http://10.0.0.1")]
    [True, True, True, False]
    >>> is_loopback("http://127.0.0.1.evil.example")
    False
    """
    try:
        host = (urlsplit(url).hostname or "").rstrip(".").lower()
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def may_carry_secrets(url: str) -> bool:
    """Whether a credential may be sent to `url`: over https, or over http to a loopback address.

    >>> may_carry_secrets("https://api.example.com/v1"), may_carry_secrets("http://api.example.com/v1")
    (True, False)
    """
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return False
    return scheme == "https" or (scheme == "http" and is_loopback(url))


class SecretFilter(logging.Filter):
    """Masks registered secrets in every record of the loggers it is attached to (one shared instance)."""

    def __init__(self) -> None:
        super().__init__("distill-secrets")
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, *secrets: str | None) -> None:
        """Register secrets to mask; empty values are ignored."""
        with self._lock:
            self._secrets.update(s for s in secrets if s)

    def scrub(self, text: str) -> str:
        """`text` with every registered secret replaced by `***` (longest first, so no part survives)."""
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message with the secrets masked; never drops a record."""
        message = record.getMessage()
        scrubbed = self.scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, ()
        return True


SECRETS = SecretFilter()


def guard_http_logs(*secrets: str | None) -> None:
    """Register secrets and make sure the HTTP stack's loggers mask them (idempotent)."""
    SECRETS.add(*secrets)
    for name in HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if SECRETS not in logger.filters:
            logger.addFilter(SECRETS)

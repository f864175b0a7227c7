"""A local OpenAI-compatible server for tests: answers `/v1/chat/completions` and `/v1/completions`
on 127.0.0.1 and follows a scripted fault schedule, so retry and resume logic is tested for real.

    with ScriptedServer(faults={1: Fault("status", 429, retry_after=0.1), 3: Fault("drop")}) as server:
        ... point a profile's api.base_url at server.url ...
    assert server.count == expected

Faults are keyed by the request's arrival number (1-based, over all paths):

- `status`: an HTTP error with an OpenAI-style error body (`message` may hold `{authorization}`, which
  echoes the request's header, as a careless server might) and an optional `Retry-After`, a number
  or any raw text (`"inf"`, `"nan"`, `"-1"`, `"soon"`);
- `drop`: close the connection without a response; `slow`: sleep `delay` seconds before answering;
- `trickle`: send the headers, then the body one byte every `delay` seconds;
- `malformed`: a 200 with broken JSON; `no_choices`: a 200 with `choices: []`; `no_usage`: a 200 without `usage`;
- `empty` (content "" and no reasoning), `null_message` (`message: null`), `finish_error`
  (`finish_reason: "error"`) and `non_dict` (a choice that is a string): a 200 whose choices `which`
  (all when None) are spoiled that way.

`ignore_n` answers one choice whatever `n` asks; `reasoning_field` sends the think part in
`reasoning_content` or `reasoning`; `api_key` answers 401 to requests without that bearer key;
`usage=False` never sends `usage`; `responder(body, choice_index) -> text` chooses the completions
(default: a fixed R1-style trace). Each entry of `requests` keeps the path, query, body and
Authorization header of one request.

Logprobs, when a request asks for them: `logprobs="ids"` answers as vLLM's server does with
`return_tokens_as_token_ids` (one token per character, id = its code point, `token_ids` and
`prompt_token_ids` included), `"strings"` as OpenAI's API (tokens as text), `"none"` sends none (as
DeepSeek's reasoner). `prompt_scorer(ids) -> [logprob per id after the first]` answers a completions
request whose prompt is a list of ids and asks for `prompt_logprobs`, in vLLM's layout
(`[None, {"ID": {"logprob": ..., "rank": ...}}, ...]`).
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

# The prompt ids the server says it saw when asked for token ids (fixed: the tests check they are stored).
PROMPT_IDS = [7, 8, 9]
# The faults that spoil the choices of an otherwise good 200 answer.
CHOICE_FAULTS = ("empty", "null_message", "finish_error", "non_dict")


@dataclass
class Fault:
    """What the server does to one request instead of answering it."""

    kind: str  # status | drop | slow | trickle | malformed | no_choices | no_usage | empty | null_message | ...
    status: int = 500
    retry_after: float | str | None = None
    delay: float = 1.0
    message: str = "scripted failure"
    which: list[int] | None = None  # the choices a choice fault spoils (None: all)


def default_responder(body: dict[str, Any], index: int) -> str:
    """An R1-style completion that depends on the prompt and the choice index."""
    prompt = json.dumps(body.get("messages") or body.get("prompt"), sort_keys=True)
    tag = hashlib.sha256(f"{prompt}:{index}".encode()).hexdigest()[:8]
    return f"<think>\nLet me think ({tag}).\n</think>\n\nThe answer is \\boxed{{42}}."


class ScriptedServer:
    """A threaded HTTP server on 127.0.0.1 with a port chosen by the OS; `url` ends in `/v1`."""

    def __init__(
        self,
        faults: dict[int, Fault] | None = None,
        ignore_n: bool = False,
        reasoning_field: str | None = None,
        api_key: str | None = None,
        responder: Callable[[dict[str, Any], int], str] = default_responder,
        usage: bool = True,
        logprobs: str = "ids",
        prompt_scorer: Callable[[list[int]], list[float]] | None = None,
    ) -> None:
        self.faults = dict(faults or {})
        self.usage = usage
        self.ignore_n = ignore_n
        self.reasoning_field = reasoning_field
        self.api_key = api_key
        self.responder = responder
        self.logprobs = logprobs
        self.prompt_scorer = prompt_scorer
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="scripted-server", daemon=True)

    @property
    def url(self) -> str:
        """The base URL to give a client, e.g. `http://127.0.0.1:PORT/v1`."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def count(self) -> int:
        """How many requests arrived (faulted ones included)."""
        return len(self.requests)

    def start(self) -> ScriptedServer:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, body: dict[str, Any], path: str, fault: Fault | None) -> dict[str, Any]:
        n = 1 if self.ignore_n else int(body.get("n") or 1)
        choices: list[Any] = []
        chat = path.endswith("/chat/completions")
        if not chat and isinstance(body.get("prompt"), list) and body.get("prompt_logprobs") is not None:
            return self._score(body)
        for index in range(n):
            text = self.responder(body, index)
            if not chat:
                choices.append({"index": index, "text": text, "finish_reason": "stop", **self._logprobs(body, text, chat)})
                continue
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if self.reasoning_field and "</think>" in text:
                thought, content = text.split("</think>", 1)
                message = {"role": "assistant", "content": content.strip(),
                           self.reasoning_field: thought.replace("<think>", "").strip()}
            choices.append({"index": index, "message": message, "finish_reason": "stop", **self._logprobs(body, text, chat)})
        if fault is not None and fault.kind in CHOICE_FAULTS:
            choices = [_spoil(c, fault.kind) if fault.which is None or i in fault.which else c
                       for i, c in enumerate(choices)]
        if fault is not None and fault.kind == "no_choices":
            choices = []
        words = sum(len(self.responder(body, i).split()) for i in range(n))
        answer: dict[str, Any] = {"id": "scripted", "object": "chat.completion", "model": body.get("model"),
                                  "choices": choices}
        if self.usage and not (fault is not None and fault.kind == "no_usage"):
            answer["usage"] = {"prompt_tokens": 10, "completion_tokens": words, "total_tokens": 10 + words}
        if chat and body.get("return_token_ids") and self.logprobs == "ids":
            answer["prompt_token_ids"] = PROMPT_IDS
        return answer

    def _logprobs(self, body: dict[str, Any], text: str, chat: bool) -> dict[str, Any]:
        """The logprob fields of one choice, in the server mode's layout (none unless asked)."""
        k = body.get("top_logprobs") if chat else body.get("logprobs")
        if not (body.get("logprobs") and self.logprobs != "none"):
            return {}
        k = int(k or 0)
        ids = self.logprobs == "ids"

        def name(code: int) -> str:
            return f"token_id:{code}" if ids else chr(code)

        rows = []
        for char in text:
            code = ord(char)
            # The sampled token is the most likely; the alternatives are its next code points.
            alternatives = [(code + j, -0.1 - j) for j in range(k)]
            rows.append((name(code), -0.1, [(name(c), v) for c, v in alternatives]))
        if chat:
            content = [{"token": t, "logprob": v, "top_logprobs": [{"token": a, "logprob": b} for a, b in alts]}
                       for t, v, alts in rows]
            fields: dict[str, Any] = {"logprobs": {"content": content}}
        else:
            fields = {"logprobs": {"tokens": [t for t, _, _ in rows], "token_logprobs": [v for _, v, _ in rows],
                                   "top_logprobs": [dict(alts) for _, _, alts in rows]}}
            if ids and body.get("return_token_ids"):
                fields["prompt_token_ids"] = PROMPT_IDS
        if ids and body.get("return_token_ids"):
            fields["token_ids"] = [ord(c) for c in text]
        return fields

    def _score(self, body: dict[str, Any]) -> dict[str, Any]:
        """vLLM's answer to prompts of ids with `prompt_logprobs`: each prompt token's logprob by id, one choice per
        prompt (a list of ids, or a list of such lists)."""
        prompts = body["prompt"] if body["prompt"] and isinstance(body["prompt"][0], list) else [body["prompt"]]
        choices = []
        for index, prompt in enumerate(prompts):
            choice: dict[str, Any] = {"index": index, "text": "x", "finish_reason": "length"}
            if self.prompt_scorer is not None and self.logprobs == "ids":
                ids = [int(t) for t in prompt]
                values = self.prompt_scorer(ids)
                choice["prompt_logprobs"] = [None] + [{str(token): {"logprob": value, "rank": 1}}
                                                      for token, value in zip(ids[1:], values, strict=True)]
            choices.append(choice)
        tokens = sum(len(p) for p in prompts)
        return {"id": "scripted", "object": "text_completion", "model": body.get("model"), "choices": choices,
                "usage": {"prompt_tokens": tokens, "completion_tokens": len(prompts), "total_tokens": tokens + len(prompts)}}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                    self.wfile.flush()
                except OSError:  # the client gave up (timeout) and closed the connection
                    self.close_connection = True

            def _trickle(self, payload: bytes, delay: float) -> None:
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.flush()
                    for byte in payload:
                        time.sleep(delay)
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                except OSError:  # the client hit its deadline and hung up
                    pass
                self.close_connection = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                url = urlsplit(self.path)
                path = url.path
                with server._lock:
                    number = len(server.requests) + 1
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body = {}
                    server.requests.append({"number": number, "path": path, "query": url.query, "body": body,
                                            "authorization": self.headers.get("Authorization")})
                fault = server.faults.get(number)
                if server.api_key is not None and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    error = {"error": {"message": "Authentication Fails (invalid api key)", "type": "authentication_error"}}
                    self._send(401, json.dumps(error).encode())
                    return
                if fault is not None and fault.kind == "drop":
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if fault is not None and fault.kind == "status":
                    headers = {}
                    if fault.retry_after is not None:
                        value = fault.retry_after
                        headers["Retry-After"] = value if isinstance(value, str) else f"{value:g}"
                    message = fault.message.replace("{authorization}", self.headers.get("Authorization") or "")
                    self._send(fault.status, json.dumps({"error": {"message": message}}).encode(), headers)
                    return
                if fault is not None and fault.kind == "malformed":
                    self._send(200, b'{"choices": [{"message": ')
                    return
                if fault is not None and fault.kind == "slow":
                    time.sleep(fault.delay)
                if not path.endswith("/completions"):
                    self._send(404, json.dumps({"error": {"message": f"no route {path}"}}).encode())
                    return
                payload = json.dumps(server._answer(body, path, fault)).encode()
                if fault is not None and fault.kind == "trickle":
                    self._trickle(payload, fault.delay)
                    return
                self._send(200, payload)

        return Handler


def _spoil(choice: dict[str, Any], kind: str) -> Any:
    """A choice broken the way a choice fault says."""
    if kind == "non_dict":
        return "not a choice"
    spoiled = dict(choice)
    if kind == "finish_error":
        spoiled["finish_reason"] = "error"
    elif kind == "null_message":
        spoiled["message"] = None
    elif "message" in spoiled:  # empty
        spoiled["message"] = {"role": "assistant", "content": ""}
    else:
        spoiled["text"] = ""
    return spoiled

"""Fixtures for the evaluation tests: a scripted OpenAI-compatible server on 127.0.0.1 whose answers,
and so their correctness, are known in advance."""

from __future__ import annotations

import json
import re
import threading
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

# Per problem tag: the completions handed out in turn (content, finish_reason). Requests take the
# next ones, however the backend splits the k samples into requests, so each problem gets exactly
# this multiset of answers.
SCRIPT: dict[str, list[tuple[str, str]]] = {
    # reference 0.5: three equivalent forms and one wrong answer -> 3/4 correct, the vote is right.
    "P1": [("\\frac{1}{2}", "stop"), ("1/2", "stop"), ("0.5", "stop"), ("7", "stop")],
    # reference 12: one right, a wrong answer twice, one cut off -> 1/4, the vote is wrong.
    "P2": [("12", "stop"), ("13", "stop"), ("13", "stop"), (None, "length")],  # type: ignore[list-item]
    # reference 5: never solved.
    "P3": [("4", "stop"), ("4", "stop"), ("6", "stop"), ("4", "stop")],
    # reference 9: always solved, in two forms.
    "P4": [("9", "stop"), ("9.0", "stop"), ("9", "stop"), ("9", "stop")],
}
REFERENCES = {"P1": "0.5", "P2": "12", "P3": "5", "P4": "9"}


def completion_text(answer: str | None) -> str:
    """An R1-style completion; None stands for one cut off inside its think block."""
    if answer is None:
        return "<think>\nLet me think about this for a long"
    return f"<think>\nI worked it out.\n</think>\n\nThe answer is $\\boxed{{{answer}}}$."


class ScriptedServer:
    """A minimal OpenAI-compatible /v1/chat/completions and /v1/completions server following SCRIPT."""

    def __init__(self) -> None:
        self.script, self.references = SCRIPT, REFERENCES
        self.cursor: dict[str, int] = defaultdict(int)
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                reply = server.answer(body)
                data = json.dumps(reply).encode()
                self.send_response(200 if "error" not in reply else 400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        if "messages" in body:
            text = "\n".join(str(m.get("content", "")) for m in body["messages"])
        else:
            text = str(body.get("prompt", ""))
        match = re.search(r"\b(P\d)\b", text)
        if match is None or match.group(1) not in SCRIPT:
            return {"error": {"message": f"no script for prompt {text[:40]!r}"}}
        tag = match.group(1)
        n = int(body.get("n") or 1)
        with self.lock:
            self.requests.append(body)
            start = self.cursor[tag]
            self.cursor[tag] += n
        script = SCRIPT[tag]
        choices = []
        for i in range(n):
            answer, finish = script[(start + i) % len(script)]
            text_out = completion_text(answer)
            if "messages" in body:
                choices.append({"index": i, "message": {"role": "assistant", "content": text_out},
                                "finish_reason": finish})
            else:
                choices.append({"index": i, "text": text_out, "finish_reason": finish})
        return {"id": f"cmpl-{tag}-{start}", "object": "chat.completion", "model": body.get("model", "scripted"),
                "choices": choices, "usage": {"prompt_tokens": 10, "completion_tokens": 20 * n, "total_tokens": 10 + 20 * n}}


@pytest.fixture
def scripted_server() -> Iterator[ScriptedServer]:
    """A running scripted server; stopped after the test."""
    server = ScriptedServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()

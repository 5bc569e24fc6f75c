"""Stand-in models for ``guiagent fake-model``: the fake server with a responder that can really
drive a task, for trying the agent loop without a GPU.

- ``fixed``: every request is answered with ``finish`` (a fixed answer), for wiring checks;
- ``echo``: ``finish`` whose answer repeats the task and the size of the image received;
- ``script``: replies read in order from a YAML/JSON file, then ``fail``;
- ``dom``: a :class:`~guiagent.testing.dom_oracle.DomOracle` playing a plan of selectors
  against the page of a Chromium reached over CDP (the page the agent acts on), so its
  clicks land wherever the page really draws the targets.

None of them is Step3-VL: they stand in for it so that everything else (screenshots, the
image plan, the HTTP client, the parser, the coordinate chain, the policy, the recorder) runs
for real.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from guiagent.testing.dom_oracle import OracleStep
from guiagent.testing.fake_server import FakeReply, FakeRequest

MAX_FILE_BYTES = 1_000_000
ORACLE_KINDS = ("click", "double_click", "type", "key", "finish", "fail")


class StandInError(ValueError):
    """A stand-in's file is missing or malformed (one line, names the file)."""


class ScriptedReply(BaseModel):
    """One reply of a script: a tool call (``call`` + ``args``) and/or text."""

    model_config = ConfigDict(extra="forbid")

    call: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    reasoning: str | None = None
    content: str | None = None

    def to_reply(self) -> FakeReply:
        calls: list[tuple[str, dict[str, Any] | str]] = (
            [(self.call, self.args)] if self.call else []
        )
        return FakeReply(content=self.content, reasoning=self.reasoning, tool_calls=calls)


def _read_list(path: Path, what: str) -> list[Any]:
    if not path.is_file():
        raise StandInError(f"{path}: no such {what} file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise StandInError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise StandInError(f"{path}: not readable {what} YAML/JSON: {exc}".splitlines()[0]) from exc
    if isinstance(data, dict) and isinstance(data.get("replies", data.get("steps")), list):
        data = data.get("replies", data.get("steps"))
    if not isinstance(data, list) or not data:
        raise StandInError(f"{path}: a {what} file is a non-empty list")
    return data


def load_script(path: Path) -> list[FakeReply]:
    """A script file: a list of ``{call, args, reasoning, content}`` entries, in order."""
    replies = []
    for number, entry in enumerate(_read_list(path, "script"), start=1):
        try:
            replies.append(ScriptedReply.model_validate(entry).to_reply())
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise StandInError(f"{path}: reply {number}: {where}: {first['msg']}") from exc
    return replies


def load_plan(path: Path) -> list[OracleStep]:
    """A DOM plan: entries such as ``click: "#sign-in"``, ``type: alice``, ``key: [enter]``,
    ``finish: done`` (or OracleStep's own ``{kind, selector, text, keys}``)."""
    steps = []
    for number, entry in enumerate(_read_list(path, "plan"), start=1):
        if isinstance(entry, dict) and len(entry) == 1 and next(iter(entry)) in ORACLE_KINDS:
            kind, value = next(iter(entry.items()))
            if kind in ("click", "double_click"):
                entry = {"kind": kind, "selector": value}
            elif kind == "key":
                entry = {"kind": kind, "keys": value if isinstance(value, list) else [value]}
            else:
                entry = {"kind": kind, "text": value}
        try:
            step = OracleStep.model_validate(entry)
        except ValidationError as exc:
            raise StandInError(
                f"{path}: step {number}: want one of {', '.join(ORACLE_KINDS)}, got {entry!r}"
            ) from exc
        if step.kind == "raw":
            raise StandInError(f"{path}: step {number}: 'raw' steps are for tests only")
        steps.append(step)
    return steps


class ScriptResponder:
    """Answers the script's replies in order; past the end, ``fail`` (the run ends cleanly)."""

    def __init__(self, replies: list[FakeReply]) -> None:
        self.replies = list(replies)
        self._lock = threading.Lock()
        self.position = 0

    def __call__(self, request: FakeRequest) -> FakeReply:
        with self._lock:
            index, self.position = self.position, self.position + 1
        if index < len(self.replies):
            return self.replies[index]
        reason = f"the stand-in's script has no more replies (it has {len(self.replies)})"
        return FakeReply(
            reasoning="(stand-in) Script done.", tool_calls=[("fail", {"reason": reason})]
        )


def task_text(request: FakeRequest) -> str:
    """The text of the request's first user message (where the agent states the task)."""
    for message in request.messages:
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(
                str(part.get("text", ""))
                for part in content
                if isinstance(part, dict) and part.get("type") == "text"
            )
    return ""


def fixed_responder(answer: str):  # -> Responder
    def respond(request: FakeRequest) -> FakeReply:
        return FakeReply(
            reasoning="(stand-in) Fixed reply.", tool_calls=[("finish", {"answer": answer})]
        )

    return respond


def echo_responder(request: FakeRequest) -> FakeReply:
    """``finish`` echoing what arrived: the task's first words and the image's size."""
    size = request.image_size
    seen = f"an image of {size.width}x{size.height}" if size else "no image"
    words = " ".join(task_text(request).split())[:160]
    answer = f"echo: received {seen}, {len(request.tools)} tools; text: {words}"
    return FakeReply(reasoning="(stand-in) Echo.", tool_calls=[("finish", {"answer": answer})])

"""Request checks of the fake model server: what SGLang answers 400 to."""

from __future__ import annotations

import functools
import json
from typing import Any

from guiagent.testing.fake_protocol import ROLES


def validate_chat_body(body: dict[str, Any]) -> str | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list"
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or "role" not in msg:
            return f"messages[{i}] must be an object with a role"
        if msg["role"] not in ROLES:
            return (
                f"messages[{i}].role must be one of {', '.join(sorted(ROLES))}, got {msg['role']!r}"
            )
        for tc in msg.get("tool_calls") or []:
            args = (tc.get("function") or {}).get("arguments") if isinstance(tc, dict) else None
            try:
                parsed = json.loads(args) if isinstance(args, str) else None
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                return (
                    f"messages[{i}].tool_calls[].function.arguments must be a JSON string of an "
                    f"object, got {args!r}"
                )
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return "tools must be a list"
        for i, tool in enumerate(tools):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                return f"tools[{i}] must be {{type: function, function: {{name, ...}}}}"
            problem = _schema_problem(fn.get("parameters"))
            if problem:
                return f"tools[{i}] ({fn['name']}) has invalid parameters: {problem}"
    choice = body.get("tool_choice")
    if choice is not None and choice not in ("auto", "required", "none"):
        name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
        if not isinstance(name, str):
            return f"invalid tool_choice {choice!r}"
        if not tools:
            return "Tools cannot be empty if tool choice is set to a specific tool."
        if name not in [(t.get("function") or {}).get("name") for t in tools]:
            return f"Tool '{name}' not found in tools list."
    if choice == "required" and not tools:
        return "Tools cannot be empty if tool choice is set to required."
    return None


def _schema_problem(schema: Any) -> str | None:
    if schema is None:
        return None
    if not isinstance(schema, dict):
        return "parameters must be a JSON Schema object"
    try:
        key = json.dumps(schema, sort_keys=True)
    except (TypeError, ValueError):
        return _checked_schema_problem(schema)
    # an agent sends the same tools every turn: a schema is checked once (the check costs
    # about 1 ms a tool, which the loop benchmark would count as the loop's own time)
    return _schema_problem_of(key)


@functools.lru_cache(maxsize=256)
def _schema_problem_of(key: str) -> str | None:
    return _checked_schema_problem(json.loads(key))


def _checked_schema_problem(schema: dict[str, Any]) -> str | None:
    try:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError
    except ImportError:  # jsonschema is optional: fall back to the shape check above
        return None
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return exc.message
    return None

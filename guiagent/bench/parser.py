"""Benchmark: parsing a ~20 KB Step3-VL reply (reasoning, then 3 tool calls).

Entries: batch ``parse_reply`` (target >= 20 MB/s; baseline: a bare regex + ``json.loads``
extraction that does none of the reasoning, repair or error handling), the stream parser
fed 1-character and 4-character (about one token) chunks, and, on the last 5 KB, 1-character
streaming against re-parsing the whole buffer after every chunk (the quadratic approach
it avoids; too slow to run on all 20 KB).
"""

from __future__ import annotations

import json
import re

from guiagent.bench import median_ms
from guiagent.models.hermes import HermesStreamParser, parse_reply

_CALL_RE = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


def sample_reply(target_bytes: int = 20_000) -> str:
    """Reasoning (with a little markup and non-ASCII), a lone </think>, an answer, 3 calls."""
    paragraph = (
        "The window shows a settings dialog; the <b>Save</b> button sits at the bottom right, "
        "next to Cancel. Le bouton « Enregistrer » est grisé until the name field is filled, "
        "so I should type the name first, then press ctrl+s or click the button. "
    )
    calls = [
        {"name": "click", "arguments": {"x": 412, "y": 233}},
        {"name": "type", "arguments": {"text": "quarterly report – final.pdf"}},
        {"name": "key", "arguments": {"keys": ["ctrl", "s"]}},
    ]
    tail = "</think>\n\nI will fill in the name and save.\n" + "".join(
        "<tool_call>\n" + json.dumps(c, ensure_ascii=False) + "\n</tool_call>\n" for c in calls
    )
    reps = max(1, (target_bytes - len(tail.encode())) // len(paragraph.encode()))
    return paragraph * reps + tail


def _regex_baseline(text: str) -> list[dict]:
    return [json.loads(body) for body in _CALL_RE.findall(text)]


def _stream(text: str, size: int) -> None:
    parser = HermesStreamParser()
    for i in range(0, len(text), size):
        parser.feed(text[i : i + size])
    parser.finish()


def _reparse_every_chunk(text: str) -> None:
    for i in range(1, len(text) + 1):
        parse_reply(text[:i])


def _mb_per_s(n_bytes: int, ms: float) -> float:
    return n_bytes / 1e6 / (ms / 1000) if ms > 0 else float("inf")


def run(quick: bool = False) -> list[dict]:
    text = sample_reply()
    n_bytes = len(text.encode())
    reply = parse_reply(text)
    if len(reply.tool_calls) != 3 or reply.errors:
        raise RuntimeError(f"benchmark reply parsed wrongly: {reply}")

    batch = median_ms(lambda: parse_reply(text), 50 if quick else 500)
    regex = median_ms(lambda: _regex_baseline(text), 50 if quick else 500)
    one_char = median_ms(lambda: _stream(text, 1), 2 if quick else 7)
    token = median_ms(lambda: _stream(text, 4), 3 if quick else 15)
    # the quadratic baseline takes seconds on 20 KB: compare both on the last 5 KB
    short = text[-5000:]
    short_stream = median_ms(lambda: _stream(short, 1), 3 if quick else 10)
    reparse = median_ms(lambda: _reparse_every_chunk(short), 1 if quick else 3)
    return [
        {
            "name": "parser.batch_20kb",
            "median_ms": batch,
            "baseline_ms": regex,
            "ratio": round(batch / regex, 2) if regex else None,
            "note": f"{_mb_per_s(n_bytes, batch):.0f} MB/s on {n_bytes} bytes (target >= 20 MB/s); "
            "baseline: bare regex + json.loads",
        },
        {
            "name": "parser.stream_1char_20kb",
            "median_ms": one_char,
            "note": f"{_mb_per_s(n_bytes, one_char):.2f} MB/s",
        },
        {
            "name": "parser.stream_4char_20kb",
            "median_ms": token,
            "note": f"{_mb_per_s(n_bytes, token):.2f} MB/s",
        },
        {
            "name": "parser.stream_1char_5kb",
            "median_ms": short_stream,
            "baseline_ms": reparse,
            "ratio": round(short_stream / reparse, 4) if reparse else None,
            "note": f"{_mb_per_s(len(short.encode()), short_stream):.2f} MB/s; "
            "baseline: parse_reply on the whole buffer after every chunk",
        },
    ]

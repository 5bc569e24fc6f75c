"""ScreenSpot-format evaluation on datasets rendered by real headless Chromium."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.async_api import Browser

from guiagent.commands import eval as eval_command
from guiagent.core.geometry import CoordSpace, Point, Rect, sent_to_model
from guiagent.eval.dataset import DATASET_FILE, make_dataset
from guiagent.eval.screenspot import (
    DatasetError,
    Grounder,
    ScreenSpotRow,
    answer_point,
    evaluate,
    load_rows,
    model_grounder,
)
from guiagent.models.openai_client import ModelClient
from guiagent.models.reply import Completion, Reply, ToolCall
from guiagent.testing.fake_server import FakeModelServer, FakeReply, FakeRequest
from guiagent.testing.fixtures import AsyncRunner

pytestmark = pytest.mark.browser

PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>
body { margin: 0; font: 16px sans-serif; }
.abs { position: absolute; box-sizing: border-box; margin: 0; }
.icon { width: 32px; height: 32px; background: #36c; border: 0; }
</style></head><body>
<h1 class="abs" style="left:40px;top:20px">Inventory</h1>
<button class="abs" style="left:600px;top:300px;width:120px;height:40px">Add item</button>
<button class="abs" style="left:40px;top:120px;width:200px;height:30px">Remove selected</button>
<a class="abs" href="#help" style="left:900px;top:700px">Help center</a>
<input class="abs" style="left:300px;top:120px;width:240px;height:28px" placeholder="Search stock">
<button class="abs icon" style="left:1200px;top:20px" aria-label="Settings"></button>
<div class="abs icon" role="button" style="left:1150px;top:20px;width:24px;height:24px" title="Close panel"></div>
<span class="abs" style="left:40px;top:400px">Dup</span><span class="abs" style="left:40px;top:500px">Dup</span>
<button class="abs" style="left:40px;top:-200px">Off screen</button>
<button class="abs" style="left:40px;top:600px;visibility:hidden">Hidden</button>
</body></html>
"""

SECOND_PAGE = """<!doctype html><html><body style="margin:0">
<button style="position:absolute;left:100px;top:100px;width:300px;height:60px">Big button</button>
<button style="position:absolute;left:700px;top:500px;width:60px;height:24px">OK</button>
</body></html>
"""


@pytest.fixture(scope="module")
def dataset(
    async_runner: AsyncRunner, playwright_browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[ScreenSpotRow]]:
    pages = tmp_path_factory.mktemp("pages")
    (pages / "inventory.html").write_text(PAGE, encoding="utf-8")
    (pages / "second.html").write_text(SECOND_PAGE, encoding="utf-8")
    out = tmp_path_factory.mktemp("dataset")
    urls = [(pages / "inventory.html").as_uri(), (pages / "second.html").as_uri()]
    rows = async_runner.run(make_dataset(urls, out, (1280, 800), browser=playwright_browser))
    return out, rows


def oracle(rows: list[ScreenSpotRow], dx: float = 0.0, dy: float = 0.0) -> Grounder:
    """Knows every box; answers its centre shifted by (dx, dy)."""
    boxes = {row.instruction: row.box() for row in rows}

    async def ground(image: Image.Image, instruction: str) -> tuple[float, float] | None:
        centre = boxes[instruction].centre
        return (centre.x + dx, centre.y + dy)

    return ground


def test_make_dataset_rows(dataset: tuple[Path, list[ScreenSpotRow]]) -> None:
    out, rows = dataset
    by_instruction = {r.instruction: r for r in rows}
    # exact boxes of absolutely placed elements (CSS px == screenshot px at scale 1)
    assert by_instruction["Add item"].bbox == [600, 300, 120, 40]
    assert by_instruction["Remove selected"].bbox == [40, 120, 200, 30]
    assert by_instruction["Search stock"].bbox == [300, 120, 240, 28]
    assert by_instruction["Settings"].bbox == [1200, 20, 32, 32]
    assert by_instruction["Close panel"].bbox == [1150, 20, 24, 24]
    assert by_instruction["Settings"].data_type == "icon"
    assert by_instruction["Close panel"].data_type == "icon"
    assert by_instruction["Add item"].data_type == "text"
    assert by_instruction["Help center"].data_type == "text"
    assert by_instruction["Inventory"].data_type == "text"
    # ambiguous, off-screen and hidden elements are not targets
    assert "Dup" not in by_instruction
    assert "Off screen" not in by_instruction
    assert "Hidden" not in by_instruction
    assert {r.data_source for r in rows} == {"inventory", "second"}
    assert by_instruction["OK"].img_filename == "images/page_1.png"
    # written to disk and readable back
    assert load_rows(out / DATASET_FILE) == rows
    with Image.open(out / "images" / "page_0.png") as image:
        assert image.size == (1280, 800)
        # the Settings icon's pixels are its blue
        assert image.convert("RGB").getpixel((1216, 36)) == (0x33, 0x66, 0xCC)


def test_perfect_oracle_scores_100(dataset: tuple[Path, list[ScreenSpotRow]]) -> None:
    out, rows = dataset
    report = asyncio.run(evaluate(rows, oracle(rows), out))
    assert report.overall.total == len(rows) >= 9
    assert report.accuracy == 1.0
    assert report.by_type["text"].accuracy == 1.0
    assert report.by_type["icon"].accuracy == 1.0
    assert report.by_type["icon"].total == 2
    assert set(report.by_source) == {"inventory", "second"}
    assert report.wrong_format == 0


def test_offset_oracle_exact_lower_figure(dataset: tuple[Path, list[ScreenSpotRow]]) -> None:
    out, rows = dataset
    dx = 20.0  # half-widths: Settings 16, Close 12, OK 30, Add item 60 ...
    expected_hits = sum(1 for row in rows if row.bbox[2] / 2 >= dx)
    assert 0 < expected_hits < len(rows)
    report = asyncio.run(evaluate(rows, oracle(rows, dx=dx), out))
    assert report.overall.correct == expected_hits
    assert report.accuracy == expected_hits / len(rows)
    assert report.by_type["icon"].correct == 0  # both icons are narrower than 40 px
    assert report.by_type["icon"].accuracy == 0.0
    for result in report.results:
        assert result.distance == pytest.approx(dx)


def test_limit_and_concurrency(dataset: tuple[Path, list[ScreenSpotRow]]) -> None:
    out, rows = dataset
    seen: list[int] = []
    report = asyncio.run(
        evaluate(
            rows,
            oracle(rows),
            out,
            limit=3,
            concurrency=2,
            on_result=lambda r: seen.append(r.index),
        )
    )
    assert report.overall.total == 3
    assert sorted(seen) == [0, 1, 2]
    assert [r.index for r in report.results] == [0, 1, 2]


def test_screenspot_pro_xyxy_format(tmp_path: Path) -> None:
    Image.new("RGB", (400, 300), "white").save(tmp_path / "shot.png")
    rows_json = [
        {
            "img_filename": "shot.png",
            "bbox": [100, 100, 200, 150],
            "instruction": "open menu",
            "ui_type": "icon",
            "application": "vscode",
            "img_size": [400, 300],
        },
        {
            "img_filename": "shot.png",
            "bbox": [100, 100, 200, 150],
            "instruction": "xywh row",
            "data_type": "text",
            "data_source": "web",
        },
    ]
    (tmp_path / "pro.json").write_text(json.dumps(rows_json))
    rows = load_rows(tmp_path / "pro.json")
    assert rows[0].box() == Rect(100, 100, 100, 50)  # x1,y1,x2,y2
    assert rows[1].box() == Rect(100, 100, 200, 150)  # x,y,w,h
    assert rows[0].data_type == "icon" and rows[0].data_source == "vscode"

    async def at(image: Image.Image, instruction: str) -> tuple[float, float]:
        return (250.0, 200.0)  # inside the xywh box, outside the xyxy one

    report = asyncio.run(evaluate(rows, at, tmp_path))
    assert [r.hit for r in report.results] == [False, True]
    forced = asyncio.run(evaluate(rows, at, tmp_path, box_format="xyxy"))
    assert [r.hit for r in forced.results] == [False, False]
    assert report.by_source["vscode"].accuracy == 0.0
    assert report.by_source["web"].accuracy == 1.0


def test_wrong_format_bucket(dataset: tuple[Path, list[ScreenSpotRow]]) -> None:
    out, rows = dataset
    boxes = {row.instruction: row.box() for row in rows}
    text_rows = {r.instruction for r in rows if r.data_type == "text"}

    async def half(image: Image.Image, instruction: str) -> tuple[float, float] | None:
        if instruction in text_rows:
            return None
        c = boxes[instruction].centre
        return (c.x, c.y)

    report = asyncio.run(evaluate(rows, half, out))
    assert report.wrong_format == len(text_rows)
    assert report.by_type["text"].wrong_format == len(text_rows)
    assert report.by_type["text"].accuracy == 0.0
    assert report.by_type["icon"].accuracy == 1.0
    assert report.overall.correct == len(rows) - len(text_rows)


def test_errors_are_recorded_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_text(
        json.dumps({"img_filename": "missing.png", "bbox": [0, 0, 5, 5], "instruction": "x"}) + "\n"
    )
    rows = load_rows(tmp_path / "rows.jsonl")

    async def never(image: Image.Image, instruction: str) -> tuple[float, float]:
        raise AssertionError("not reached: the image is missing")

    report = asyncio.run(evaluate(rows, never, tmp_path))
    assert report.overall.errors == 1
    assert "missing.png" in (report.results[0].error or "")


@pytest.mark.parametrize(
    ("text", "match"),
    [("{not json", "not JSON"), ('[{"img_filename": "a.png"}]', "row 0 is not a ScreenSpot row")],
)
def test_bad_dataset_files(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "bad.json").write_text(text)
    with pytest.raises(DatasetError, match=match):
        load_rows(tmp_path / "bad.json")


def test_answer_point_shapes() -> None:
    def completion(content: str = "", calls: list[ToolCall] | None = None) -> Completion:
        return Completion(reply=Reply(content=content, tool_calls=calls or []))

    assert answer_point(completion(calls=[ToolCall(name="click", arguments={"x": 3, "y": 4})])) == (
        3,
        4,
    )
    assert answer_point(
        completion(calls=[ToolCall(name="click", arguments={"bbox": [0, 0, 10, 20]})])
    ) == (5, 10)
    assert answer_point(completion("<point>12 34</point>")) == (12, 34)
    assert answer_point(completion("I cannot find it.")) is None


def _centre_responder(rows: list[ScreenSpotRow], space: CoordSpace, frame_width: int = 1280) -> Any:
    boxes = {row.instruction: row.box() for row in rows}

    def respond(request: FakeRequest) -> FakeReply:
        image = request.image
        assert image is not None
        text = request.last_user_text
        instruction = text.split("Element: ", 1)[1]
        scale = image.width / frame_width
        centre = boxes[instruction].centre
        model = sent_to_model(Point(centre.x * scale, centre.y * scale), space, request.image_size)  # type: ignore[arg-type]
        return FakeReply(reasoning="looking", tool_calls=[("click", {"x": model.x, "y": model.y})])

    return respond


@pytest.mark.parametrize("space", [CoordSpace.IMAGE, CoordSpace.NORM1000])
def test_model_grounder_maps_back_through_plan(
    dataset: tuple[Path, list[ScreenSpotRow]], space: CoordSpace
) -> None:
    out, rows = dataset
    page_rows = [r for r in rows if r.data_source == "inventory"]
    with FakeModelServer(_centre_responder(page_rows, space)) as server:

        async def go() -> Any:
            async with ModelClient(server.url) as client:
                # 400 tokens: the 1280x800 frame is sent smaller, so the mapping back matters
                grounder = model_grounder(client, space, max_image_tokens=400)
                return await evaluate(page_rows, grounder, out)

        report = asyncio.run(go())
        sent = server.requests[0].image_size
        tools = server.requests[0].tools
    assert sent is not None and sent.width < 1280
    assert report.accuracy == 1.0
    for result in report.results:
        assert result.distance is not None and result.distance < 2.0
    assert tools[0]["function"]["name"] == "click"
    assert f"{sent.width}x{sent.height}" in tools[0]["function"]["description"]


def test_model_grounder_wrong_format_from_model(dataset: tuple[Path, list[ScreenSpotRow]]) -> None:
    out, rows = dataset
    with FakeModelServer(lambda request: FakeReply(content="I do not see it.")) as server:

        async def go() -> Any:
            async with ModelClient(server.url) as client:
                return await evaluate(rows[:2], model_grounder(client), out)

        report = asyncio.run(go())
    assert report.wrong_format == 2
    assert report.accuracy == 0.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="guiagent eval")
    eval_command.add_arguments(parser)
    return parser


def test_cli_screenspot(
    dataset: tuple[Path, list[ScreenSpotRow]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, rows = dataset
    page_rows = [r for r in rows if r.data_source == "inventory"]
    subset = tmp_path / "subset.json"
    subset.write_text(json.dumps([r.model_dump(exclude_none=True) for r in page_rows]))
    results = tmp_path / "results.json"
    with FakeModelServer(_centre_responder(page_rows, CoordSpace.NORM1000)) as server:
        args = _parser().parse_args(
            [
                "screenspot",
                str(subset),
                "--image-dir",
                str(out),
                "--model-url",
                server.url,
                "--coord-space",
                "norm1000",
                "--limit",
                "4",
                "--out",
                str(results),
                "--min-accuracy",
                "1.0",
            ]
        )
        assert eval_command.run(args) == 0
        assert server.request_count == 4
    printed = capsys.readouterr().out
    assert "overall" in printed and "100.0%" in printed
    saved = json.loads(results.read_text())
    assert saved["summary"]["overall"]["accuracy"] == 1.0
    assert len(saved["results"]) == 4


def test_cli_usage_errors(tmp_path: Path) -> None:
    missing = _parser().parse_args(
        ["screenspot", str(tmp_path / "nope.json"), "--model-url", "http://127.0.0.1:9"]
    )
    assert eval_command.run(missing) == 2
    bad_view = _parser().parse_args(
        ["make-dataset", "file:///x.html", "--out", str(tmp_path), "--viewport", "big"]
    )
    assert eval_command.run(bad_view) == 2


def test_cli_make_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "p.html"
    page.write_text(SECOND_PAGE)
    args = _parser().parse_args(
        ["make-dataset", str(page), "--out", str(tmp_path / "ds"), "--viewport", "800x600"]
    )
    assert eval_command.run(args) == 0
    rows = load_rows(tmp_path / "ds" / DATASET_FILE)
    assert {r.instruction for r in rows} == {"Big button", "OK"}
    with Image.open(tmp_path / "ds" / rows[0].img_filename) as image:
        assert image.size == (800, 600)
    assert "wrote 2 rows" in capsys.readouterr().out

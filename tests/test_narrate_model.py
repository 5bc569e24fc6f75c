"""Model mode against the fake SGLang server: the description and the grounded element list
are parsed, boxes come back in frame pixels, private things never reach the model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from guiagent.core.geometry import Rect, Size
from guiagent.models.budget import plan_image
from guiagent.models.openai_client import ModelClient
from guiagent.models.profiles import get_profile
from guiagent.narrate.model import TOOL_NAME, ModelDescriber, ModelNarrationError
from guiagent.narrate.narrator import Narrator, Scope
from guiagent.testing.fake_server import FakeModelServer, FakeReply, FakeRequest

PAGE = "tests/apps/narrate_layout.html"
SAVE_CSS = (40.0, 520.0)  # top-left of the Save button on the page (viewport CSS px)


@pytest.fixture
def page_env(browser_env_factory: Any, static_server: Any) -> Any:
    return browser_env_factory(start_url=static_server.url_for(PAGE))


def _scaled(request: FakeRequest, x: float, y: float) -> list[float]:
    size = request.image_size
    assert size is not None
    return [x * size.width / 1280, y * size.height / 800]


def test_model_mode_parses_description_and_elements(page_env: Any, async_runner: Any) -> None:
    seen: dict[str, Any] = {}

    def responder(request: FakeRequest) -> FakeReply:
        seen["request"] = request
        image = np.asarray(request.image)
        size = request.image_size
        seen["size"] = size
        # the password field (CSS 160..~330 x 372..~393) must arrive blacked out
        px, py = _scaled(request, 200, 382)
        seen["password_pixel"] = image[int(py), int(px)].tolist()
        x1, y1 = _scaled(request, *SAVE_CSS)
        x2, y2 = _scaled(request, SAVE_CSS[0] + 80, SAVE_CSS[1] + 30)
        sx, sy = _scaled(request, 205, 382)
        return FakeReply(
            reasoning="A report page with a form and buttons.",
            tool_calls=[
                (
                    TOOL_NAME,
                    {
                        "description": "A quarterly report page with a sign-in form and three buttons.",
                        "elements": [
                            {
                                "role": "Heading",
                                "label": "Quarterly report",
                                "box": _scaled(request, 40, 10) + _scaled(request, 300, 50),
                            },
                            {"role": "button", "label": "Save", "box": [x1, y1, x2, y2]},
                            {
                                "role": "textbox",
                                "label": "Password",
                                "box": [sx - 5, sy - 5, sx + 5, sy + 5],
                            },
                            {"role": "button", "label": "broken", "box": [1, 2]},
                            {"role": "button", "label": "bad", "box": "nowhere"},
                        ],
                    },
                )
            ],
        )

    async def scenario() -> Any:
        async with FakeModelServer(responder) as server, ModelClient(server.url) as client:
            narrator = Narrator(page_env, model=ModelDescriber(client, max_words=12))
            return await narrator.narrate()

    narration = async_runner.run(scenario())
    assert narration.mode == "model"
    assert narration.description == "A quarterly report page with a sign-in form and three buttons."
    labels = [(i.role, i.label) for i in narration.items()]
    # the element on the blacked-out password field is dropped; the bad box is skipped
    assert labels == [("heading", "Quarterly report"), ("button", "Save"), ("button", "broken")]
    save = narration.items()[1].rect
    assert save.left == pytest.approx(40, abs=3) and save.top == pytest.approx(520, abs=3)
    assert save.width == pytest.approx(80, abs=4) and save.height == pytest.approx(30, abs=4)
    assert narration.text.splitlines()[0] == narration.description
    assert seen["password_pixel"] == [0, 0, 0]
    request: FakeRequest = seen["request"]
    assert request.tool_names == [TOOL_NAME]
    assert "at most 12 words" in request.last_user_text
    budget = get_profile("step3-vl")
    assert (
        seen["size"] == plan_image(Size(1280, 800), budget.max_image_tokens, budget.image_rule).sent
    )
    assert narration.redacted >= 2  # the password field and the private block


def test_model_mode_region_crop_and_text_fallback(page_env: Any, async_runner: Any) -> None:
    sizes: list[Any] = []

    def responder(request: FakeRequest) -> FakeReply:
        sizes.append(request.image_size)
        return FakeReply(content="Three buttons: Save, Cancel and Help. " + "word " * 30)

    async def scenario() -> Any:
        async with FakeModelServer(responder) as server, ModelClient(server.url) as client:
            narrator = Narrator(page_env, model=ModelDescriber(client, max_words=8))
            return await narrator.narrate(Scope(kind="region", rect=Rect(30, 510, 400, 50)))

    narration = async_runner.run(scenario())
    budget = get_profile("step3-vl")
    assert sizes[0] == plan_image(Size(400, 50), budget.max_image_tokens, budget.image_rule).sent
    assert narration.description == "Three buttons: Save, Cancel and Help. word word…"
    assert narration.regions == []


def test_model_mode_empty_answer_is_a_named_error(page_env: Any, async_runner: Any) -> None:
    async def scenario() -> Any:
        async with (
            FakeModelServer(lambda r: FakeReply(content="")) as server,
            ModelClient(server.url, retries=0) as client,
        ):
            return await Narrator(page_env, model=ModelDescriber(client)).narrate()

    with pytest.raises(ModelNarrationError, match="no description"):
        async_runner.run(scenario())

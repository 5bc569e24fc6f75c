"""The events of one scenario step are recorded with the step's frame (one capture, one
redaction, one file), and a failed step's saved screen is the one its input left."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from guiagent.record.trajectory import Recorder, RunHeader, StepRecord, load

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def grounder() -> Any:
    from guiagent.grounding.local import LocalGrounder

    return LocalGrounder()


FORM = (
    "data:text/html,<label for=u>User</label><input id=u>"
    "<label for=p>Secret code</label><input id=p type=password>"
    "<form onsubmit=\"event.preventDefault();done.textContent='sent '+q.value\">"
    "<label for=q>Query</label><input id=q></form><p id=done>not sent</p>"
)


def test_the_events_of_a_type_into_step_share_its_one_frame(
    browser_env_factory: Any, async_runner: Any, grounder: Any, tmp_path: Path
) -> None:
    from guiagent.scenario.ui import UI

    env = browser_env_factory(start_url=FORM)
    captures: list[int] = []
    observe = env.observe

    async def counted() -> Any:
        captures.append(1)
        return await observe()

    env.observe = counted

    async def go() -> tuple[str, str]:
        with Recorder(tmp_path / "run", RunHeader(task="frames")) as recorder:
            ui = UI(env, grounder, recorder=recorder)
            await ui.type("hunter2", into="Secret code")
            before = len(captures)
            await ui.type("milk", into="Query", enter=True)
            assert len(captures) - before == 1, "one capture for a click, typing and Enter"
            recorder.finish("finished")
        return await env.page.text_content("#done") or "", await env.page.input_value("#p")

    done, secret = async_runner.run(go())
    assert done == "sent milk" and secret == "hunter2"  # the input really happened
    recording = load(tmp_path / "run")
    password_step, query_step = recording.steps
    for step, kinds in ((password_step, ["click", "type"]), (query_step, ["click", "type", "key"])):
        events = [StepRecord.model_validate(sub) for sub in step.sub_steps]
        assert [e.screen_action["action"] for e in events if e.screen_action] == kinds
        assert {e.frame for e in events} == {step.frame}, "one frame file per step"
    # the shared frame is redacted like any other: the password field blacked out
    events = [StepRecord.model_validate(sub) for sub in password_step.sub_steps]
    assert all(any(r["kind"] == "password_field" for r in e.redactions) for e in events), [
        e.redactions for e in events
    ]
    assert b"hunter2" not in b"".join(
        p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()
    )


def test_a_failed_type_step_saves_the_screen_its_input_left(
    browser_env_factory: Any, async_runner: Any, grounder: Any, tmp_path: Path
) -> None:
    """The first key moves the focus to another field: the step fails, and the saved
    screen shows where the text went (not the form before the click)."""
    from guiagent.core.env import Frame
    from guiagent.scenario.ui import UI, StepFailure

    page = (
        "data:text/html,<style>input{font:24px sans-serif;width:400px;display:block;"
        "margin:20px}</style><label for=a>Name</label><input id=a>"
        "<label for=b>Other</label><input id=b><script>a.addEventListener('keydown',"
        "()=>b.focus(),{once:true})</script>"
    )
    env = browser_env_factory(start_url=page)

    async def go() -> tuple[str, str]:
        ui = UI(env, grounder, out_dir=tmp_path)
        with pytest.raises(StepFailure):
            await ui.type("hello world", into="Name")
        (result,) = ui.results
        assert result.frame_path is not None
        from PIL import Image

        image = Image.open(result.frame_path).convert("RGB")
        lines = await grounder.aread_text(Frame.from_image(image))
        return " ".join(line.text for line in lines), await env.page.input_value("#b")

    seen, other = async_runner.run(go())
    assert other == "hello world"
    assert "helloworld" in seen.replace(" ", "").lower(), seen

"""Heal of a recorded form fill when the fields moved, were renamed, reordered or restyled:
every value lands in its own field (read from the page's own state) or the replay fails;
it never passes with a value in the wrong field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from apps.replay_support import element_centre, record_step

from guiagent.core.actions import Click, Type
from guiagent.envs.browser import BrowserEnv
from guiagent.record import Recorder, RunHeader, StepRecord, load
from guiagent.record.match import decide, same_element, score
from guiagent.record.replay import ReplayError, replay

PAGE = Path(__file__).parent / "apps" / "replay_signup.html"
VALUES = {"fullname": "Ada Lovelace", "email": "ada@example.org", "password": "s3cret-pw"}
SECRET = {"name": "secret:password", "secret": True, "value_hash": None}


def _url(variant: str = "") -> str:
    return PAGE.as_uri() + (f"?variant={variant}" if variant else "")


@pytest.fixture(scope="module")
def signup_run(async_runner: Any, playwright_browser: Any, tmp_path_factory: Any) -> Path:
    """click Full name, type, click Email, type, click Password, type (a secret), click Create."""
    run_dir = tmp_path_factory.mktemp("signup") / "run"

    async def go() -> None:
        async with BrowserEnv(
            start_url=_url(), browser=playwright_browser, viewport=(800, 600)
        ) as env:
            recorder = Recorder(run_dir, RunHeader(task="sign up", surface="browser"))
            with recorder:
                index = 0
                for key in ("fullname", "email", "password"):
                    x, y = await element_centre(env, f"#{key}")
                    await record_step(env, recorder, index, Click(x=x, y=y))
                    variables = SECRET if key == "password" else {"name": key}
                    await record_step(env, recorder, index + 1, Type(text=VALUES[key]), variables)
                    index += 2
                x, y = await element_centre(env, "#create")
                await record_step(env, recorder, index, Click(x=x, y=y))
                frame = await env.observe()
                recorder.append(
                    StepRecord(
                        index=index + 1,
                        frame=recorder.save_frame(frame.image),
                        frame_size=[frame.image.width, frame.image.height],
                        meta=frame.meta,
                        action={"action": "finish", "answer": "done"},
                        screen_action={"action": "finish", "answer": "done"},
                    )
                )
                recorder.finish("finished", stop_reason="finish", answer="done")

    async_runner.run(go())
    return run_dir


def _replay(
    async_runner: Any, browser: Any, run: Path, variant: str, out: Path, **kwargs: Any
) -> tuple[Any, dict[str, Any]]:
    async def go() -> tuple[Any, dict[str, Any]]:
        async with BrowserEnv(start_url=_url(variant), browser=browser, viewport=(800, 600)) as env:
            report = await replay(
                load(run),
                env,
                speed=0,
                out_dir=out,
                settle_timeout=0.3,
                variables={"password": VALUES["password"]},
                **kwargs,
            )
            return report, await env.page.evaluate("window.signupState()")

    return async_runner.run(go())


def _no_value_in_a_wrong_field(state: dict[str, Any]) -> None:
    for key in ("fullname", "email", "password"):
        assert state[key] in ("", VALUES[key]), f"{key} holds {state[key]!r}"


@pytest.mark.browser
@pytest.mark.parametrize(
    "variant", ["moved", "moved,renamed", "moved,renamed,reordered", "restyled,renamed"]
)
def test_heal_puts_every_value_in_its_own_field(
    async_runner: Any, playwright_browser: Any, signup_run: Path, tmp_path: Path, variant: str
) -> None:
    report, state = _replay(
        async_runner, playwright_browser, signup_run, variant, tmp_path, mode="heal"
    )
    _no_value_in_a_wrong_field(state)
    assert report.ok, report.summary()
    assert state == {**VALUES, "submitted": True}
    healed = report.healed
    assert healed and all(s.method and s.method.startswith("dom") for s in healed)
    assert all(s.rule.startswith("score ") for s in healed)  # a rule a person can read
    # every typing went where the replay had clicked: checked before and after typing
    assert [s.status for s in report.steps if s.action and s.action["action"] == "type"] == [
        "ok"
    ] * 3


@pytest.mark.browser
def test_heal_fails_rather_than_guess_when_the_evidence_does_not_decide(
    async_runner: Any, playwright_browser: Any, signup_run: Path, tmp_path: Path
) -> None:
    # no labels, new ids and names, new places: two text fields nothing tells apart
    report, state = _replay(
        async_runner, playwright_browser, signup_run, "anonymous,moved", tmp_path, mode="heal"
    )
    _no_value_in_a_wrong_field(state)
    assert not report.ok
    assert "heal: " in report.failure and "no element scores" in report.failure
    assert state["fullname"] == "" and not state["submitted"]


@pytest.mark.browser
def test_strict_never_acts_at_the_old_coordinates_of_a_moved_field(
    async_runner: Any, playwright_browser: Any, signup_run: Path, tmp_path: Path
) -> None:
    report, state = _replay(
        async_runner, playwright_browser, signup_run, "moved", tmp_path, mode="strict"
    )
    assert not report.ok and report.steps[-1].index == 0
    failed = report.steps[-1]
    assert "the element at the point is not the recorded target" in report.failure
    assert "textbox 'Full name' #fullname" in report.failure  # the evidence that disagreed
    assert Path(failed.side_by_side).is_file() and Path(failed.expected_crop).is_file()
    assert state == {"fullname": "", "email": "", "password": "", "submitted": False}


@pytest.mark.browser
def test_healed_recording_replays_strictly_on_the_new_layout(
    async_runner: Any, playwright_browser: Any, signup_run: Path, tmp_path: Path
) -> None:
    variant = "moved,renamed"
    report, _ = _replay(
        async_runner,
        playwright_browser,
        signup_run,
        variant,
        tmp_path / "a",
        mode="heal",
        save_healed=tmp_path / "healed",
    )
    assert report.ok and report.saved_healed, report.summary()
    healed = load(tmp_path / "healed")
    assert [s.outcome for s in healed.steps].count("healed") == len(report.healed)
    assert healed.steps[0].evidence["dom"]["name"] == "Your full name"
    report2, state = _replay(
        async_runner, playwright_browser, tmp_path / "healed", variant, tmp_path / "b"
    )
    assert report2.ok, report2.summary()
    assert state == {**VALUES, "submitted": True}


def test_unknown_variable_is_an_error(signup_run: Path, async_runner: Any) -> None:
    with pytest.raises(
        ReplayError, match=r"unknown variable pasword: this recording takes .*password"
    ):
        async_runner.run(replay(load(signup_run), None, variables={"pasword": "x"}))


def test_matching_rules_are_explained_and_veto_other_field_kinds() -> None:
    recorded = {
        "tag": "input",
        "type": "password",
        "role": "textbox",
        "name": "Password",
        "id": "password",
        "css_path": "body>form>div:nth-of-type(3)>input",
    }
    text_field = {**recorded, "type": "text", "name": "Full name", "id": "fullname"}
    assert score(recorded, text_field).veto == "input type text where password was recorded"
    same = {**recorded, "box": {"x": 0, "y": 0, "width": 10, "height": 10}}
    assert same_element(recorded, same) is None
    renamed = {**same, "name": "Choose a password", "id": "f9", "css_path": "body>div>input"}
    decision = decide(recorded, [text_field, renamed])
    assert decision.match is not None and decision.match.element["id"] == "f9"
    assert "name 'Password' ~ 'Choose a password'" in decision.rule
    assert "input type password" in decision.rule
    # two equally plausible candidates: undecided, never a coin toss
    twin = {**renamed, "id": "f10", "css_path": "body>div:nth-of-type(2)>input"}
    assert decide(recorded, [renamed, twin]).match is None


@pytest.mark.browser
def test_heal_asks_the_model_only_when_the_evidence_does_not_decide(
    async_runner: Any, playwright_browser: Any, signup_run: Path, tmp_path: Path
) -> None:
    asked: list[str] = []

    def model_for(env: Any) -> Any:
        async def ask(frame: Any, description: str) -> tuple[float, float] | None:
            asked.append(description)
            # a stand-in that knows the page: the n-th text field in the new order
            key = "fullname" if "Full name" in description else "email"
            box = await env.page.locator(
                f"[name=field{3 if key == 'fullname' else 4}]"
            ).bounding_box()
            return (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)

        return ask

    async def go(variant: str) -> tuple[Any, dict[str, Any]]:
        async with BrowserEnv(
            start_url=_url(variant), browser=playwright_browser, viewport=(800, 600)
        ) as env:
            report = await replay(
                load(signup_run),
                env,
                mode="heal",
                speed=0,
                out_dir=tmp_path / variant,
                settle_timeout=0.3,
                variables={"password": VALUES["password"]},
                model=model_for(env),
            )
            return report, await env.page.evaluate("window.signupState()")

    report, state = async_runner.run(go("moved,renamed"))
    assert report.ok and asked == []  # the evidence decided every step
    report, state = async_runner.run(go("anonymous,moved"))
    _no_value_in_a_wrong_field(state)
    assert asked and "Full name" in asked[0]  # asked with the recorded name and role
    assert report.ok, report.summary()
    # only the full name needed it: the email field is the one field of its type
    assert report.healed[0].method == "model" and len(asked) == 1
    assert report.healed[1].method.startswith("dom") and "input type email" in report.healed[1].rule
    assert state == {**VALUES, "submitted": True}


@pytest.mark.browser
def test_healing_inside_a_skill_is_saved(
    async_runner: Any, playwright_browser: Any, signup_run: Path, tmp_path: Path
) -> None:
    # the same steps, the first four run by a skill (recorded as its sub-steps)
    run = load(signup_run)
    skill = StepRecord(
        index=0,
        action={"action": "skill", "skill": "fill_name_email", "params": {}},
        screen_action={"action": "skill", "skill": "fill_name_email", "params": {}},
        sub_steps=[s.model_dump(mode="json") for s in run.steps[:4]],
    )
    wrapped = tmp_path / "wrapped"
    with Recorder(wrapped, run.header.model_copy()) as recorder:
        for step in [skill, *run.steps[4:]]:
            for name in (step.frame, (step.evidence or {}).get("crop")):
                if name:
                    (wrapped / name).write_bytes((signup_run / name).read_bytes())
            for sub in step.sub_steps:
                for name in (sub.get("frame"), (sub.get("evidence") or {}).get("crop")):
                    if name:
                        (wrapped / name).write_bytes((signup_run / name).read_bytes())
            recorder.append(step)
        recorder.finish("finished")
    report, _ = _replay(
        async_runner,
        playwright_browser,
        wrapped,
        "moved,renamed",
        tmp_path / "r",
        mode="heal",
        save_healed=tmp_path / "healed",
    )
    assert report.ok, report.summary()
    healed = load(tmp_path / "healed")
    inner = [StepRecord.model_validate(s) for s in healed.steps[0].sub_steps]
    assert [s.outcome for s in inner] == ["healed", "ok", "healed", "ok"]
    assert inner[2].evidence["dom"]["name"] == "E-mail address"
    report2, state2 = _replay(
        async_runner, playwright_browser, tmp_path / "healed", "moved,renamed", tmp_path / "s"
    )
    assert report2.ok, report2.summary()
    assert state2 == {**VALUES, "submitted": True}


def test_a_word_replaced_by_another_is_not_the_same_name() -> None:
    button = {"tag": "button", "role": "button", "name": "Sign in", "css_path": "body>button"}
    sign_out = {**button, "name": "Sign out", "box": {"x": 0, "y": 0, "width": 9, "height": 9}}
    decision = decide(button, [sign_out])
    assert decision.match is None and "no element scores" in decision.rule
    open_file = {**sign_out, "name": "Open file"}
    assert decide({**button, "name": "Open"}, [open_file, sign_out]).match is not None


@pytest.mark.browser
def test_cli_heal_asks_the_model_server_given_with_model(
    async_runner: Any,
    playwright_browser: Any,
    signup_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from guiagent.cli import main as cli_main
    from guiagent.testing.fake_server import FakeModelServer, FakeReply, FakeRequest

    variant = "anonymous,moved"

    async def where() -> tuple[float, float]:
        async with BrowserEnv(
            start_url=_url(variant), browser=playwright_browser, viewport=(800, 600)
        ) as env:
            box = await env.page.locator("[name=field3]").bounding_box()
            return (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)

    x, y = async_runner.run(where())
    prompts: list[str] = []

    def model(request: FakeRequest) -> FakeReply:
        prompts.append(str(request.messages[-1]))
        scale = request.image.width / 800  # the sent image may be resized
        return FakeReply(tool_calls=[("click", {"x": x * scale, "y": y * scale})])

    with FakeModelServer(model) as server:
        code = cli_main(
            [
                "replay",
                str(signup_run),
                "--mode",
                "heal",
                "--model",
                server.url,
                "--start-url",
                _url(variant),
                "--var",
                f"password={VALUES['password']}",
                "--speed",
                "0",
                "--out",
                str(tmp_path),
            ]
        )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "step 0 healed by model" in out and len(prompts) == 1 and "Full name" in prompts[0]
    assert cli_main(["replay", str(signup_run), "--model", "http://127.0.0.1:9"]) == 2
    assert "--model is used by --mode heal only" in capsys.readouterr().out

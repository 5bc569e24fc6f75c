"""The ``select`` step: choose an option of a ``<select>``, an ARIA listbox or a combobox.

A person's way, through the run's executor like every step: a ``<select>`` is clicked open
and the option reached with the arrow keys and Enter; a listbox's option is clicked (a
closed combobox is clicked open first). The step passes only when the page then reports
that option as the control's selected one.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from guiagent.core.actions import Click, Key
from guiagent.core.env import Frame
from guiagent.scenario.ground import Grounded, StepFailure
from guiagent.scenario.schema import SelectSpec, TargetSpec


@runtime_checkable
class ChoiceReader(Protocol):
    """A surface that can find a choice control and read its options (a browser)."""

    async def choice_control(
        self, x: float, y: float, name: str | None = None, again: bool = False
    ) -> dict[str, Any] | None: ...


def _centre(control: dict[str, Any]) -> Grounded:
    box = control["box"]
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    if control["kind"] == "select":
        x = box["x"] + min(box["width"] / 2, 20)  # on the shown text, left of the arrow
    return Grounded(
        screen=(x, y),
        box=(box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"]),
        source="dom",
        role=control["kind"],
        text=control.get("name") or "",
    )


def _option_index(control: dict[str, Any], option: str, what: str) -> int:
    labels = [o["label"] for o in control["options"]]
    if option in labels:
        return labels.index(option)
    shown = ", ".join(f'"{label}"' for label in labels[:12]) or "none"
    folded = [label.casefold() for label in labels]
    hint = (
        f' (did you mean "{labels[folded.index(option.casefold())]}"?)'
        if option.casefold() in folded
        else ""
    )
    raise StepFailure(f'{what} has no option "{option}"{hint}; its options: {shown}')


async def select_option(
    ui: Any, frame: Frame, spec: SelectSpec, timeout: float, rec: dict[str, Any]
) -> str:
    """Choose ``spec.option`` in the control ``spec.in_`` names; the page must confirm it."""
    env = ui.env
    if not isinstance(env, ChoiceReader):
        raise StepFailure(
            "select needs a browser page; on a desktop click the list, then click the option"
        )
    what = spec.in_.describe()
    frame, hit = await ui.ground(frame, spec.in_, timeout)
    control = await env.choice_control(hit.screen[0], hit.screen[1], spec.in_.text)
    if control is None:
        raise StepFailure(f"no drop-down or list box at or beside {what}")
    index = _option_index(control, spec.option, what)
    opener = _centre(control)
    if control["kind"] == "select":
        current = next((i for i, o in enumerate(control["options"]) if o["selected"]), 0)
        rec.update(action=Click(x=opener.screen[0], y=opener.screen[1]), hits=[opener])
        await ui._act(rec["action"], rec, frame, [opener])
        key = "down" if index > current else "up"
        for _ in range(abs(index - current)):
            await ui._act(Key(keys=[key]), rec, frame)
        await ui._act(Key(keys=["enter"]), rec, frame)
    else:
        if control["kind"] == "combobox" and not control["expanded"]:
            await ui._act(Click(x=opener.screen[0], y=opener.screen[1]), rec, frame, [opener])
            frame = await ui.observe()
        option_spec = TargetSpec(text=spec.option, role="option", exact=True)
        frame, option_hit = await ui.ground(frame, option_spec, timeout)
        frame, option_hit = await ui._reachable(frame, option_spec, option_hit, timeout)
        action = Click(x=option_hit.screen[0], y=option_hit.screen[1])
        rec.update(action=action, hits=[option_hit])
        await ui._act(action, rec, frame, [option_hit])
    after = await env.choice_control(0, 0, None, again=True)
    if after is None:
        raise StepFailure(f'{what} went away after choosing "{spec.option}"')
    if after["selected"] == spec.option or (
        after["kind"] == "combobox" and spec.option in (after["value"], after["text"])
    ):
        return f'{what} has "{spec.option}" selected'
    shown = after["selected"] or after["value"] or after["text"] or "nothing"
    raise StepFailure(f'{what} shows "{shown}" selected after choosing "{spec.option}"')

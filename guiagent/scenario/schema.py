"""Scenario files: pydantic models, YAML loading with line numbers, JSON Schema (variables:
:mod:`guiagent.scenario.substitution`).

A scenario is a YAML mapping with ``name``, ``target`` (a URL for the browser or a command
for the desktop) and ``steps``; each step has exactly one action key (``click``, ``type``,
``expect``, ...) plus optional ``name`` and ``timeout``. Loading keeps the YAML node line
numbers so that a bad file is reported as ``file:line: step N (kind): what is wrong``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    Tag,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from guiagent.core import yamlio
from guiagent.core.actions import Modifier, normalise_modifiers
from guiagent.scenario.substitution import SecretLookup, resolve_variables
from guiagent.scenario.vocabulary import check_keys, check_role, did_you_mean

STEP_KINDS: tuple[str, ...] = (
    "click",
    "double_click",
    "right_click",
    "hover",
    "type",
    "press",
    "scroll",
    "select",
    "drag",
    "wait_for",
    "expect",
    "ai",
    "ai_assert",
    "screenshot",
    "use",
)
COMMON_STEP_KEYS = ("name", "timeout")


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file, line and step."""

    def __init__(
        self, message: str, path: str | Path | None = None, problems: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.path = str(path) if path is not None else None
        self.problems = problems or [message]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- targets --------------------------------------------------------------------------


class TargetSpec(_Strict):
    """What a person would point at: a visible text, a template image, a fixed point, or
    (in a browser) a role alone, with ``nth`` to choose among its elements."""

    text: str | None = Field(
        default=None, description="Visible text (OCR, or the DOM in a browser)."
    )
    image: str | None = Field(
        default=None, description="Template image path, relative to the scenario file."
    )
    at: tuple[float, float] | None = Field(
        default=None,
        description="A fixed point [x, y] in screen coordinates (CSS pixels in a browser).",
    )
    nth: int | None = Field(
        default=None, ge=1, description="Pick the n-th match (1-based, reading order)."
    )
    near: str | None = Field(default=None, description="Prefer the match closest to this text.")
    in_: str | None = Field(
        default=None, alias="in", description="Only matches inside the region of this text."
    )
    role: Annotated[str | None, AfterValidator(check_role)] = Field(
        default=None,
        description=(
            "Element role, e.g. button, textbox, checkbox, link. Alone (no text, image or at)"
            " it names every element of that role; nth chooses (browser only). On a desktop"
            " button is checked: the accessibility bus must name an enabled button at the"
            " point; off the bus the text must be drawn inside a button's outline, and a"
            " click on a greyed button that changes nothing on screen fails."
        ),
    )
    exact: bool = Field(
        default=False,
        description="Match one element's or OCR line's whole text exactly (case-sensitive).",
    )

    @model_validator(mode="after")
    def _one_locator(self) -> TargetSpec:
        given = [k for k in ("text", "image", "at") if getattr(self, k) is not None]
        if not given and self.role:
            return self  # a role alone: {role: textbox, nth: 2}
        if len(given) != 1:
            found = ", ".join(given) if given else "none of them"
            raise ValueError(f"a target needs exactly one of text, image or at; got {found}")
        return self

    def describe(self) -> str:
        if self.text is not None:
            base = f'"{self.text}"'
        elif self.image is not None:
            base = f"image {self.image}"
        elif self.at is not None:
            base = f"point ({self.at[0]:g}, {self.at[1]:g})"
        else:
            base = f"a {self.role}"
        extras = []
        if self.role and base != f"a {self.role}":
            extras.append(f"role={self.role}")
        if self.nth:
            extras.append(f"nth={self.nth}")
        if self.near:
            extras.append(f'near "{self.near}"')
        if self.in_:
            extras.append(f'in "{self.in_}"')
        return base + (f" ({', '.join(extras)})" if extras else "")


_TARGET_KEYS = tuple(
    (info.alias or name) for name, info in TargetSpec.model_fields.items()
)  # text, image, at, nth, near, in, role, exact


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "nothing"
    return f"a {type(value).__name__}"


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = f"unknown key {loc!r}"
            loc = ""
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def _coerce_target(value: Any) -> Any:
    if isinstance(value, (str, TargetSpec)):
        return value
    if isinstance(value, dict):
        unknown = [k for k in value if k not in _TARGET_KEYS and k != "in_"]
        if unknown:
            raise ValueError(
                f"unknown key {unknown[0]!r} in target (allowed: {', '.join(_TARGET_KEYS)})"
                f"{did_you_mean(str(unknown[0]), _TARGET_KEYS)}"
            )
        try:
            return TargetSpec.model_validate(value)
        except ValidationError as exc:
            raise ValueError(_summarise(exc)) from None
    raise ValueError(f"expected a text or a mapping with text/image/at, got {_type_name(value)}")


def as_target(value: str | TargetSpec) -> TargetSpec:
    return TargetSpec(text=value) if isinstance(value, str) else value


TargetRef = Annotated[str | TargetSpec, BeforeValidator(_coerce_target), AfterValidator(as_target)]


class ClickTarget(TargetSpec):
    """The target of a click, double click or right click, with the modifier keys held
    while the button is pressed."""

    modifiers: tuple[Modifier, ...] = Field(
        default=(),
        description=(
            "Keys held down while clicking: ctrl, shift, alt, meta (in any order; `control`,"
            " `option`, `cmd`/`super`/`win` are aliases)."
        ),
    )

    @field_validator("modifiers", mode="before")
    @classmethod
    def _modifiers(cls, value: Any) -> tuple[str, ...]:
        return normalise_modifiers(value)

    @model_serializer(mode="wrap")
    def _omit_no_modifiers(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # a plain click's target records and exports as it always did
        data: dict[str, Any] = handler(self)
        if not data.get("modifiers"):
            data.pop("modifiers", None)
        return data

    def describe(self) -> str:
        held = f" with {'+'.join(self.modifiers)}" if self.modifiers else ""
        return super().describe() + held


class TargetWithModifiers(_Strict):
    """``{target: ..., modifiers: [...]}``: a target (text or mapping) and the keys held."""

    target: TargetRef = Field(description="What to click (a text or a target mapping).")
    modifiers: list[Modifier] = Field(default_factory=list, description="Keys held down.")


_CLICK_KEYS = (*_TARGET_KEYS, "modifiers")


def _coerce_click_target(value: Any) -> Any:
    """A click's value: a target, or a target mapping with ``modifiers``, or
    ``{target: <target>, modifiers: [...]}``; the result is a :class:`ClickTarget`."""
    if isinstance(value, ClickTarget) or not isinstance(value, dict):
        return _coerce_target(value)
    data = dict(value)
    held = data.pop("modifiers", None)
    if "target" in data:
        others = [k for k in data if k != "target"]
        if others:
            raise ValueError(
                f"unknown key {others[0]!r} beside target (allowed: target, modifiers)"
            )
        data = as_target(_coerce_target(data["target"])).model_dump(
            by_alias=True, exclude_defaults=True
        )
    unknown = [k for k in data if k not in _CLICK_KEYS and k != "in_"]
    if unknown:
        raise ValueError(
            f"unknown key {unknown[0]!r} in target (allowed: {', '.join(_TARGET_KEYS)});"
            f" a click also takes modifiers{did_you_mean(str(unknown[0]), _CLICK_KEYS)}"
        )
    try:
        modifiers = normalise_modifiers(held)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    try:
        return ClickTarget.model_validate({**data, "modifiers": modifiers})
    except ValidationError as exc:
        raise ValueError(_summarise(exc)) from None


def as_click_target(value: str | TargetSpec) -> TargetSpec:
    """A :class:`ClickTarget` when keys are held; else the plain :class:`TargetSpec` every
    click had before modifiers existed (so a plain click reads and records as it did)."""
    if isinstance(value, ClickTarget) and not value.modifiers:
        return TargetSpec.model_validate(
            value.model_dump(by_alias=True, exclude_defaults=True, exclude={"modifiers"})
        )
    return value if isinstance(value, TargetSpec) else TargetSpec(text=value)


ClickRef = Annotated[
    str | ClickTarget | TargetSpec | TargetWithModifiers,
    BeforeValidator(_coerce_click_target),
    AfterValidator(as_click_target),
]


def _coerce_keys(value: Any) -> Any:
    if isinstance(value, str):
        keys = (
            [k for k in re.split(r"\s*\+\s*", value.strip()) if k]
            if len(value.strip()) > 1
            else [value]
        )
        if not keys:
            raise ValueError("expected a key or a chord like 'ctrl+s', got an empty text")
        return keys
    if isinstance(value, list) and value and all(isinstance(k, str) and k for k in value):
        return value
    raise ValueError(
        f"expected a key chord like 'ctrl+s' or ['ctrl', 's'], got {_type_name(value)}"
    )


KeyChord = Annotated[str | list[str], BeforeValidator(_coerce_keys), AfterValidator(check_keys)]


# --- step payloads --------------------------------------------------------------------


class TypeSpec(_Strict):
    text: str = Field(
        description=(
            "Text to type. Use ${secret:NAME} for a password or token: it is typed for real but"
            " recorded and reported as [REDACTED]. Text typed into a password field is redacted"
            " too, whatever its source (browser: type=password; desktop: a password text on the"
            " accessibility bus, or a field showing masking dots)."
        )
    )
    into: TargetRef | None = Field(
        default=None,
        description=(
            "Click this target first (an input or its label). The step passes only when the"
            " text landed there: the browser's field holds it (text the page sent to another"
            " field while typing fails the step); on a desktop the accessibility"
            " bus (AT-SPI) says the focused field at the click holds it, or else OCR reads it"
            " in the field's box (a long text that scrolled: its last 6 or more characters;"
            " a password field: one more masking dot per character typed; a field that showed"
            " the text already: once more; a field with no outline: at the click)."
        ),
    )
    enter: bool = Field(default=False, description="Press Enter after typing.")


class ScrollSpec(_Strict):
    direction: Literal["up", "down", "left", "right"] = "down"
    amount: int = Field(default=3, ge=1, le=50, description="Wheel notches.")
    at: tuple[float, float] | None = Field(default=None, description="Screen point to scroll at.")
    on: TargetRef | None = Field(default=None, description="Scroll over this target.")
    in_: TargetRef | None = Field(
        default=None,
        alias="in",
        description=(
            "Scroll inside this container: a target on it or in it (its name, or a text"
            " already showing in it). Same as on."
        ),
    )
    until: TargetRef | None = Field(
        default=None,
        description=(
            "Scroll again and again until this target shows (and can be clicked); fails when"
            " it never does within max scrolls or when the view stops moving."
        ),
    )
    max: int = Field(default=20, ge=1, le=200, description="With until: the most scrolls to try.")

    @model_validator(mode="after")
    def _one_place(self) -> ScrollSpec:
        given = [k for k in ("at", "on", "in_") if getattr(self, k) is not None]
        if len(given) > 1:
            names = ", ".join(k.rstrip("_") for k in given)
            raise ValueError(f"scroll takes one of at, on or in; got {names}")
        return self


class SelectSpec(_Strict):
    option: str = Field(
        min_length=1, description="The option to choose, by its visible label (exact)."
    )
    in_: TargetRef = Field(
        alias="in",
        description=(
            "The control: a <select>, an ARIA listbox or combobox, named by its label (or any"
            " target on or just before it). Browser only."
        ),
    )


class DragSpec(_Strict):
    from_: TargetRef = Field(alias="from")
    to: TargetRef


class WaitForSpec(_Strict):
    text: str | None = None
    image: str | None = None
    gone: bool = Field(default=False, description="Wait until it disappears instead.")
    timeout: float | None = Field(default=None, gt=0, description="Seconds (default 5).")
    exact: bool = False

    @model_validator(mode="after")
    def _one(self) -> WaitForSpec:
        if (self.text is None) == (self.image is None):
            raise ValueError("wait_for needs exactly one of text or image")
        return self


class ExpectSpec(_Strict):
    text: str | None = None
    image: str | None = None
    not_: bool = Field(
        default=False,
        alias="not",
        description=(
            "Expect it NOT to be visible, once the screen is quiet (a page's own events; on"
            " a desktop, still pixels: an application may still be drawing the last input)."
        ),
    )
    title: str | None = Field(
        default=None,
        description=(
            "Window/page title: a plain text is looked for inside it, case-sensitive (Editor"
            " matches 'notes - Editor'); with * ? [ a glob matching the whole title; 're:'"
            " prefix for a regex. On a desktop: the active (else focused, else pointed-at)"
            " window's, or when none, any visible window's."
        ),
    )
    url: str | None = Field(
        default=None,
        description=(
            "Page URL: a plain text is looked for inside it; with * ? [ a glob matching the"
            " whole URL; 're:' prefix for a regex."
        ),
    )
    exact: bool = False
    timeout: float | None = Field(
        default=None, ge=0, description="Keep looking this long (default 2 s)."
    )

    @model_validator(mode="after")
    def _one(self) -> ExpectSpec:
        given = [k for k in ("text", "image", "title", "url") if getattr(self, k) is not None]
        if not given:
            raise ValueError("expect needs one of text, image, title or url")
        return self


class UseSpec(_Strict):
    skill: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")


def _text_or_mapping(value: Any, what: str) -> Any:
    if isinstance(value, str):
        return {"text": value}
    if isinstance(value, (dict, BaseModel)):
        return value
    raise ValueError(f"expected a text or a mapping with {what}, got {_type_name(value)}")


def _coerce_wait_for(value: Any) -> Any:
    return _text_or_mapping(value, "text/image")


def _coerce_expect(value: Any) -> Any:
    return _text_or_mapping(value, "text/image/title/url")


def _coerce_type(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"text": str(value)}
    return {"text": value} if isinstance(value, str) else value


def _coerce_use(value: Any) -> Any:
    return {"skill": value} if isinstance(value, str) else value


class _StepBase(_Strict):
    name: str | None = Field(default=None, description="A label for the report.")
    timeout: float | None = Field(default=None, gt=0, description="Seconds this step may take.")

    @property
    def kind(self) -> str:
        return next(k for k in STEP_KINDS if k in type(self).model_fields)

    @property
    def value(self) -> Any:
        return getattr(self, self.kind)


class ClickStep(_StepBase):
    click: ClickRef


class DoubleClickStep(_StepBase):
    double_click: ClickRef


class HoverStep(_StepBase):
    hover: TargetRef = Field(
        description="Move the pointer onto the target without pressing, then let hover effects show."
    )


class RightClickStep(_StepBase):
    right_click: ClickRef


class TypeStep(_StepBase):
    type: Annotated[TypeSpec, BeforeValidator(_coerce_type)]


class PressStep(_StepBase):
    press: KeyChord


class ScrollStep(_StepBase):
    scroll: ScrollSpec


class SelectStep(_StepBase):
    select: SelectSpec = Field(
        description=(
            "Choose an option of a drop-down or list box; passes only when the control then"
            " has that option selected."
        )
    )


class DragStep(_StepBase):
    drag: DragSpec


class WaitForStep(_StepBase):
    wait_for: Annotated[WaitForSpec, BeforeValidator(_coerce_wait_for)]


class ExpectStep(_StepBase):
    expect: Annotated[ExpectSpec, BeforeValidator(_coerce_expect)]


class AiStep(_StepBase):
    ai: str = Field(min_length=1)


class AiAssertStep(_StepBase):
    ai_assert: str = Field(min_length=1)


class ScreenshotStep(_StepBase):
    screenshot: str = Field(min_length=1, pattern=r"^[\w.-]+$")


class UseStep(_StepBase):
    use: Annotated[UseSpec, BeforeValidator(_coerce_use)]


_STEP_CLASSES: dict[str, type[_StepBase]] = {
    "click": ClickStep,
    "double_click": DoubleClickStep,
    "right_click": RightClickStep,
    "hover": HoverStep,
    "type": TypeStep,
    "press": PressStep,
    "scroll": ScrollStep,
    "select": SelectStep,
    "drag": DragStep,
    "wait_for": WaitForStep,
    "expect": ExpectStep,
    "ai": AiStep,
    "ai_assert": AiAssertStep,
    "screenshot": ScreenshotStep,
    "use": UseStep,
}


def _step_kind(value: Any) -> str | None:
    if isinstance(value, _StepBase):
        return value.kind
    if isinstance(value, dict):
        kinds = [k for k in value if k in _STEP_CLASSES]
        return kinds[0] if len(kinds) == 1 else None
    return None


def _check_step(value: Any) -> Any:
    if isinstance(value, _StepBase):
        return value
    if isinstance(value, str) and value in _STEP_CLASSES:
        raise ValueError(f"{value!r} needs a value, e.g. '{value}: ...'")
    if not isinstance(value, dict):
        raise ValueError(
            f"expected a mapping with one action key ({', '.join(STEP_KINDS)}), got {_type_name(value)}"
        )
    kinds = [k for k in value if k in _STEP_CLASSES]
    if not kinds:
        others = [k for k in value if k not in COMMON_STEP_KEYS]
        hint = f"unknown action {others[0]!r}; " if others else "no action; "
        guess = did_you_mean(str(others[0]), STEP_KINDS) if others else ""
        raise ValueError(f"{hint}expected one of {', '.join(STEP_KINDS)}{guess}")
    if len(kinds) > 1:
        raise ValueError(f"a step has exactly one action, got {len(kinds)}: {', '.join(kinds)}")
    return value


Step = Annotated[
    Annotated[ClickStep, Tag("click")]
    | Annotated[DoubleClickStep, Tag("double_click")]
    | Annotated[RightClickStep, Tag("right_click")]
    | Annotated[HoverStep, Tag("hover")]
    | Annotated[TypeStep, Tag("type")]
    | Annotated[PressStep, Tag("press")]
    | Annotated[ScrollStep, Tag("scroll")]
    | Annotated[SelectStep, Tag("select")]
    | Annotated[DragStep, Tag("drag")]
    | Annotated[WaitForStep, Tag("wait_for")]
    | Annotated[ExpectStep, Tag("expect")]
    | Annotated[AiStep, Tag("ai")]
    | Annotated[AiAssertStep, Tag("ai_assert")]
    | Annotated[ScreenshotStep, Tag("screenshot")]
    | Annotated[UseStep, Tag("use")],
    Discriminator(_step_kind),
    BeforeValidator(_check_step),
]


# --- scenario -------------------------------------------------------------------------


class BrowserTarget(_Strict):
    url: str | None = Field(
        default=None,
        description=(
            "Absolute URL, or a path served from the scenario's project (or --base-url)."
            " With cdp it may be left out: the steps start on the browser's active page."
        ),
    )
    cdp: str | None = Field(
        default=None,
        description=(
            "Attach to a running Chromium by its DevTools URL (http://127.0.0.1:9222, started"
            " with --remote-debugging-port) and act on its active page; the browser is left"
            " running."
        ),
    )
    ws: str | None = Field(
        default=None,
        description="Connect to a `playwright run-server` endpoint (ws://...); needs url.",
    )

    @model_validator(mode="after")
    def _where(self) -> BrowserTarget:
        if self.cdp is not None and self.ws is not None:
            raise ValueError("a browser target takes cdp or ws, not both")
        if self.url is None and self.cdp is None:
            raise ValueError(
                "a browser target needs a url (or cdp: a running browser to attach to)"
            )
        for key in ("cdp", "ws"):
            value = getattr(self, key)
            schemes = ("http://", "https://", "ws://", "wss://")
            if value is not None and not value.startswith(schemes):
                raise ValueError(f"{key} must be a URL (http://, ws://...), got {value!r}")
        return self


class DesktopTarget(_Strict):
    command: str | list[str] | None = Field(
        default=None, description="Program to launch (shell-split if a string)."
    )
    window: str | None = Field(
        default=None, description="Window title to wait for before the first step."
    )
    startup_timeout: float = Field(
        default=15.0, gt=0, description="Seconds to wait for the window."
    )
    cwd: str | None = Field(
        default=None, description="Working directory of the command (default: project root)."
    )

    @model_validator(mode="after")
    def _something(self) -> DesktopTarget:
        if self.command is None and self.window is None:
            raise ValueError(
                "a desktop target needs a command to launch or a window title to wait for"
            )
        return self


def _coerce_viewport(value: Any) -> Any:
    if isinstance(value, dict) and set(value) <= {"width", "height"}:
        return (value.get("width"), value.get("height"))
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*x\s*\d+\s*", value):
        w, h = value.lower().split("x")
        return (int(w), int(h))
    return value


class SettleOptions(_Strict):
    enabled: bool = True
    threshold: float = Field(
        default=0.002, ge=0, le=1, description="Fraction of changed pixels counted as still."
    )
    quiet_ms: int = Field(default=150, ge=0, description="How long the screen must stay still.")
    timeout_s: float = Field(
        default=3.0, gt=0, description="Give up settling after this long (then go on)."
    )


def _target_kind(value: Any) -> str:
    """A desktop target names a command or window (or another desktop key); else a browser."""
    if isinstance(value, BaseModel):
        return "desktop" if isinstance(value, DesktopTarget) else "browser"
    if isinstance(value, dict) and any(k in DesktopTarget.model_fields for k in value):
        return "desktop"
    return "browser"


TargetKind = Annotated[
    Annotated[BrowserTarget, Tag("browser")] | Annotated[DesktopTarget, Tag("desktop")],
    Discriminator(_target_kind),
]


class Scenario(_Strict):
    name: str = Field(default="", description="Defaults to the file name.")
    description: str = ""
    target: TargetKind
    env: Literal["browser", "desktop"] | None = Field(
        default=None, description="Inferred from target."
    )
    viewport: Annotated[tuple[int, int], BeforeValidator(_coerce_viewport)] = Field(
        default=(1280, 800), description="Browser viewport [width, height] in CSS pixels."
    )
    variables: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description=(
            "Values for ${name} references in any string. ${env:NAME} reads the environment"
            " (${env:NAME:-default} with a default); ${secret:NAME} reads a secret from"
            " GUIAGENT_SECRET_<NAME> or the YAML file named by GUIAGENT_SECRETS_FILE: every"
            " secret value is typed for real and shown as [REDACTED] in recordings, reports"
            " and messages. $${ is a literal ${."
        ),
    )
    settle: SettleOptions = Field(default_factory=SettleOptions)
    step_timeout: float = Field(
        default=5.0, gt=0, description="Default seconds for a step to find its target."
    )
    steps: list[Step] = Field(min_length=1)
    _path: str | None = PrivateAttr(default=None)
    _lines: dict[int, int] = PrivateAttr(default_factory=dict)
    _secrets: dict[str, str] = PrivateAttr(default_factory=dict)
    # more skill files or folders for use: steps (--skills), set by whoever runs the scenario
    _skill_paths: list[str] = PrivateAttr(default_factory=list)

    @property
    def path(self) -> str | None:
        """The file it was loaded from (None when built from data)."""
        return self._path

    @property
    def skill_paths(self) -> list[str]:
        """More skill files or folders for ``use:`` steps (``--skills``)."""
        return list(self._skill_paths)

    def use_skill_paths(self, paths: list[str]) -> None:
        self._skill_paths = list(paths)

    @property
    def lines(self) -> dict[int, int]:
        """Step index -> line of the step in the file."""
        return self._lines

    @property
    def secrets(self) -> dict[str, str]:
        """The ``${secret:NAME}`` values the file used, by name (never print these)."""
        return dict(self._secrets)

    @model_validator(mode="after")
    def _infer_env(self) -> Scenario:
        inferred = "browser" if isinstance(self.target, BrowserTarget) else "desktop"
        if self.env is None:
            self.env = inferred
        elif self.env != inferred:
            raise ValueError(f"env is {self.env!r} but the target is a {inferred} target")
        return self

    @property
    def base_dir(self) -> Path:
        return Path(self.path).resolve().parent if self.path else Path.cwd()

    def step_label(self, index: int) -> str:
        step = self.steps[index]
        return f"step {index + 1} ({step.kind})"

    def location(self, index: int) -> str:
        line = self.lines.get(index)
        return f"{self.path}:{line}" if self.path and line else (self.path or self.name)


# --- YAML with line numbers -----------------------------------------------------------


PathKey = yamlio.PathKey


def parse_yaml(text: str | bytes, source: str = "<string>") -> tuple[Any, dict[PathKey, int]]:
    """Parse YAML (bounded: :mod:`guiagent.core.yamlio`), returning the data and a map from
    data path to 1-based line number."""
    try:
        doc = yamlio.parse_yaml(text, source)
    except yamlio.YamlError as exc:
        raise ScenarioError(str(exc), source) from None
    return doc.data, doc.lines


# --- loading --------------------------------------------------------------------------


def _nearest_line(
    lines: dict[PathKey, int], data: Any, loc: tuple[Any, ...]
) -> tuple[int | None, PathKey]:
    """Follow a pydantic ``loc`` through the data (skipping union tags) to the deepest known line."""
    path: PathKey = ()
    node = data
    parts = list(loc)
    for i, part in enumerate(parts):
        following = parts[i + 1] if i + 1 < len(parts) else None
        if (
            isinstance(node, dict)
            and following is not None
            and following in node
            and not isinstance(node.get(part), dict)
        ):
            continue  # ``part`` is a union tag that happens to equal a key (a step's kind)
        if isinstance(node, dict) and part in node:
            path, node = (*path, part), node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part.rstrip("_") in node:
            path, node = (*path, part.rstrip("_")), node[part.rstrip("_")]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path, node = (*path, part), node[part]
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path), path


def _step_prefix(data: Any, path: PathKey, err: dict[str, Any] | None = None) -> str:
    loc = tuple(err.get("loc", ())) if err else ()
    named_key = err is not None and err.get("type") in ("extra_forbidden", "missing")
    if len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int):
        step = data["steps"][path[1]]
        kind = _step_kind(step) if isinstance(step, dict) else None
        field = list(path[2:])
        if field and field[0] == kind:
            field = field[1:]
        if named_key and field and loc and field[-1] == loc[-1]:
            field = field[:-1]
        where = f"{'.'.join(str(p) for p in field)}: " if field else ""
        return f"step {path[1] + 1}" + (f" ({kind})" if kind else "") + f": {where}"
    field = list(path)
    if named_key and field and loc and field[-1] == loc[-1]:
        field = field[:-1]
    return f"{'.'.join(str(p) for p in field)}: " if field else ""


def _error_message(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", "")).removeprefix("Value error, ")
    kind = err.get("type")
    loc = err.get("loc", ())
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r}" if loc else "unknown key"
    if kind == "missing":
        return f"missing required key {loc[-1]!r}" if loc else "missing a required key"
    return msg


def scenario_from_data(
    data: Any,
    source: str = "<string>",
    lines: dict[PathKey, int] | None = None,
    variables: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> Scenario:
    """Validate scenario data; ``secrets`` (name -> value) answer ``${secret:NAME}`` before the
    environment and the secrets file do."""
    lines = lines or {}
    if not isinstance(data, dict):
        raise ScenarioError(
            f"{source}:1: a scenario is a mapping with name, target and steps; got {_type_name(data)}",
            source,
        )
    lookup = SecretLookup(secrets, environ)
    data, var_errors = resolve_variables(data, variables, environ, lookup)
    problems = [
        f"{source}:{lines.get(p) or 1}: {_step_prefix(data, p)}{msg}" for p, msg in var_errors
    ]
    if problems:
        raise ScenarioError("\n".join(problems), source, problems)
    default_name = Path(source).stem if source != "<string>" else "scenario"
    payload = {"name": default_name, **data}
    try:
        scenario = Scenario.model_validate(payload)
    except ValidationError as exc:
        seen: set[str] = set()
        for err in exc.errors(include_url=False):
            line, path = _nearest_line(lines, data, tuple(err.get("loc", ())))
            text = f"{source}:{line or 1}: {_step_prefix(data, path, dict(err))}{_error_message(dict(err))}"
            if text not in seen:
                seen.add(text)
                problems.append(text)
        problems = _prefer_specific(problems)
        raise ScenarioError("\n".join(problems), source, problems) from None
    scenario._path = source if source != "<string>" else None
    scenario._secrets = dict(lookup.found)
    scenario._lines = {
        i: lines[("steps", i)] for i in range(len(scenario.steps)) if ("steps", i) in lines
    }
    return scenario


def _prefer_specific(problems: list[str]) -> list[str]:
    """A union mismatch gives one error per branch: drop the generic ones where a specific one
    names the same place."""
    generic = re.compile(
        r"Input should be a valid (string|dictionary|tuple|list)|Input should be an instance"
    )

    def place(problem: str) -> str:
        return problem.split(": ", 2)[0] + problem.split(": ", 2)[1] if ": " in problem else problem

    specific_places = {place(p) for p in problems if not generic.search(p)}
    return [p for p in problems if not generic.search(p) or place(p) not in specific_places]


def load_scenario(
    path: str | Path,
    variables: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> Scenario:
    """Read and validate one scenario file; raises ScenarioError naming file, line and step."""
    source = str(path)
    try:
        doc = yamlio.load_yaml_file(path)
    except yamlio.YamlError as exc:
        raise ScenarioError(str(exc), source) from None
    data, lines = doc.data, doc.lines
    return scenario_from_data(data, source, lines, variables, environ, secrets)


def is_scenario_file(path: str | Path) -> bool:
    """A YAML file whose top level is a mapping with a ``steps`` key (cheap check, no validation)."""
    p = Path(path)
    if p.suffix not in (".yaml", ".yml"):
        return False
    try:
        text = p.read_text(encoding="utf-8")
    except OSError:
        return False
    return re.search(r"^steps\s*:", text, flags=re.MULTILINE) is not None


def find_scenarios(paths: list[str | Path]) -> list[Path]:
    """Expand files and directories (recursively) into scenario files, sorted, without duplicates."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            # skills are written in the same language; their skills/ folders are not scenarios
            found = (f for f in p.rglob("*.y*ml") if "skills" not in f.relative_to(p).parts[:-1])
            out.extend(sorted(f for f in found if is_scenario_file(f)))
        else:
            out.append(p)
    seen: set[Path] = set()
    unique = []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


# --- JSON Schema ----------------------------------------------------------------------

SCHEMA_PATH = Path(__file__).with_name("scenario.schema.json")


def json_schema() -> dict[str, Any]:
    schema = Scenario.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "guiagent scenario"
    return schema


def write_json_schema(path: str | Path = SCHEMA_PATH) -> Path:
    """Regenerate the editor schema (committed as guiagent/scenario/scenario.schema.json)."""
    out = Path(path)
    out.write_text(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out

"""The action space: pydantic models, and the OpenAI ``tools`` JSON made from them.

The model's tool-call arguments are validated here. Coordinates arrive in the shapes
models really produce (``x``/``y``, ``point: [x, y]``, ``"<point>x y</point>"``,
``"(x,y)"``, ``start_box``, boxes ``[x1,y1,x2,y2]`` reduced to their centre, numbers in
strings) and leave as plain ``x``/``y`` numbers in model space. The loop then maps them to
screen points through :mod:`guiagent.core.geometry` and hands environments the same models
with screen coordinates.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from guiagent.core.geometry import CoordSpace, Size

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_POINT_KEYS = ("point", "coordinate", "coordinates", "position", "pos", "start_box", "box", "bbox")
# every argument name a single point may arrive under
POINT_KEYS = frozenset(("x", "y", *_POINT_KEYS))


class PointShapeError(ValueError):
    pass


def parse_point(value: Any) -> tuple[float, float]:
    """Read a point from any common shape; a 4-number box gives its centre."""
    numbers: list[float]
    if isinstance(value, bool):
        raise PointShapeError(f"not a point: {value!r}")
    if isinstance(value, dict):
        if "x" in value and "y" in value:
            return (_as_number(value["x"]), _as_number(value["y"]))
        for key in _POINT_KEYS:
            if key in value:
                return parse_point(value[key])
        raise PointShapeError(f"not a point: {value!r}")
    if isinstance(value, (list, tuple)):
        flat: list[Any] = []
        for item in value:
            flat.extend(item if isinstance(item, (list, tuple)) else [item])
        numbers = [_as_number(v) for v in flat]
    elif isinstance(value, str):
        numbers = [float(n) for n in _NUMBER.findall(value)]
    else:
        raise PointShapeError(f"not a point: {value!r}")
    if len(numbers) == 2:
        return (numbers[0], numbers[1])
    if len(numbers) == 4:
        x1, y1, x2, y2 = numbers
        return ((x1 + x2) / 2, (y1 + y2) / 2)
    raise PointShapeError(
        f"expected 2 numbers (a point) or 4 (a box), got {len(numbers)} in {value!r}"
    )


def _as_number(value: Any) -> float:
    if isinstance(value, bool):
        raise PointShapeError(f"not a number: {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        found = _NUMBER.findall(value)
        if len(found) == 1:
            return float(found[0])
    raise PointShapeError(f"not a number: {value!r}")


def _coerce_xy(
    data: dict[str, Any], x: str = "x", y: str = "y", keys: Sequence[str] = _POINT_KEYS
) -> dict[str, Any]:
    """Fill ``x``/``y`` from whichever point shape the arguments used."""
    data = dict(data)
    if x in data and y in data:
        data[x], data[y] = _as_number(data[x]), _as_number(data[y])
        return data
    if x in data and y not in data:  # "x": "[120, 340]" or "x": [120, 340]
        data[x], data[y] = parse_point(data[x])
        return data
    for key in keys:
        if key in data:
            data[x], data[y] = parse_point(data.pop(key))
            return data
    return data


class BaseAction(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    description: ClassVar[str] = ""
    point_fields: ClassVar[tuple[tuple[str, str], ...]] = ()
    # fields set by scenarios and replays, never by the model: left out of the tools JSON
    # and refused in a model's tool call
    hidden_fields: ClassVar[frozenset[str]] = frozenset()

    @property
    def name(self) -> str:
        return self.action  # type: ignore[attr-defined, no-any-return]

    def arguments(self) -> dict[str, Any]:
        return self.model_dump(exclude={"action"}, exclude_none=True)

    def points(self) -> list[tuple[float, float]]:
        return [
            (getattr(self, fx), getattr(self, fy))
            for fx, fy in self.point_fields
            if getattr(self, fx) is not None
        ]

    def with_points(self, points: Sequence[tuple[float, float]]) -> BaseAction:
        update: dict[str, float] = {}
        for (fx, fy), (px, py) in zip(self.point_fields, points, strict=False):
            update[fx], update[fy] = px, py
        return self.model_copy(update=update)


class _PointAction(BaseAction):
    point_fields = (("x", "y"),)
    x: float
    y: float

    @model_validator(mode="before")
    @classmethod
    def _shapes(cls, data: Any) -> Any:
        return _coerce_xy(data) if isinstance(data, dict) else data


Modifier = Literal["ctrl", "shift", "alt", "meta"]
MODIFIERS: tuple[str, ...] = ("ctrl", "shift", "alt", "meta")  # also their pressing order
_MODIFIER_ALIASES = {
    "control": "ctrl",
    "option": "alt",
    "cmd": "meta",
    "command": "meta",
    "super": "meta",
    "win": "meta",
}


class ModifierError(ValueError):
    pass


def normalise_modifiers(value: Any) -> tuple[str, ...]:
    """Modifier keys held during a click, deduplicated in the order ctrl, shift, alt, meta.

    Accepts a list, one name, or ``"ctrl+shift"``; ``control``, ``option``, ``cmd``/``command``/
    ``super``/``win`` are aliases. Anything else is a :class:`ModifierError` naming the valid ones.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        value = [p for p in re.split(r"\s*\+\s*|\s*,\s*|\s+", value.strip()) if p]
    if not isinstance(value, (list, tuple)):
        raise ModifierError(f"modifiers must be a list of {', '.join(MODIFIERS)}, got {value!r}")
    names = set()
    for item in value:
        name = str(item).strip().lower() if isinstance(item, str) else None
        name = _MODIFIER_ALIASES.get(name or "", name)
        if name not in MODIFIERS:
            raise ModifierError(
                f"unknown modifier {item!r}; valid modifiers: {', '.join(MODIFIERS)}"
            )
        names.add(name)
    return tuple(m for m in MODIFIERS if m in names)


def modifier_prefix(modifiers: Sequence[str]) -> str:
    """``"ctrl+shift+"`` for a click's modifiers (``""`` for none): what action details show."""
    return "".join(f"{name}+" for name in modifiers)


class _ClickAction(_PointAction):
    """A press of a mouse button, with modifier keys held around it (none by default)."""

    hidden_fields = frozenset({"modifiers"})
    modifiers: tuple[Modifier, ...] = ()

    @field_validator("modifiers", mode="before")
    @classmethod
    def _modifiers(cls, value: Any) -> tuple[str, ...]:
        return normalise_modifiers(value)

    @model_serializer(mode="wrap")
    def _omit_no_modifiers(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # a plain click dumps (records, history, approval text) as it always did
        data: dict[str, Any] = handler(self)
        if not data.get("modifiers"):
            data.pop("modifiers", None)
        else:
            data["modifiers"] = list(data["modifiers"])
        return data


class Click(_ClickAction):
    action: Literal["click"] = "click"
    description = "Left-click at a point."


class DoubleClick(_ClickAction):
    action: Literal["double_click"] = "double_click"
    description = "Double-click at a point."


class RightClick(_ClickAction):
    action: Literal["right_click"] = "right_click"
    description = "Right-click at a point (opens context menus)."


class Move(_PointAction):
    action: Literal["move"] = "move"
    description = "Move the pointer to a point without clicking (hover)."


class Drag(BaseAction):
    action: Literal["drag"] = "drag"
    description = "Press the left button at (x1, y1), move to (x2, y2) and release."
    point_fields = (("x1", "y1"), ("x2", "y2"))
    x1: float
    y1: float
    x2: float
    y2: float

    @model_validator(mode="before")
    @classmethod
    def _shapes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = _coerce_xy(data, "x1", "y1", ("start", "start_point", "from", "start_box", "point1"))
        return _coerce_xy(data, "x2", "y2", ("end", "end_point", "to", "end_box", "point2"))


class Scroll(BaseAction):
    action: Literal["scroll"] = "scroll"
    description = (
        "Scroll the content under a point. amount is in wheel notches (about 100 px each)."
    )
    point_fields = (("x", "y"),)
    x: float | None = None
    y: float | None = None
    direction: Literal["up", "down", "left", "right"] = "down"
    amount: int = Field(default=3, ge=1, le=50)

    @model_validator(mode="before")
    @classmethod
    def _shapes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = _coerce_xy(data)
        if isinstance(data.get("direction"), str):
            data["direction"] = data["direction"].strip().lower()
        return data


class Type(BaseAction):
    action: Literal["type"] = "type"
    description = "Type text at the keyboard focus (click the field first). Use \\n for Enter."
    text: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "text" not in data:
            for key in ("content", "value", "string"):
                if key in data:
                    data = dict(data)
                    data["text"] = data.pop(key)
                    break
        return data


_KEY_ALIASES = {
    "control": "ctrl",
    "return": "enter",
    "escape": "esc",
    "cmd": "command",
    "meta": "command",
    "super": "win",
    "del": "delete",
    "pgup": "pageup",
    "pgdn": "pagedown",
    "arrowup": "up",
    "arrowdown": "down",
    "arrowleft": "left",
    "arrowright": "right",
    "option": "alt",
}


def normalise_key(key: str) -> str:
    k = key.strip().lower().replace(" ", "")
    return _KEY_ALIASES.get(k, k)


class Key(BaseAction):
    action: Literal["key"] = "key"
    description = 'Press one key chord, e.g. ["ctrl", "s"], ["enter"] or ["alt", "f4"].'
    keys: list[str] = Field(min_length=1, max_length=5)

    @model_validator(mode="before")
    @classmethod
    def _shapes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        keys = data.pop("keys", None)
        if keys is None:
            keys = data.pop("key", None) or data.pop("hotkey", None) or data.pop("combo", None)
        if isinstance(keys, str):
            keys = (
                [k for k in re.split(r"\s*\+\s*|\s+", keys.strip()) if k]
                if len(keys.strip()) > 1
                else [keys]
            )
        if isinstance(keys, list):
            keys = [normalise_key(k) if isinstance(k, str) and len(k) > 1 else k for k in keys]
        data["keys"] = keys
        return data


class Wait(BaseAction):
    action: Literal["wait"] = "wait"
    description = "Wait for the screen to change (loading, animations)."
    seconds: float = Field(default=1.0, ge=0, le=60)


class Finish(BaseAction):
    action: Literal["finish"] = "finish"
    description = "The task is done. Give the answer or a one-line summary."
    answer: str = ""

    @model_validator(mode="before")
    @classmethod
    def _alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "answer" not in data:
            for key in ("result", "summary", "content", "message", "text"):
                if key in data:
                    data = dict(data)
                    data["answer"] = data.pop(key)
                    break
        return data


class Fail(BaseAction):
    action: Literal["fail"] = "fail"
    description = "The task cannot be done. Say why."
    reason: str = ""

    @model_validator(mode="before")
    @classmethod
    def _alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "reason" not in data:
            for key in ("message", "error", "content", "text", "answer"):
                if key in data:
                    data = dict(data)
                    data["reason"] = data.pop(key)
                    break
        return data


class SkillCall(BaseAction):
    """A call to a registered skill; its arguments are validated by the skill itself."""

    action: Literal["skill"] = "skill"
    skill: str
    params: dict[str, Any] = Field(default_factory=dict)


Action = Annotated[
    Click
    | DoubleClick
    | RightClick
    | Move
    | Drag
    | Scroll
    | Type
    | Key
    | Wait
    | Finish
    | Fail
    | SkillCall,
    Field(discriminator="action"),
]
ACTION_ADAPTER: TypeAdapter[Action] = TypeAdapter(Action)

BUILTIN_ACTIONS: tuple[type[BaseAction], ...] = (
    Click,
    DoubleClick,
    RightClick,
    Move,
    Drag,
    Scroll,
    Type,
    Key,
    Wait,
    Finish,
    Fail,
)
ACTIONS_BY_NAME: dict[str, type[BaseAction]] = {
    cls.model_fields["action"].default: cls for cls in BUILTIN_ACTIONS
}
TERMINAL_ACTIONS = ("finish", "fail")


def action_from_dict(data: dict[str, Any]) -> BaseAction:
    """Rebuild an action from its dumped form (``{"action": "click", "x": ..}``), e.g. from a recording."""
    return ACTION_ADAPTER.validate_python(data)  # type: ignore[return-value]


# --- tool definitions -----------------------------------------------------------------


class InvalidToolCall(ValueError):
    """A tool call the model made that cannot be executed; the message goes back to the model."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


class ExtraTool(BaseModel):
    """A tool that is not a built-in action (a skill): schema plus the validator that builds its action."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    name: str
    description: str
    parameters: dict[str, Any]
    build: Callable[[dict[str, Any]], BaseAction]


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema, dict):
        return {k: _clean_schema(v) for k, v in schema.items() if k != "title"}
    if isinstance(schema, list):
        return [_clean_schema(v) for v in schema]  # type: ignore[return-value]
    return schema


def _parameters(cls: type[BaseAction], space: CoordSpace, sent: Size) -> dict[str, Any]:
    schema = _clean_schema(cls.model_json_schema())
    props: dict[str, Any] = schema.get("properties", {})
    props.pop("action", None)
    for hidden in cls.hidden_fields:
        props.pop(hidden, None)
    coord = space.describe(sent)
    for name, prop in props.items():
        if name in {"x", "y", "x1", "y1", "x2", "y2"}:
            prop.pop("anyOf", None)
            prop.pop("default", None)
            prop["type"] = "number"
            prop["description"] = f"{name[0]} coordinate in {coord}"
    required = [
        r for r in schema.get("required", []) if r != "action" and r not in cls.hidden_fields
    ]
    out: dict[str, Any] = {"type": "object", "properties": props, "required": required}
    return out


@functools.lru_cache(maxsize=64)
def _builtin_tools_text(
    actions: tuple[type[BaseAction], ...], space: CoordSpace, sent: Size
) -> str:
    """The actions' tool JSON for one (space, image size): the same every step, so built once."""
    tools = []
    for cls in actions:
        description = cls.description
        if cls.point_fields:
            description += f" Coordinates are {space.describe(sent)}."
        name = cls.model_fields["action"].default
        tools.append(
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": description,
                    "parameters": _parameters(cls, space, sent),
                },
            }
        )
    return json.dumps(tools)


class ActionSpace:
    """The tools a model may call on one surface, and the validation of its calls."""

    def __init__(
        self,
        actions: Sequence[type[BaseAction]] = BUILTIN_ACTIONS,
        extra_tools: Sequence[ExtraTool] = (),
    ) -> None:
        self.actions = {cls.model_fields["action"].default: cls for cls in actions}
        self.extra_tools = {tool.name: tool for tool in extra_tools}

    @property
    def names(self) -> list[str]:
        return [*self.actions, *self.extra_tools]

    def tools_json(self, space: CoordSpace, sent: Size) -> list[dict[str, Any]]:
        """The OpenAI ``tools`` array; each description states the coordinate space and image size."""
        tools: list[dict[str, Any]] = json.loads(
            _builtin_tools_text(tuple(self.actions.values()), space, sent)
        )
        for tool in self.extra_tools.values():
            tools.append(
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.parameters,
                    },
                }
            )
        return tools

    def validate(self, name: str, arguments: dict[str, Any]) -> BaseAction:
        """Build the action for a tool call, or raise InvalidToolCall with a message for the model."""
        if name in self.extra_tools:
            try:
                return self.extra_tools[name].build(arguments)
            except (ValidationError, ValueError, TypeError) as exc:
                raise InvalidToolCall(
                    name, f"invalid arguments for {name}: {_short_error(exc)}"
                ) from exc
        cls = self.actions.get(name)
        if cls is None:
            raise InvalidToolCall(
                name, f"unknown tool {name!r}; available tools: {', '.join(self.names)}"
            )
        if not isinstance(arguments, dict):
            raise InvalidToolCall(
                name, f"arguments for {name} must be a JSON object, got {type(arguments).__name__}"
            )
        hidden = sorted(cls.hidden_fields & set(arguments))
        if hidden:  # a scenario's field (modifier keys): the model's tools do not have it
            raise InvalidToolCall(
                name, f"invalid arguments for {name}: {hidden[0]} is not an argument of {name}"
            )
        try:
            return cls.model_validate({k: v for k, v in arguments.items() if k != "action"})
        except (ValidationError, PointShapeError, ValueError) as exc:
            raise InvalidToolCall(
                name, f"invalid arguments for {name}: {_short_error(exc)}"
            ) from exc


def _short_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
            parts.append(f"{loc}: {err.get('msg')}")
        return "; ".join(parts)
    return str(exc)

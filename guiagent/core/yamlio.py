"""One YAML loader for every file guiagent reads: scenarios, policies, skills, profiles.

Safe by construction (PyYAML's safe constructors) and bounded, because these files come from
users and from other people's repositories:

- the file's size is capped before it is read;
- non-UTF-8 bytes are reported with the file name and offset;
- nesting is capped while the document is composed (no ``RecursionError`` from 20 000 ``[``);
- aliases are measured as expanded: a "billion laughs" file fails fast instead of growing until
  the machine runs out of memory in whichever walker first expands it;
- duplicate keys are rejected, with both lines;
- booleans follow YAML 1.2 (``true``/``false`` only: ``on``, ``yes`` and ``no`` stay strings).

Every failure is a :class:`YamlError` carrying the file and the 1-based line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlLimits:
    """Bounds on one YAML document. The defaults are far above any hand-written file."""

    max_bytes: int = 4 * 1024 * 1024
    max_depth: int = 100  # nested mappings and sequences, counted through aliases too
    max_nodes: int = 200_000  # scalars, mappings and sequences, with every alias expanded


DEFAULT_LIMITS = YamlLimits()


class YamlError(ValueError):
    """A YAML file that cannot be loaded; ``str()`` is ``source:line: message``."""

    def __init__(self, message: str, source: str = "<string>", line: int | None = None) -> None:
        self.message = message
        self.source = source
        self.line = line
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")


@dataclass
class YamlDocument:
    """The loaded data, its node tree, and the 1-based line of every data path."""

    data: Any
    node: yaml.Node | None
    source: str
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, *path: str | int) -> int | None:
        """The line of ``path`` (keys and indexes), or of its nearest recorded parent."""
        key: PathKey = tuple(path)
        while key not in self.lines and key:
            key = key[:-1]
        return self.lines.get(key)


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans and a depth cap checked while composing."""

    max_depth = DEFAULT_LIMITS.max_depth
    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                mark = self.peek_event().start_mark
                raise YamlError(
                    f"nested deeper than {self.max_depth} levels", mark.name, mark.line + 1
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_duplicate_keys(node: yaml.MappingNode, source: str) -> None:
    seen: dict[str, int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        line = key_node.start_mark.line + 1
        if key_node.value in seen:
            raise YamlError(
                f"duplicate key {key_node.value!r} (first on line {seen[key_node.value]})",
                source,
                line,
            )
        seen[key_node.value] = line


def _measure(root: yaml.Node, source: str, limits: YamlLimits) -> None:
    """Expanded size and depth of the node graph (aliases share nodes), without recursion."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()  # the ancestors of the node being visited
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        line = node.start_mark.line + 1
        if finished:
            open_nodes.discard(key)
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            if size[key] > limits.max_nodes:
                raise YamlError(
                    f"expands to more than {limits.max_nodes} values (aliases repeated too often)",
                    source,
                    line,
                )
            if depth[key] > limits.max_depth:
                raise YamlError(
                    f"nested deeper than {limits.max_depth} levels (through aliases)", source, line
                )
            continue
        if key in size:
            continue
        if key in open_nodes:
            raise YamlError("an alias refers to the collection that contains it", source, line)
        if isinstance(node, yaml.MappingNode):
            _check_duplicate_keys(node, source)
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((kid, False) for kid in _children(node) if id(kid) not in size)


def _line_map(root: yaml.Node) -> dict[PathKey, int]:
    """Data path -> 1-based line; a key's line is where the key is written."""
    out: dict[PathKey, int] = {}
    stack: list[tuple[yaml.Node, PathKey]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        out[path] = min(out.get(path, node.start_mark.line + 1), node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = (
                    key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
                )
                child = (*path, key)
                out[child] = key_node.start_mark.line + 1
                stack.append((value_node, child))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, i)) for i, item in enumerate(node.value))
    return out


def _problem(exc: yaml.YAMLError) -> tuple[str, int | None]:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    if context and getattr(exc, "problem", None):
        problem = f"{problem} ({context})"
    return f"not valid YAML: {problem}", (mark.line + 1 if mark is not None else None)


def parse_yaml(
    text: str | bytes,
    source: str = "<string>",
    limits: YamlLimits = DEFAULT_LIMITS,
    *,
    line_map: bool = True,
) -> YamlDocument:
    """Parse one YAML document within ``limits``; raises :class:`YamlError`."""
    if len(text) > limits.max_bytes:
        raise YamlError(f"larger than {limits.max_bytes} bytes: not loaded", source)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = text[: exc.start].count(b"\n") + 1
            raise YamlError(
                f"not UTF-8 text (byte 0x{text[exc.start]:02x} at offset {exc.start})", source, line
            ) from None
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # the reader rejects control characters right here
        loader.name = source
        loader.max_depth = limits.max_depth
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(None, None, source)
        _measure(node, source, limits)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        message, line = _problem(exc)
        raise YamlError(message, source, line) from None
    except RecursionError:  # a backstop: the depth cap should come first
        raise YamlError("nested too deeply", source) from None
    finally:
        if loader is not None:
            loader.dispose()
    return YamlDocument(data, node, source, _line_map(node) if line_map else {})


def load_yaml_file(
    path: str | Path, limits: YamlLimits = DEFAULT_LIMITS, *, line_map: bool = True
) -> YamlDocument:
    """Read and parse a YAML file; every failure (missing, too big, bad bytes) is a YamlError."""
    path = Path(path)
    source = str(path)
    try:
        if path.stat().st_size > limits.max_bytes:
            raise YamlError(f"larger than {limits.max_bytes} bytes: not loaded", source)
        raw = path.read_bytes()
    except OSError as exc:
        raise YamlError(f"cannot read: {exc.strerror or exc}", source) from None
    return parse_yaml(raw, source, limits, line_map=line_map)


def load_yaml(path: str | Path, limits: YamlLimits = DEFAULT_LIMITS) -> Any:
    """Just the data of a YAML file (see :func:`load_yaml_file`)."""
    return load_yaml_file(path, limits, line_map=False).data

"""Reading a page's full accessibility tree through the Chrome DevTools Protocol.

``Accessibility.getFullAXTree`` is asked once per frame (the main frame and every
same-origin iframe the page's process renders); each child frame's tree is hung under its
``<iframe>`` node. Shadow roots need nothing special: the tree is built from the
flattened DOM. ``DOMSnapshot.captureSnapshot`` adds what the tree lacks: where each node
sits on the page, the ``type`` of inputs (a password field is a plain textbox in the AX
tree) and which nodes sit inside an element marked private. A password's value is never
read: only whether it is filled.
"""

from __future__ import annotations

from typing import Any

from loguru import logger
from pydantic import BaseModel, Field

PRIVATE_ATTRIBUTES = ("data-private", "data-guiagent-private")


class AxNode(BaseModel):
    """One node of the accessibility tree (ids are made unique across frames)."""

    id: str
    role: str = ""
    name: str = ""
    value: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    children: list[str] = Field(default_factory=list)
    ignored: bool = False
    backend_id: int | None = None
    frame_id: str = ""
    box: list[float] | None = None  # CSS px of the main frame's viewport
    password: bool = False
    filled: bool = False  # password fields only
    private: bool = False


class PageTree(BaseModel):
    """A page's accessibility tree, every frame stitched in."""

    root: str
    nodes: dict[str, AxNode]
    title: str = ""
    skipped_frames: list[str] = Field(default_factory=list)  # cross-origin frames not read


def _value(field: dict[str, Any] | None) -> Any:
    return None if not field else field.get("value")


def parse_ax_nodes(raw: list[dict[str, Any]], frame_id: str, prefix: str) -> list[AxNode]:
    """CDP ``AXNode`` dicts -> :class:`AxNode` (ids prefixed so frames never collide)."""
    out: list[AxNode] = []
    for node in raw:
        props = {p["name"]: _value(p.get("value")) for p in node.get("properties", [])}
        value = _value(node.get("value"))
        out.append(
            AxNode(
                id=prefix + str(node["nodeId"]),
                role=str(_value(node.get("role")) or ""),
                name=" ".join(str(_value(node.get("name")) or "").split()),
                value=None if value is None else str(value),
                properties=props,
                children=[prefix + str(c) for c in node.get("childIds", [])],
                ignored=bool(node.get("ignored")),
                backend_id=node.get("backendDOMNodeId"),
                frame_id=frame_id,
            )
        )
    return out


class _Snapshot:
    """Boxes, attributes and private/password flags by backend node id, from one
    ``DOMSnapshot.captureSnapshot`` of the page and its same-process frames."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.strings: list[str] = data.get("strings", [])
        self.boxes: dict[int, list[float]] = {}
        self.attrs: dict[int, dict[str, str]] = {}
        self.private: set[int] = set()
        self.filled: set[int] = set()
        documents = data.get("documents", [])
        offsets: dict[int, tuple[float, float]] = {0: (0.0, 0.0)}
        for index, doc in enumerate(documents):
            self._read(doc, offsets.get(index, (0.0, 0.0)), offsets)

    def _s(self, index: int) -> str:
        return self.strings[index] if 0 <= index < len(self.strings) else ""

    def _read(
        self,
        doc: dict[str, Any],
        offset: tuple[float, float],
        offsets: dict[int, tuple[float, float]],
    ) -> None:
        nodes = doc["nodes"]
        backend = nodes.get("backendNodeId", [])
        parents = nodes.get("parentIndex", [])
        attributes = nodes.get("attributes", [])
        inputs = nodes.get("inputValue", {"index": [], "value": []})
        scroll_x, scroll_y = doc.get("scrollOffsetX", 0.0), doc.get("scrollOffsetY", 0.0)
        layout = doc.get("layout", {})
        bounds_of: dict[int, list[float]] = {}
        client_of: dict[int, list[float]] = {}
        clients = layout.get("clientRects", [])
        for k, (node_index, bounds) in enumerate(
            zip(layout.get("nodeIndex", []), layout.get("bounds", []), strict=False)
        ):
            bounds_of.setdefault(node_index, bounds)
            if k < len(clients) and clients[k]:
                client_of.setdefault(node_index, clients[k])
        private_nodes: set[int] = set()
        for i, backend_id in enumerate(backend):
            pairs = attributes[i] if i < len(attributes) else []
            attrs = {self._s(pairs[j]): self._s(pairs[j + 1]) for j in range(0, len(pairs) - 1, 2)}
            if attrs:
                self.attrs[backend_id] = attrs
            parent = parents[i] if i < len(parents) else -1
            classes = attrs.get("class", "").split()
            if (
                any(a in attrs for a in PRIVATE_ATTRIBUTES)
                or "private" in classes
                or parent in private_nodes
            ):
                private_nodes.add(i)
                self.private.add(backend_id)
            if i in bounds_of:
                x, y, w, h = bounds_of[i]
                self.boxes[backend_id] = [x - scroll_x + offset[0], y - scroll_y + offset[1], w, h]
        for node_index, value_index in zip(
            inputs.get("index", []), inputs.get("value", []), strict=False
        ):
            if self._s(value_index):
                self.filled.add(backend[node_index])
        content = nodes.get("contentDocumentIndex", {"index": [], "value": []})
        for node_index, doc_index in zip(
            content.get("index", []), content.get("value", []), strict=False
        ):
            box = self.boxes.get(backend[node_index])
            if box is None:
                continue
            client = client_of.get(node_index, [0.0, 0.0, 0.0, 0.0])
            offsets[doc_index] = (box[0] + client[0], box[1] + client[1])


def _is_password(attrs: dict[str, str]) -> bool:
    return attrs.get("type", "").lower() == "password" or "password" in attrs.get(
        "autocomplete", ""
    )


async def read_page_tree(page: Any) -> PageTree:
    """The full accessibility tree of a Playwright page, same-origin iframes included."""
    session = await page.context.new_cdp_session(page)
    try:
        await session.send("Accessibility.enable")
        await session.send("DOM.enable")
        frames = await session.send("Page.getFrameTree")
        nodes: dict[str, AxNode] = {}
        main = frames["frameTree"]["frame"]["id"]
        raw = await session.send("Accessibility.getFullAXTree")
        parsed = parse_ax_nodes(raw["nodes"], main, "")
        if not parsed:
            raise RuntimeError("the page has no accessibility tree")
        root = parsed[0].id
        nodes.update((n.id, n) for n in parsed)
        skipped: list[str] = []
        pending = list(frames["frameTree"].get("childFrames", []))
        count = 0
        while pending:
            child = pending.pop(0)
            pending.extend(child.get("childFrames", []))
            frame_id = child["frame"]["id"]
            count += 1
            try:
                sub = await session.send("Accessibility.getFullAXTree", {"frameId": frame_id})
                owner = await session.send("DOM.getFrameOwner", {"frameId": frame_id})
            except Exception as exc:  # an out-of-process (cross-origin) frame
                logger.debug("frame {} not read: {}", child["frame"].get("url"), exc)
                skipped.append(str(child["frame"].get("url", frame_id)))
                continue
            sub_nodes = parse_ax_nodes(sub["nodes"], frame_id, f"f{count}:")
            if not sub_nodes:
                continue
            nodes.update((n.id, n) for n in sub_nodes)
            host = next(
                (n for n in nodes.values() if n.backend_id == owner.get("backendNodeId")),
                None,
            )
            if host is not None and sub_nodes[0].id not in host.children:
                host.children.append(sub_nodes[0].id)
        snapshot = _Snapshot(
            await session.send(
                "DOMSnapshot.captureSnapshot",
                {"computedStyles": [], "includeDOMRects": True},
            )
        )
        title = (await page.title()) or nodes[root].name
    finally:
        await session.detach()
    for node in nodes.values():
        if node.backend_id is None:
            continue
        node.box = snapshot.boxes.get(node.backend_id)
        attrs = snapshot.attrs.get(node.backend_id, {})
        node.private = node.backend_id in snapshot.private
        if node.role in ("textbox", "searchbox") and _is_password(attrs):
            node.password = True
            node.filled = node.backend_id in snapshot.filled or bool(node.value)
            node.value = None  # Chromium reports it as bullets; never keep even those
    return PageTree(root=root, nodes=nodes, title=title, skipped_frames=skipped)

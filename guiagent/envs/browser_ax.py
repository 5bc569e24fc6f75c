"""Accessible names and roles of a page's elements from Chromium's accessibility tree, read
again only when the page changed.

Reading the tree costs two round trips after the DOM snapshot: the snapshot marks the
reported elements itself when the cached names are stale, ``DOM.getDocument`` and
``Accessibility.getFullAXTree`` are sent together, then the marks are removed (a stale
cache the snapshot could not foresee marks first: one more). The names are kept per element ref and reused
while the document is the same, its MutationObserver counted no mutation since (see
:mod:`guiagent.envs.browser_quiet`) and the element reports the same texts as when its name
was read (a change inside a shadow root or an iframe, which the observer does not see, still
shows there). Anything else reads the tree again.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from loguru import logger
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from guiagent.envs.browser_page import _refs_to_backend_ids
from guiagent.envs.page_scripts import _DOM_ELEMENTS_JS, _MARK_REFS_JS

# the element walk and the page's mutation count, in one evaluate; ``mark``: unless the
# document and mutation count are ``known`` (the cached names' ones), the reported elements
# get their ``data-guiagent-ref`` marks for the tree read that follows (``marked``)
DOM_SNAPSHOT_JS = (
    "({inViewport, mark, known}) => { const q = window.__guiagentQuiet;"
    " const out = {elements: (" + _DOM_ELEMENTS_JS + ")(inViewport),"
    " mutations: q && typeof q.mutations === 'number' ? q.mutations : null,"
    " document: performance.timeOrigin, marked: false};"
    " const fresh = known && out.mutations !== null && known[0] === out.document"
    " && known[1] === out.mutations;"
    " if (mark && out.elements.length && !fresh) { (" + _MARK_REFS_JS + ")(true);"
    " out.marked = true; }"
    " return out; }"
)

# what an element reports that its accessible name or role may depend on (not its box,
# nor a field's value: neither names it)
_NAMING_KEYS = (
    "tag",
    "type",
    "role",
    "id",
    "text",
    "more_text",
    "name",
    "label",
    "aria_label",
    "placeholder",
    "title",
    "alt",
    "pseudo",
    "owner_name",
    "disabled",
)


def _naming(element: dict[str, Any]) -> str:
    return json.dumps([element.get(k) for k in _NAMING_KEYS], default=str)


class AccessibleNames:
    """``ax_name`` / ``ax_role`` for DOM snapshot elements of one env (over CDP)."""

    def __init__(self) -> None:
        self.available = True  # False once CDP proved unusable (not Chromium)
        self._cdp: Any = None
        self._cdp_page: Page | None = None
        # (page, url, document time origin, mutation count) the cached names were read at
        self._document: tuple[Any, ...] | None = None
        self._names: dict[int, tuple[str, str | None, str | None]] = {}  # ref -> naming, role, name

    def reset(self) -> None:
        self._cdp = self._cdp_page = self._document = None
        self._names = {}

    def known(self, page: Page) -> list[Any] | None:
        """The document and mutation count the cached names hold for (None: none for
        ``page``): a DOM snapshot marks its elements for a tree read unless they match."""
        if self._document is None or self._document[0] != id(page) or self._document[1] != page.url:
            return None
        return [self._document[2], self._document[3]]

    async def add(
        self, page: Page, elements: list[dict[str, Any]], snapshot: dict[str, Any]
    ) -> None:
        """Set ``ax_name`` and ``ax_role`` on ``elements`` (from the cache when still valid);
        ``snapshot``: the mutation count and document identity :data:`DOM_SNAPSHOT_JS` read."""
        mutations = snapshot.get("mutations")
        document = (
            (id(page), page.url, snapshot.get("document"), mutations)
            if mutations is not None
            else None
        )
        namings = [_naming(e) for e in elements]
        marked = bool(snapshot.get("marked"))
        if document is not None and document == self._document and not marked:
            cached = [self._names.get(int(e.get("ref") or 0)) for e in elements]
            if all(c is not None and c[0] == n for c, n in zip(cached, namings, strict=True)):
                for element, (_n, role, name) in zip(elements, cached, strict=True):  # type: ignore[misc]
                    if role is not None or name is not None:
                        element["ax_role"], element["ax_name"] = role, name
                return
        found = await self._read(page, elements, marked)
        if found is None:
            return
        self._document, self._names = document, {}
        for element, naming in zip(elements, namings, strict=True):
            ref = int(element.get("ref") or 0)
            role, name = found.get(ref, (None, None))
            if ref in found:
                element["ax_role"], element["ax_name"] = role, name
            self._names[ref] = (naming, role, name)

    async def _read(
        self, page: Page, elements: list[dict[str, Any]], marked: bool = False
    ) -> dict[int, tuple[str | None, str | None]] | None:
        """ref -> (role, name) from the tree; None when CDP refused (not asked again).

        Elements are matched to tree nodes by their backend node ids, read from
        ``DOM.getDocument`` while each reported element carries a ``data-guiagent-ref``
        attribute (``marked``: the snapshot set them already; removed again at once)."""
        try:
            try:
                if self._cdp is None or self._cdp_page is not page:
                    self._cdp = await page.context.new_cdp_session(page)
                    self._cdp_page = page
                if not marked:
                    marked = True
                    await page.evaluate(_MARK_REFS_JS, True)
                doc, tree = await asyncio.gather(
                    self._cdp.send("DOM.getDocument", {"depth": -1, "pierce": True}),
                    self._cdp.send("Accessibility.getFullAXTree"),
                )
            finally:
                if marked:
                    await page.evaluate(_MARK_REFS_JS, False)
        except PlaywrightError as exc:
            logger.debug("no accessibility tree: {}", exc)
            self.available = False
            return None
        backend_of_ref = _refs_to_backend_ids(doc.get("root", {}))
        ax_of_backend: dict[int, tuple[str, str]] = {}
        for node in tree.get("nodes", []):
            backend = node.get("backendDOMNodeId")
            if backend is None or node.get("ignored"):
                continue
            role = str((node.get("role") or {}).get("value") or "")
            name = str((node.get("name") or {}).get("value") or "")
            ax_of_backend[int(backend)] = (role, " ".join(name.split())[:200])
        found: dict[int, tuple[str | None, str | None]] = {}
        for element in elements:
            ref = int(element.get("ref") or 0)
            ax = ax_of_backend.get(backend_of_ref.get(ref, -1))
            if ax is not None:
                found[ref] = (ax[0] or None, ax[1] or None)
        return found

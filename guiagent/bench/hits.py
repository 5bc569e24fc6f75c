"""The local grounder's hit rate on real pages, with accessible names as ground truth.

Pages (each at 1280x800 in headless Chromium, the part in the viewport): Swagger UI from
the npm package ``swagger-ui-dist`` (installed by scripts/setup.sh) with an operation
opened, the demo web app's sign-in page and its todo list, the HTML pages pydoc writes for
several standard-library modules, the directory listing Python's http.server writes, the
narration benchmark's pages (a keypad, a settings panel, a store) and Debian's HTML
documentation where the machine has it, each at up to three scroll positions. The targets
are the elements of the same DOM snapshot the scenarios use (:meth:`BrowserEnv.dom_elements`,
names from Chromium's accessibility tree), fully shown, whose accessible name is unique on
the page; at most ``TARGETS_PER_PAGE`` per page, spread evenly over its views.

Each target is grounded twice by its name: with the DOM (``dom``) and without it
(``ocr``: OCR and, for nothing but text, nothing else). A hit is a point inside the
element's box. Names only an accessibility tree knows (aria-label, title, alt of an icon)
count for OCR too: a person can only find those by looking.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import importlib
import json
import pydoc
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from loguru import logger

from guiagent.core.env import Frame
from guiagent.demo import WEBAPP_DIR
from guiagent.grounding.local import AmbiguousTarget, DomElement, LocalGrounder, Target

VIEWPORT = (1280, 800)
VIEWS_PER_PAGE = 3  # scroll positions measured per page
TARGETS_PER_PAGE = 40  # at most, spread evenly over the page's views (keeps the run short)
REPO = Path(__file__).resolve().parents[2]
SWAGGER_DIST = REPO / ".thirdparty" / "npm" / "node_modules" / "swagger-ui-dist"
NARRATE_PAGES = Path(__file__).resolve().parent / "narrate_pages"
DEBIAN_DOCS = (
    Path("/usr/share/doc/python3/python-policy.html"),
    Path("/usr/share/doc/libffi8/html/index.html"),
    Path("/usr/share/doc/libffi8/html/The-Basics.html"),
    Path("/usr/share/doc/base-passwd/users-and-groups.html"),
    Path("/usr/share/doc/libjs-underscore/index.html"),
    Path("/usr/share/doc/zlib1g-dev/examples/zlib_how.html"),
    Path("/usr/share/doc/libxslt1-dev/html/html/book1.html"),
)
PYDOC_MODULES = ("json", "shlex", "textwrap", "csv", "difflib", "fnmatch", "calendar")
SWAGGER_INDEX = """<!doctype html><html><head><meta charset="utf-8"><title>API</title>
<link rel="stylesheet" href="dist/swagger-ui.css"></head><body><div id="swagger-ui"></div>
<script src="dist/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>"""
SPEC = {
    "openapi": "3.0.0",
    "info": {"title": "Library API", "version": "2.1.0", "description": "Books and loans."},
    "paths": {
        f"/{thing}": {
            "get": {"summary": f"List {thing}", "responses": {"200": {"description": "ok"}}},
            "post": {"summary": f"Add {thing[:-1]}", "responses": {"201": {"description": "ok"}}},
        }
        for thing in ("books", "loans", "members", "authors")
    },
}


def _site(root: Path) -> None:
    """The pages served over HTTP (Swagger UI needs it for its API description)."""
    if (SWAGGER_DIST / "swagger-ui-bundle.js").is_file():
        (root / "swagger").mkdir()
        (root / "swagger" / "dist").symlink_to(SWAGGER_DIST)
        (root / "swagger" / "index.html").write_text(SWAGGER_INDEX)
        (root / "swagger" / "openapi.json").write_text(json.dumps(SPEC))
    for module in PYDOC_MODULES:
        page = pydoc.html.page(module, pydoc.html.document(importlib.import_module(module)))
        (root / f"pydoc-{module}.html").write_text(page)
    (root / "listing").mkdir()
    for name in ("report.pdf", "notes.txt", "budget.xlsx", "photos", "README.md", "setup.sh"):
        (root / "listing" / name).write_text("x")


async def _pages(base: str) -> list[tuple[str, str, Any]]:
    """(page name, URL, an async preparation given the page) of every page measured."""

    async def open_swagger(page: Any) -> None:
        await page.wait_for_selector(".opblock-summary", timeout=20_000)
        await page.locator(".opblock-summary").first.click()
        await page.wait_for_timeout(500)

    async def sign_in(page: Any) -> None:
        await page.fill("#username", "bench")
        await page.fill("#password", "secret")
        await page.click("#sign-in")
        await page.wait_for_timeout(500)

    async def nothing(page: Any) -> None:
        return None

    pages: list[tuple[str, str, Any]] = []
    if (SWAGGER_DIST / "swagger-ui-bundle.js").is_file():
        pages.append(("swagger-ui", f"{base}/swagger/index.html", open_swagger))
    webapp = (WEBAPP_DIR / "index.html").as_uri()
    pages += [
        ("demo sign-in", webapp, nothing),
        ("demo todos", webapp, sign_in),
        *[(f"pydoc {m}", f"{base}/pydoc-{m}.html", nothing) for m in PYDOC_MODULES],
        ("http.server listing", f"{base}/listing/", nothing),
        *[(f"narrate {p.stem}", p.as_uri(), nothing) for p in sorted(NARRATE_PAGES.glob("*.html"))],
    ]
    pages += [
        (f"debian {p.relative_to('/usr/share/doc')}", p.as_uri(), nothing)
        for p in DEBIAN_DOCS
        if p.is_file()
    ]
    return pages


def targets(elements: list[DomElement], frame: Frame) -> list[DomElement]:
    """Elements fully on the frame with an accessible name (from the accessibility tree)
    that no other element of the page has, 2 to 60 characters long (pure)."""
    counts: dict[str, int] = {}
    for element in elements:
        if element.ax_name:
            counts[element.ax_name.lower()] = counts.get(element.ax_name.lower(), 0) + 1
    chosen = []
    width, height = frame.size.width, frame.size.height
    for element in elements:
        name = element.ax_name
        if not name or not 2 <= len(name) <= 60 or counts[name.lower()] != 1:
            continue
        box = element.box
        if element.clipped or not element.visible or box.width < 4 or box.height < 4:
            continue
        if box.x < 0 or box.y < 0 or box.x + box.width > width or box.y + box.height > height:
            continue
        chosen.append(element)
    return chosen


def spread(items: list[Any], cap: int) -> list[Any]:
    """At most ``cap`` of ``items``, evenly spaced, in order (pure)."""
    if len(items) <= cap:
        return list(items)
    return [items[k * len(items) // cap] for k in range(cap)]


def _hit(
    grounder: LocalGrounder, frame: Frame, element: DomElement, dom: Any
) -> tuple[bool, float]:
    name = element.ax_name or ""
    box = element.frame_box(frame.transform)
    start = time.perf_counter()
    try:
        result = grounder.ground(frame, Target(text=name), dom=dom)
    except (AmbiguousTarget, LookupError):
        return False, (time.perf_counter() - start) * 1000
    ms = (time.perf_counter() - start) * 1000
    point = result.point
    inside = box.left - 2 <= point.x <= box.right + 2 and box.top - 2 <= point.y <= box.bottom + 2
    return inside, ms


async def measure(limit_pages: int | None = None) -> dict[str, Any]:
    from guiagent.envs.browser import BrowserEnv, launch_chromium

    grounder = LocalGrounder()
    per_page: list[dict[str, Any]] = []
    timings: dict[str, list[float]] = {"dom": [], "ocr": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _site(root)
        handler = functools.partial(_Quiet, directory=str(root))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        playwright, browser = await launch_chromium()
        try:
            for name, url, prepare in (await _pages(base))[:limit_pages]:
                async with BrowserEnv(start_url=url, browser=browser, viewport=VIEWPORT) as env:
                    await prepare(env.page)
                    views = await _views(env)
                row: dict[str, Any] = {"page": name, "views": len(views), "targets": 0}
                row.update(dom_hits=0, ocr_hits=0)
                candidates = [
                    (frame, elements, element)
                    for frame, elements in views
                    for element in targets(elements, frame)
                ]
                chosen = spread(candidates, TARGETS_PER_PAGE)
                row["targets"] = len(chosen)
                for source in ("dom", "ocr"):
                    for frame, elements, element in chosen:
                        dom = elements if source == "dom" else None
                        ok, ms = await asyncio.to_thread(_hit, grounder, frame, element, dom)
                        row[f"{source}_hits"] += ok
                        timings[source].append(ms)
                per_page.append(row)
                logger.info("hit rate on {}: {}", name, row)
        finally:
            await browser.close()
            await playwright.stop()
            server.shutdown()
            server.server_close()
    total = sum(r["targets"] for r in per_page)
    return {
        "pages": per_page,
        "targets": total,
        **{
            f"{source}_rate": sum(r[f"{source}_hits"] for r in per_page) / max(1, total)
            for source in ("dom", "ocr")
        },
        **{
            f"{source}_median_ms": statistics.median(v) if v else 0.0
            for source, v in timings.items()
        },
    }


async def _views(env: Any, count: int = VIEWS_PER_PAGE) -> list[tuple[Frame, list[DomElement]]]:
    """The page at up to ``count`` scroll positions, one viewport apart: frame and elements."""
    views: list[tuple[Frame, list[DomElement]]] = []
    last = -1.0
    for k in range(count):
        y = await env.page.evaluate(
            f"() => {{ window.scrollTo(0, {k * VIEWPORT[1]}); return window.scrollY; }}"
        )
        if y <= last:
            break
        last = y
        await env.page.wait_for_timeout(200)
        frame = await env.observe()
        views.append((frame, [DomElement.model_validate(e) for e in await env.dom_elements()]))
    return views


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


def run(quick: bool = False) -> list[dict[str, Any]]:
    result = asyncio.run(measure(3 if quick else None))
    rows = []
    for source in ("dom", "ocr"):
        rate = result[f"{source}_rate"]
        rows.append(
            {
                "name": f"hit rate by accessible name, {source}",
                "median_ms": result[f"{source}_median_ms"],
                "note": f"{rate:.1%} of {result['targets']} targets on {len(result['pages'])} pages",
                "hit_rate": rate,
                "pages": result["pages"],
            }
        )
    return rows


if __name__ == "__main__":
    sys.stdout.write(json.dumps(asyncio.run(measure()), indent=2) + "\n")

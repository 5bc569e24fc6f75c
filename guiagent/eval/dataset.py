"""Make a ScreenSpot-format grounding dataset from web pages rendered in headless Chromium.

Each page is screenshotted at a fixed viewport; its visible interactive elements (links,
buttons, inputs, elements with their own text) become rows with a ``[x, y, w, h]`` box in
screenshot pixels. ``data_type`` is ``text`` when the element shows text, ``icon`` when it
only has an accessible name (aria-label, title, alt). Instructions must be unambiguous,
so an instruction that two elements of a page share is dropped.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from loguru import logger
from playwright.async_api import Browser, async_playwright

from guiagent.eval.browser import launch_chromium
from guiagent.eval.screenspot import ScreenSpotRow

DATASET_FILE = "screenspot.json"

# Runs in the page: visible, unoccluded elements with their boxes in CSS pixels.
_COLLECT_JS = r"""
() => {
  const SELECTOR = 'a[href], button, input:not([type=hidden]), select, textarea, [role=button], '
    + '[role=link], [role=checkbox], [role=tab], [role=menuitem], [onclick], [tabindex], label, '
    + 'h1, h2, h3, h4, h5, h6, p, span, li, td, th, div, img[alt], svg[aria-label]';
  const vw = window.innerWidth, vh = window.innerHeight;
  const ownText = (el) => Array.from(el.childNodes)
    .filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent).join(' ')
    .replace(/\s+/g, ' ').trim();
  const interactive = (el) => el.matches('a[href], button, input, select, textarea, [role], [onclick], [tabindex]');
  const out = [];
  for (const el of document.querySelectorAll(SELECTOR)) {
    const style = getComputedStyle(el);
    if (style.visibility !== 'visible' || style.display === 'none' || parseFloat(style.opacity) === 0) continue;
    const isInteractive = interactive(el);
    // Plain text is boxed tightly around its own text nodes (a heading spans the page width).
    const texts = Array.from(el.childNodes).filter((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    let r = el.getBoundingClientRect();
    if (!isInteractive && texts.length) {
      const range = document.createRange();
      range.setStartBefore(texts[0]);
      range.setEndAfter(texts[texts.length - 1]);
      r = range.getBoundingClientRect();
    }
    const x1 = Math.max(0, r.left), y1 = Math.max(0, r.top);
    const x2 = Math.min(vw, r.right), y2 = Math.min(vh, r.bottom);
    if (x2 - x1 < 4 || y2 - y1 < 4) continue;
    const cx = (x1 + x2) / 2, cy = (y1 + y2) / 2;
    const top = document.elementFromPoint(cx, cy);
    if (!top || !(top === el || el.contains(top) || (top.contains(el) && top.tagName === 'LABEL'))) continue;
    let text = '';
    if (el.matches('input, textarea')) {
      text = (el.value || el.placeholder || '').trim();
      if (el.matches('input[type=checkbox], input[type=radio], input[type=range], input[type=color]')) text = '';
    } else if (el.matches('select')) {
      text = el.options[el.selectedIndex] ? el.options[el.selectedIndex].text.trim() : '';
    } else {
      text = isInteractive ? (el.innerText || '').replace(/\s+/g, ' ').trim() : ownText(el);
    }
    const name = (el.getAttribute('aria-label') || el.getAttribute('title') || el.getAttribute('alt') || '').trim();
    if (!text && !(name && isInteractive) && !(name && el.matches('img, svg'))) continue;
    if (!isInteractive && !text) continue;
    out.push({
      tag: el.tagName.toLowerCase(), text: text.slice(0, 80), name: name.slice(0, 80),
      x: x1, y: y1, w: x2 - x1, h: y2 - y1,
    });
  }
  return out;
}
"""


def _source_name(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(parsed.path).stem or "file"
    return parsed.netloc or parsed.path or url


def _instruction(item: dict[str, Any]) -> tuple[str, str]:
    """(instruction, data_type) for one collected element."""
    if item["text"]:
        return item["text"], "text"
    return item["name"], "icon"


def rows_from_elements(
    elements: Sequence[dict[str, Any]], image_name: str, source: str, scale: float = 1.0
) -> list[ScreenSpotRow]:
    """Rows for one page's collected elements; boxes scaled from CSS to screenshot pixels."""
    by_instruction: dict[str, list[dict[str, Any]]] = {}
    for item in elements:
        instruction, _ = _instruction(item)
        if instruction:
            by_instruction.setdefault(instruction, []).append(item)
    rows = []
    for instruction, items in by_instruction.items():
        # A text shared by nested elements (a button and its label span) is one target when
        # the boxes overlap; the outermost (first in document order) is kept.
        first = items[0]
        if any(not _inside(other, first) for other in items[1:]):
            logger.debug(
                "dropping ambiguous instruction {!r} ({} elements)", instruction, len(items)
            )
            continue
        _, data_type = _instruction(first)
        rows.append(
            ScreenSpotRow(
                img_filename=image_name,
                bbox=[
                    round(v * scale, 2) for v in (first["x"], first["y"], first["w"], first["h"])
                ],
                instruction=instruction,
                data_type=data_type,
                data_source=source,
            )
        )
    return rows


def _inside(inner: dict[str, Any], outer: dict[str, Any]) -> bool:
    return (
        inner["x"] >= outer["x"] - 0.5
        and inner["y"] >= outer["y"] - 0.5
        and inner["x"] + inner["w"] <= outer["x"] + outer["w"] + 0.5
        and inner["y"] + inner["h"] <= outer["y"] + outer["h"] + 0.5
    )


async def _render(
    browser: Browser,
    url: str,
    out_dir: Path,
    image_name: str,
    viewport: tuple[int, int],
    scale: float,
) -> list[ScreenSpotRow]:
    context = await browser.new_context(
        viewport={"width": viewport[0], "height": viewport[1]}, device_scale_factor=scale
    )
    try:
        page = await context.new_page()
        await page.goto(url, wait_until="load")
        elements = await page.evaluate(_COLLECT_JS)
        await page.screenshot(path=str(out_dir / image_name), animations="disabled", caret="hide")
    finally:
        await context.close()
    return rows_from_elements(elements, image_name, _source_name(url), scale)


async def make_dataset(
    urls: Sequence[str],
    out_dir: str | Path,
    viewport: tuple[int, int] = (1280, 800),
    device_scale_factor: float = 1.0,
    browser: Browser | None = None,
) -> list[ScreenSpotRow]:
    """Render each URL, write ``out_dir/images/page_N.png`` and ``out_dir/screenspot.json``.

    Returns the rows written. Pass ``browser`` to reuse a running Chromium.
    """
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rows: list[ScreenSpotRow] = []
    if browser is None:
        async with async_playwright() as playwright:
            own = await launch_chromium(playwright)
            try:
                return await make_dataset(urls, out_dir, viewport, device_scale_factor, own)
            finally:
                await own.close()
    for index, url in enumerate(urls):
        image_name = f"images/page_{index}.png"
        page_rows = await _render(browser, url, out_dir, image_name, viewport, device_scale_factor)
        logger.info("{}: {} targets", url, len(page_rows))
        rows.extend(page_rows)
    data = [row.model_dump(exclude_none=True) for row in rows]
    (out_dir / DATASET_FILE).write_text(
        json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8"
    )
    return rows

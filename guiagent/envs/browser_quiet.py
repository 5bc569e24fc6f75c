"""Event-driven settle for a browser page: wait for quiet from the page itself.

An init script (installed in every document of the env's context, and on demand in a
page that loaded before it) keeps count of what is still going on in the page:

- fetch and XMLHttpRequest calls not finished yet (network);
- ``setTimeout`` callbacks of up to ``TIMER_DELAY_CAP_MS`` scheduled since the last settle
  (a page that changes "300 ms after the click");
- the time of the last DOM mutation (a MutationObserver on the whole document) or input
  event, and how many animation frames the page drew since (up to ``FRAMES_KEPT``);
- a navigation under way (``beforeunload`` / ``pagehide``).

:func:`wait_quiet` then asks the page, in one ``evaluate``, to resolve once nothing is
pending and the DOM has stayed unchanged for ``frames`` animation frames, no finite CSS
animation or transition runs (``document.getAnimations()``) and fonts are loaded. When
nothing at all happened since the last settle, or the page has already drawn ``frames``
quiet frames since its last change (the usual case: the caller recorded the step in the
meantime), it resolves at once, in one round trip. Network and timers
are each waited for at most their cap; the whole wait at most the step's timeout.
A page that cannot be instrumented answers None: the caller falls back to pixels.
"""

from __future__ import annotations

import time
from typing import Any

from loguru import logger
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

TIMER_DELAY_CAP_MS = 1000  # longer setTimeout delays are not waited for (polls, idle timers)
TIMER_WAIT_CAP_MS = 1500  # pending short timers hold the settle at most this long
NETWORK_WAIT_CAP_MS = 3000  # pending requests hold the settle at most this long
FRAMES_KEPT = 4  # the page counts up to this many quiet frames after a change
SCROLL_START_MS = 100  # a wheel with no scroll event this long after it scrolled nothing
SCROLL_GAP_MS = 300  # a scroll with no 'scrollend' and no scroll event this long is over

QUIET_INSTALL_JS = """(() => {
  if (window.__guiagentQuiet) return;
  const q = {pending: 0, mutatedAt: 0, mark: -1, timers: new Map(), unloading: false,
             setTimeout: window.setTimeout.bind(window)};
  Object.defineProperty(window, '__guiagentQuiet', {value: q, enumerable: false});
  const now = () => performance.now();
  const done = () => { let over = false; return () => { if (!over) { over = true; q.pending--; q.mutatedAt = now(); } }; };
  const origFetch = window.fetch;
  if (origFetch) {
    window.fetch = function (...args) {
      q.pending++;
      const fin = done();
      try { const p = origFetch.apply(this, args); p.then(fin, fin); return p; }
      catch (e) { fin(); throw e; }
    };
  }
  if (window.XMLHttpRequest) {
    const send = XMLHttpRequest.prototype.send;
    XMLHttpRequest.prototype.send = function (...args) {
      q.pending++;
      const fin = done();
      this.addEventListener('loadend', fin);
      try { return send.apply(this, args); } catch (e) { fin(); throw e; }
    };
  }
  // shadow roots made (their style sheets are not the document's: see browser_page); their
  // mutations reach no observer of the document, so each root is observed on its own
  q.shadows = 0;
  q.watchedRoots = new WeakSet();
  const attach = Element.prototype.attachShadow;
  if (attach) Element.prototype.attachShadow = function (...args) {
    q.shadows++;
    const root = attach.apply(this, args);
    if (q.watchRoot) q.watchRoot(root);
    return root;
  };
  const setT = window.setTimeout, clearT = window.clearTimeout;
  window.setTimeout = function (fn, delay, ...rest) {
    const d = Number(delay) || 0;
    if (typeof fn !== 'function' || d > DELAY_CAP) return setT.call(window, fn, delay, ...rest);
    let id;
    const run = function (...a) { q.timers.delete(id); return fn.apply(this, a); };
    id = setT.call(window, run, delay, ...rest);
    q.timers.set(id, now());
    return id;
  };
  window.clearTimeout = function (id) { q.timers.delete(id); return clearT.call(window, id); };
  // frames drawn since the last change (a DOM mutation or an input event), counted by the
  // page itself: a settle that starts after the page went quiet needs no frame of its own
  q.quietFrames = 0; q.mutations = 0;
  let counting = false;
  const tick = () => {
    q.quietFrames++;
    if (q.quietFrames < FRAMES_KEPT) requestAnimationFrame(tick); else counting = false;
  };
  q.version = 0;  // bumped by anything that may change a pixel (see CHANGE_TOKEN_JS)
  const bump = () => { q.version++; };
  const changed = () => {
    q.version++;
    q.mutatedAt = now(); q.quietFrames = 0;
    if (!counting) { counting = true; requestAnimationFrame(tick); }
  };
  // guiagent's own marks (data-guiagent-* attributes, set while reading the page) are no change
  const ours = r => r.type === 'attributes' && (r.attributeName || '').startsWith('data-guiagent-');
  const observer = new MutationObserver((records) => { if (records.every(ours)) return; q.mutations++; changed(); });
  const watched = {subtree: true, childList: true, attributes: true, characterData: true};
  observer.observe(document, watched);
  q.watchRoot = (root) => {
    if (q.watchedRoots.has(root)) return;
    q.watchedRoots.add(root); observer.observe(root, watched);
  };
  // shadow roots the parser made (declarative shadow DOM) called no attachShadow: found
  // by a walk after each change (open ones; closed declarative roots stay unseen)
  q.scannedAt = -1;
  q.watchParsedRoots = () => {
    if (q.scannedAt === q.mutations) return;
    q.scannedAt = q.mutations;
    const walk = (node) => {
      for (const el of node.querySelectorAll('*')) {
        if (el.shadowRoot) { if (!q.watchedRoots.has(el.shadowRoot)) { q.watchRoot(el.shadowRoot); q.shadows++; } walk(el.shadowRoot); }
      }
    };
    walk(document);
  };
  // an input handler may draw on its next frame without any mutation yet
  for (const type of ['pointerdown', 'pointerup', 'click', 'keydown', 'keyup', 'input', 'wheel', 'scroll'])
    window.addEventListener(type, changed, {capture: true, passive: true});
  // a wheel scroll is drawn over several frames after its wheel event (smooth scrolling):
  // it is under way from the wheel until 'scrollend', or until no scroll followed the wheel
  q.wheelAt = -1; q.scrollAt = -1; q.scrollEndAt = -1;
  window.addEventListener('wheel', () => { q.wheelAt = now(); }, {capture: true, passive: true});
  window.addEventListener('scroll', () => { q.scrollAt = now(); }, {capture: true, passive: true});
  window.addEventListener('scrollend', () => { q.scrollEndAt = now(); }, {capture: true, passive: true});
  for (const type of ['pointermove', 'load', 'error', 'focusin', 'focusout',
                      'animationstart', 'transitionstart', 'resize', 'pageshow'])
    window.addEventListener(type, bump, {capture: true, passive: true});
  window.addEventListener('beforeunload', () => { q.unloading = true; });
  window.addEventListener('pagehide', () => { q.unloading = true; });
  window.addEventListener('pageshow', () => { q.unloading = false; });
})()""".replace("DELAY_CAP", str(TIMER_DELAY_CAP_MS)).replace("FRAMES_KEPT", str(FRAMES_KEPT))

QUIET_WAIT_JS = """async (o) => {
  const q = window.__guiagentQuiet;
  if (!q) return null;
  const t0 = performance.now();
  const mark = q.mark;
  const nextFrame = () => new Promise(r => {
    let fired = false;
    const go = () => { if (!fired) { fired = true; r(); } };
    requestAnimationFrame(go);
    q.setTimeout(go, 50);  // rAF is throttled in hidden pages (not a timer the page set)
  });
  const scrolling = (elapsed) => {
    const t = performance.now(), start = Math.max(q.wheelAt, q.scrollAt);
    if (start < 0 || q.scrollEndAt >= start || elapsed >= o.timerCap) return false;
    if (q.scrollAt < q.wheelAt) return t - q.wheelAt < SCROLL_START_MS;  // no scroll yet
    return t - q.scrollAt < SCROLL_GAP_MS;  // scrolling, no scrollend yet
  };
  const finite = a => { try { return a.effect.getComputedTiming().endTime !== Infinity; } catch (e) { return false; } };
  const busy = (elapsed) => {
    const why = [];
    if (q.unloading && elapsed < o.networkCap) why.push('navigation');
    if (q.pending > 0 && elapsed < o.networkCap) why.push('network');
    if (elapsed < o.timerCap) { for (const at of q.timers.values()) if (at >= mark) { why.push('timer'); break; } }
    if (document.getAnimations && document.getAnimations().some(a => a.playState === 'running' && finite(a))) why.push('animation');
    if (document.fonts && document.fonts.status === 'loading') why.push('fonts');
    if (scrolling(elapsed)) why.push('scroll');
    return why;
  };
  let why = busy(0);
  if (why.length === 0 && (q.mutatedAt <= mark || q.quietFrames >= o.frames)) {
    q.mark = performance.now();
    return {settled: true, ms: 0, frames: 0, why: []};
  }
  let quiet = 0, frames = 0, seen = performance.now();
  const reasons = new Set(why);
  while (true) {
    await nextFrame();
    frames++;
    const now = performance.now();
    why = busy(now - t0);
    why.forEach(w => reasons.add(w));
    const mutated = q.mutatedAt > seen;
    seen = now;
    quiet = (why.length === 0 && !mutated) ? quiet + 1 : 0;
    if (why.length === 0) quiet = Math.max(quiet, q.quietFrames);  // counted since the change
    if (quiet >= o.frames || now - t0 >= o.timeout) {
      q.mark = performance.now();
      return {settled: quiet >= o.frames, ms: now - t0, frames, why: [...reasons]};
    }
  }
}""".replace("SCROLL_START_MS", str(SCROLL_START_MS)).replace("SCROLL_GAP_MS", str(SCROLL_GAP_MS))

# the page's change token: its document and change count, or null while something may be
# drawing without telling (running animations, video, canvas, frames, loading images, fonts)
CHANGE_TOKEN_JS = """() => {
  const q = window.__guiagentQuiet;
  if (!q || typeof q.version !== 'number' || q.pending > 0) return null;
  if (q.watchParsedRoots) q.watchParsedRoots();
  if (document.getAnimations && document.getAnimations().some(a => a.playState === 'running')) return null;
  if (document.querySelector('canvas,video,audio,iframe,frame,embed,object,marquee')) return null;
  for (const img of document.images) if (!img.complete) return null;
  if (document.fonts && document.fonts.status === 'loading') return null;
  return performance.timeOrigin + ':' + q.version + ':' + window.scrollX + ',' + window.scrollY
    + ':' + window.innerWidth + 'x' + window.innerHeight + '@' + window.devicePixelRatio
    + ' ' + location.href;
}"""


async def change_token(page: Page) -> str | None:
    """A token equal to the last one as long as nothing may have changed the page's pixels
    (no DOM mutation, input, scroll, load, focus change or animation start in between);
    None when the page cannot tell."""
    try:
        token: str | None = await page.evaluate(CHANGE_TOKEN_JS)
    except PlaywrightError as exc:
        logger.debug("no change token: {}", exc)
        return None
    return token


_NAVIGATING = ("Execution context was destroyed", "navigation", "Cannot find context")


async def install_quiet(page: Page) -> bool:
    """Instrument the page's current document (new documents get the init script)."""
    try:
        await page.evaluate(QUIET_INSTALL_JS)
        return True
    except PlaywrightError as exc:
        logger.debug("cannot instrument the page for settling: {}", exc)
        return False


async def wait_quiet(page: Page, timeout_s: float, frames: int = 2) -> dict[str, Any] | None:
    """Wait until the page is quiet (see the module doc); None when it cannot be instrumented.

    The result: ``settled`` (False at the timeout), ``ms`` waited, ``frames`` seen and
    ``why`` (what was still going on while waiting: network, timer, animation, ...).
    """
    start = time.monotonic()
    installed = False
    while True:
        remaining_ms = (timeout_s - (time.monotonic() - start)) * 1000
        options = {
            "frames": frames,
            "timeout": max(remaining_ms, 0.0),
            "networkCap": NETWORK_WAIT_CAP_MS,
            "timerCap": TIMER_WAIT_CAP_MS,
        }
        try:
            result: dict[str, Any] | None = await page.evaluate(QUIET_WAIT_JS, options)
        except PlaywrightError as exc:
            if not any(text in str(exc) for text in _NAVIGATING) or remaining_ms <= 0:
                logger.debug("page not instrumentable for settling: {}", exc)
                return None
            try:  # the document went away under the wait: wait for the next one
                await page.wait_for_load_state("domcontentloaded", timeout=remaining_ms)
            except PlaywrightError:
                return None
            continue
        if result is not None:
            result["ms"] = (time.monotonic() - start) * 1000
            return result
        if installed or not await install_quiet(page):
            return None
        installed = True

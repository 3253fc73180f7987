"""axe-core (vendored under tests/browser/vendor/, no download at test time) on every page the
browser tests show, at 1280 px and at 375 px: no serious or critical violation of WCAG 2.0/2.1 A/AA.

Every browser context made by the suite's fixtures is watched (conftest.py): the page as the user
sees it — loaded, or settled after the last htmx swap — goes through axe at both widths

* just before each action of the test on it (goto, click, fill, check, a key…: ACTIONS),
* before each htmx request it sends (polling: the waiting room), the request held meanwhile,
* and once more when the test ends.

Navigations are never held (Chromium runs no script in a page whose navigation is held): the page
they leave was checked before the action that left it.  A markup already checked (same address,
same HTML) is not checked again.  Findings carry the rule, the target selector, the page and the
width; a test that passed fails at its end with the list (A11Y=0 turns the watch off,
A11Y_REPORT=file.jsonl writes one line per test).  New browser tests get all this for free.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

VENDOR = Path(__file__).resolve().parent / "vendor"
AXE_FILE = sorted(VENDOR.glob("axe-*.min.js"))[-1]
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
IMPACTS = {"serious", "critical"}
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}
WIDTHS = (DESKTOP, PHONE)

# A cheap fingerprint of what the user sees: the address and the markup (FNV-1a over outerHTML).
_SIGNATURE_JS = """() => {
  const s = location.href + "\\n" + document.documentElement.outerHTML;
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193); }
  return location.href + "#" + (h >>> 0).toString(16) + ":" + s.length;
}"""

_RUN_JS = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.map(n => ({target: n.target.join(" "), impact: n.impact,
                                summary: (n.failureSummary || "").split("\\n").slice(0, 3).join(" ")}))}));
}"""


@dataclass(frozen=True)
class Violation:
    rule: str
    impact: str
    target: str
    url: str
    width: int
    help: str
    summary: str

    def __str__(self) -> str:
        return f"[{self.rule}] ({self.impact}) {self.target} — {self.url} à {self.width} px : {self.help}. {self.summary}"


# markup already checked in this run: a page is the same at each visit of the same test data
_CHECKED: dict[str, tuple[Violation, ...]] = {}
_CHECKED_LOCK = threading.Lock()


def axe_source() -> str:
    return AXE_FILE.read_text(encoding="utf-8")


def run_axe(page) -> list[Violation]:
    """axe on the page as it is, at its current width; serious and critical violations only."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(content=axe_source())
        # axe stays in window; its <script> leaves the markup as the user's (the signature below)
        page.evaluate("() => { for (const s of [...document.scripts]) if (s.text.startsWith('/*! axe')) s.remove(); }")
    width = page.viewport_size["width"] if page.viewport_size else 0
    out = []
    for v in page.evaluate(_RUN_JS, AXE_TAGS):
        for node in v["nodes"]:
            impact = node["impact"] or v["impact"]
            if impact in IMPACTS:
                out.append(Violation(v["id"], impact, node["target"], page.url, width, v["help"], node["summary"]))
    return out


def check_page(page, *, wait: bool = True) -> list[Violation]:
    """The page at 1280 px and at 375 px (the width it had is restored); memoised on its markup.

    One check at a time per page (axe refuses two runs, and the widths must not cross): a caller
    that meets a check under way waits for its end (wait=True: the test's own greenlet) or lets it
    be (wait=False: an htmx request's check, the running one sees the same page)."""
    if page.is_closed() or not page.url.startswith("http"):
        return []
    while getattr(page, "_a11y_busy", False):
        if not wait:
            return []
        page.evaluate("() => new Promise(requestAnimationFrame)")  # lets the other check run to its end
    page._a11y_busy = True
    try:
        return _check_page(page)
    finally:
        page._a11y_busy = False


def _check_page(page) -> list[Violation]:
    signature = page.evaluate(_SIGNATURE_JS)
    with _CHECKED_LOCK:
        if signature in _CHECKED:
            return list(_CHECKED[signature])
    before = page.viewport_size
    found: list[Violation] = []
    try:
        for size in WIDTHS:
            if page.viewport_size != size:
                page.set_viewport_size(size)
            found.extend(run_axe(page))
    finally:
        if before and page.viewport_size != before:
            page.set_viewport_size(before)
    with _CHECKED_LOCK:
        _CHECKED[signature] = tuple(found)
    return found


def format_violations(violations) -> str:
    """Grouped by rule, then page: the rule, why, the page and width, the target selectors."""
    by_rule: dict[str, dict[tuple[str, str], dict[str, None]]] = {}
    helps: dict[str, str] = {}
    for v in violations:
        helps.setdefault(v.rule, f"{v.impact} — {v.help}")
        where = by_rule.setdefault(v.rule, {}).setdefault((urlsplit(v.url).path, v.summary), {})
        where[f"{v.target} @{v.width}px"] = None
    lines = [f"{len(set(violations))} violation(s) axe sérieuse(s) ou critique(s) (WCAG 2.0/2.1 A et AA) :"]
    for rule, places in by_rule.items():
        lines.append(f"[{rule}] {helps[rule]}")
        for (path, summary), targets in places.items():
            lines.append(f"    page {path} : {', '.join(targets)}")
            lines.append(f"        {summary}")
    return "\n".join(lines)


def report(recorder: Recorder, test_id: str) -> None:
    """A11Y_REPORT=file.jsonl: one line per test with what axe found and the pages it checked."""
    path = os.environ.get("A11Y_REPORT")
    if not path or not test_id:
        return
    row = {"test": test_id, "pages": sorted(recorder.pages_checked), "errors": recorder.errors,
           "violations": [{"rule": v.rule, "impact": v.impact, "target": v.target, "path": urlsplit(v.url).path,
                           "width": v.width} for v in dict.fromkeys(recorder.violations)]}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def assert_accessible(page) -> None:
    """Explicit check of the page as it is now (both widths)."""
    found = check_page(page)
    assert not found, format_violations(found)


# The actions through which a test makes a page change: the page is checked just before each.
ACTIONS = {
    "Locator": ("check", "uncheck", "set_checked", "click", "dblclick", "fill", "clear", "press",
                "press_sequentially", "type", "select_option", "tap", "set_input_files", "dispatch_event"),
    "Page": ("goto", "reload", "go_back", "go_forward", "click", "dblclick", "fill", "check", "uncheck", "press",
             "type", "select_option", "tap", "set_input_files", "dispatch_event"),
    "Keyboard": ("press", "type", "insert_text", "down"),
}


@dataclass
class Recorder:
    """Watches the browser contexts of one test and collects what axe finds on their pages.

    A page is checked (1) just before each action of the test on it (the state the user acted
    on: a page just loaded, or settled after the last htmx swap), (2) when it sends an htmx
    request by itself (polling: the waiting room), and (3) when the test ends.  Chromium cannot
    run a script in a page whose navigation is held, so navigations are never held: the page
    they leave was checked before the action that left it."""

    enabled: bool = True
    violations: list[Violation] = field(default_factory=list)
    pages_checked: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    contexts: list = field(default_factory=list)
    test_id: str = ""

    def check(self, page, *, wait: bool = True) -> None:
        if not self.enabled or page.is_closed() or not page.url.startswith("http"):
            return
        try:
            found = check_page(page, wait=wait)
        except Exception as exc:  # noqa: BLE001 — a page navigating or closing under us is not a finding
            if not page.is_closed() and "context was destroyed" not in str(exc):
                self.errors.append(f"{page.url}: {exc}")
            return
        self.pages_checked.add(page.url.split("?")[0])
        self.violations.extend(found)

    def before_action(self, page) -> None:
        if not self.enabled or page.is_closed() or not page.url.startswith("http"):
            return
        page.wait_for_load_state("load")
        self.check(page)

    def _on_request(self, route) -> None:
        request = route.request
        try:
            if (not request.is_navigation_request() and request.headers.get("hx-request") == "true"
                    and request.frame.parent_frame is None):
                self.check(request.frame.page, wait=False)
        finally:
            route.continue_()

    def watch(self, context) -> None:
        """Check each page of this context before the test acts on it and before its htmx requests."""
        self.contexts.append(context)
        if not self.enabled:
            return
        context.route("**/*", self._on_request)
        context.on("page", self._adopt)

    def _adopt(self, page) -> None:
        page._a11y_recorder = self
        page.keyboard._a11y_page = page

    def finish(self) -> None:
        """The last state of every page still open, then fail with everything found."""
        for context in self.contexts:
            try:
                pages = list(context.pages)
            except Exception:  # noqa: BLE001 — context already closed by the test
                continue
            for page in pages:
                self.check(page)
        report(self, self.test_id)
        if self.violations:
            raise AssertionError(format_violations(self.violations))


def _page_of(obj):
    from playwright.sync_api import Locator, Page

    if isinstance(obj, Page):
        return obj
    if isinstance(obj, Locator):
        return obj.page
    return getattr(obj, "_a11y_page", None)


def _hooked(original):
    @functools.wraps(original)
    def action(self, *args, **kwargs):
        page = _page_of(self)
        recorder = getattr(page, "_a11y_recorder", None) if page is not None else None
        if recorder is not None:
            recorder.before_action(page)
        return original(self, *args, **kwargs)

    action._a11y_original = original
    return action


def install_action_hooks(monkeypatch) -> None:
    """Run the recorder of a watched page before each action of the test (see ACTIONS)."""
    import playwright.sync_api as api

    for cls_name, names in ACTIONS.items():
        cls = getattr(api, cls_name)
        for name in names:
            original = getattr(cls, name)
            monkeypatch.setattr(cls, name, _hooked(getattr(original, "_a11y_original", original)))


def enabled() -> bool:
    """A11Y=0 turns the automatic check off (e.g. to time the journeys alone)."""
    return os.environ.get("A11Y", "1") not in {"0", "false", "no"}

"""Real Chromium (Debian's /usr/bin/chromium) driven by Playwright against a live server; every context
watched by axe (a11y.py), every wait Playwright's own (30 s at most), the server drained after each test."""

from __future__ import annotations

import os
import shutil
import threading

import pytest
from werkzeug.serving import make_server

from tests.browser import a11y
from tests.conftest import require

TIMEOUT_MS = int(os.environ.get("BROWSER_TIMEOUT_MS", "30000"))
RECORDER = pytest.StashKey[a11y.Recorder]()
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if candidate and shutil.which(candidate):
            return candidate
    return None


class InFlight:
    """WSGI wrapper counting the requests the live server is still answering: a test's last htmx
    request may outlive its browser page; the tables are emptied once it is done, not after a sleep."""

    def __init__(self, app):
        self.app, self.count, self.idle = app, 0, threading.Condition()

    def __call__(self, environ, start_response):
        with self.idle:
            self.count += 1
        body = None
        try:
            body = self.app(environ, start_response)
            return list(body)
        finally:
            if hasattr(body, "close"):
                body.close()  # the request's teardown (database session) is part of the answer
            with self.idle:
                self.count -= 1
                self.idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self.idle:
            return self.idle.wait_for(lambda: self.count == 0, timeout)


@pytest.fixture(scope="session")
def live_server_wsgi(app):
    return InFlight(app)


@pytest.fixture(scope="session")
def live_server(live_server_wsgi):
    server = make_server("127.0.0.1", 0, live_server_wsgi, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="session")
def chromium():
    path = _chromium_path()
    if path is None:
        require("Chromium", "installez le paquet Debian 'chromium' (make test le fait en CI)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:  # pragma: no cover
        require("Playwright", "pip install playwright")
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


class WatchedBrowser:
    """The session's Chromium, whose new contexts are watched by axe (see a11y.py) and wait
    as long as a loaded machine needs (actions and expect() return as soon as the page is ready)."""

    def __init__(self, real, recorder: a11y.Recorder):
        self._real, self._recorder, self._contexts = real, recorder, []

    def new_context(self, **kw):
        kw.setdefault("viewport", a11y.DESKTOP)
        kw.setdefault("locale", "fr-FR")
        context = self._real.new_context(**kw)
        context.set_default_timeout(TIMEOUT_MS)
        self._recorder.watch(context)
        self._contexts.append(context)
        return context

    def close_contexts(self):
        for context in self._contexts:
            try:
                context.close()
            except Exception:  # noqa: BLE001 — closed by the test already
                pass

    def __getattr__(self, name):
        return getattr(self._real, name)


@pytest.fixture(autouse=True)
def a11y_recorder(request, monkeypatch):
    """Every browser test records what axe finds on the pages it shows (A11Y=0 turns it off)."""
    recorder = a11y.Recorder(enabled=a11y.enabled(), test_id=request.node.nodeid)
    if recorder.enabled:
        a11y.install_action_hooks(monkeypatch)
    request.node.stash[RECORDER] = recorder
    return recorder


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A test that passed fails when a page it showed has a serious or critical axe violation."""
    result = yield
    recorder = item.stash.get(RECORDER, None)
    if recorder is not None:
        recorder.finish()
    return result


@pytest.fixture
def browser(chromium, live_server, live_server_wsgi, a11y_recorder):
    watched = WatchedBrowser(chromium, a11y_recorder)
    yield watched
    watched.close_contexts()
    assert live_server_wsgi.wait_idle(TIMEOUT_MS / 1000), "le serveur de test répond encore après le test"


@pytest.fixture
def page(browser, live_server):
    return browser.new_context(base_url=live_server).new_page()


@pytest.fixture
def phone(browser, live_server):
    context = browser.new_context(base_url=live_server, viewport=a11y.PHONE, is_mobile=True, has_touch=True)
    return context.new_page()

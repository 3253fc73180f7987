"""RQ jobs.  Each job takes ids, re-enters the commune's scope, commits or rolls back.

Jobs never build an app at import time: ``app_context()`` reuses the current app
(inline mode, ``flask worker``) or builds one lazily for a plain ``rq worker``.
"""

from __future__ import annotations

from contextlib import contextmanager

from flask import current_app, has_app_context

_lazy_app = None


@contextmanager
def app_context():
    global _lazy_app
    if has_app_context():
        yield current_app._get_current_object()
        return
    if _lazy_app is None:
        from app import create_app

        _lazy_app = create_app()
    with _lazy_app.app_context():
        yield _lazy_app

"""Real Redis: mails through RQ, the throttle's storage.  Skipped without TEST_REDIS_URL, failed in CI."""

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from core.models import MAIL_PENDING, MAIL_QUEUED, MAIL_SENT, OutboxMail
from tenants.rls import maintenance_session
from tests.conftest import travelling

pytestmark = pytest.mark.redis
ROOT = Path(__file__).resolve().parent.parent




@pytest.fixture
def rq_app(app, redis_url):
    queue_name = f"test-{uuid.uuid4().hex[:8]}"
    old = (app.config["REDIS_URL"], app.config["RQ_QUEUE"])
    app.config.update(REDIS_URL=redis_url, RQ_QUEUE=queue_name)
    yield app
    from redis import Redis
    from rq import Queue

    Queue(queue_name, connection=Redis.from_url(redis_url)).empty()
    app.config.update(REDIS_URL=old[0], RQ_QUEUE=old[1])


def _mails(app):
    with app.app_context(), maintenance_session("tests: les mails de toutes les communes") as session:
        return [(m.status, m.attempts, m.to_address) for m in session.scalars(select(OutboxMail))]


def _register(web, email="rq@exemple.test"):
    return web.post("/auray/creer-mon-espace", {
        "first_name": "Yann", "last_name": "Kerouac", "email": email, "password": "Bonjour-2026",
        "confirm": "Bonjour-2026", "accept_cgu": "y"})


def test_a_mail_is_queued_after_commit_and_sent_by_a_worker(rq_app, web, outbox):
    from rq import SimpleWorker

    from jobs.dispatch import get_queue

    assert "Félicitations" in _register(web).get_data(as_text=True)
    assert _mails(rq_app) == [(MAIL_QUEUED, 0, "rq@exemple.test")]
    assert outbox.messages == []  # nothing sent before the worker runs
    with rq_app.app_context():
        queue = get_queue()
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
    assert _mails(rq_app) == [(MAIL_SENT, 1, "rq@exemple.test")]
    (mail,) = outbox.to("rq@exemple.test")
    assert "La Ville d'Auray" in outbox.text(mail)


def test_redis_down_at_submit_keeps_the_mail_pending_until_the_sweep(app, web, outbox):
    old = app.config["REDIS_URL"]
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    try:
        res = _register(web, "panne@exemple.test")
        assert "Félicitations, vous venez de créer votre espace." in res.get_data(as_text=True)
        assert _mails(app) == [(MAIL_PENDING, 0, "panne@exemple.test")]
    finally:
        app.config["REDIS_URL"] = old
    result = app.test_cli_runner().invoke(args=["mail", "flush"])  # inline now: no Redis configured
    assert "1 mail(s)" in result.output
    assert _mails(app) == [(MAIL_SENT, 1, "panne@exemple.test")]
    app.test_cli_runner().invoke(args=["mail", "flush"])
    assert len(outbox.to("panne@exemple.test")) == 1  # exactly once


def test_the_same_job_run_twice_sends_once(app, web, outbox):
    from jobs.mail import send_mail

    _register(web, "deux@exemple.test")
    with app.app_context(), maintenance_session("tests: le mail") as session:
        mail = session.scalars(select(OutboxMail)).one()
        ids = (mail.id, mail.tenant_id)
    with app.app_context():
        assert send_mail(*ids) == MAIL_SENT
    assert len(outbox.to("deux@exemple.test")) == 1


def test_login_throttle_works_with_redis_storage(redis_url, tmp_path):
    """In production the throttle counts in Redis (shared by every worker)."""
    script = textwrap.dedent(f"""
        import re, uuid
        from app import create_app
        from extensions import db
        prefix = "t" + uuid.uuid4().hex[:6]
        app = create_app("testing", SQLALCHEMY_DATABASE_URI="sqlite:///{tmp_path}/t.sqlite3",
                         RATELIMIT_STORAGE_URI="{redis_url}", RATELIMIT_KEY_PREFIX=prefix)
        with app.app_context():
            from flask_migrate import upgrade
            from cli import sync_tenants
            upgrade(directory="migrations"); sync_tenants()
        c = app.test_client()
        html = c.get("/auray/connexion").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
        codes = [c.post("/auray/connexion", data={{"email": "x@y.test", "password": "nope", "csrf_token": token}},
                        environ_base={{"REMOTE_ADDR": "10.9.9.%d" % i}}).status_code for i in range(11)]
        from extensions import limiter
        assert "Redis" in type(limiter.storage).__name__, type(limiter.storage)
        print(codes)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=travelling(dict(os.environ)))
    assert out.returncode == 0, out.stderr[-2000:]
    codes = eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 - our own output
    assert codes[:10] == [200] * 10 and codes[10] == 429

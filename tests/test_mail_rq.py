"""End to end on real services: Redis, a real `rq worker --burst` process, a real SMTP server (aiosmtpd).

The worker is started the way production starts it: a plain `rq worker` whose jobs build the
app from the environment (PORTAIL_CONFIG=production, DATABASE_URL, REDIS_URL, MAIL_*).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

import pytest
from sqlalchemy import select, update

from core.models import MAIL_FAILED, MAIL_PENDING, MAIL_QUEUED, MAIL_SENT, OutboxMail
from extensions import db
from tenants.rls import maintenance_engine, maintenance_session
from tests.conftest import travelling
from tests.mail_support import start_smtp

pytestmark = pytest.mark.redis
ROOT = Path(__file__).resolve().parent.parent




def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Services:
    """The test's own queue on the real Redis, the SMTP server, and worker processes on both."""

    def __init__(self, app, redis_url, database_url, sink, smtp_port):
        self.app, self.redis_url, self.sink = app, redis_url, sink
        self.queue_name = f"test-mail-{uuid.uuid4().hex[:10]}"
        self.env = dict(
            os.environ, PYTHONPATH=str(ROOT), PORTAIL_CONFIG="production", SECRET_KEY="worker-test-only",
            DATABASE_URL=database_url, REDIS_URL=redis_url, RQ_QUEUE=self.queue_name, MAIL_BACKEND="smtp",
            MAIL_SERVER="127.0.0.1", MAIL_PORT=str(smtp_port), MAIL_MAX_ATTEMPTS="3", MAIL_RETRY_DELAYS="0",
            PUBLIC_URL="http://portail.test")

    def rq_worker(self, **env) -> subprocess.CompletedProcess:
        """A plain `rq worker --burst` on our queue: runs what is queued, then exits."""
        return self._run([str(Path(sys.executable).parent / "rq"), "worker", "--burst", "--url", self.redis_url,
                          self.queue_name], env)

    def flask_worker(self, **env) -> subprocess.CompletedProcess:
        """`flask worker --burst`: the sweep first, then the queued jobs."""
        return self._run([sys.executable, "-m", "flask", "--app", "app", "worker", "--burst"], env)

    def start(self, kind: str) -> subprocess.Popen:
        """A worker started in the background: "rq" (plain `rq worker`) or "flask" (`flask worker`)."""
        args = ([str(Path(sys.executable).parent / "rq"), "worker", "--burst", "--url", self.redis_url,
                 self.queue_name] if kind == "rq" else [sys.executable, "-m", "flask", "--app", "app", "worker",
                                                        "--burst"])
        return subprocess.Popen(args, cwd=ROOT, env=travelling(self.env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)

    def _run(self, args, env):
        out = subprocess.run(args, cwd=ROOT, env=travelling(dict(self.env, **env)), capture_output=True, text=True,
                             timeout=180)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        return out

    def queue(self):
        from redis import Redis
        from rq import Queue

        return Queue(self.queue_name, connection=Redis.from_url(self.redis_url))

    def clean(self):
        from rq.registry import (
            DeferredJobRegistry,
            FailedJobRegistry,
            FinishedJobRegistry,
            ScheduledJobRegistry,
            StartedJobRegistry,
        )

        queue = self.queue()
        conn = queue.connection
        ids = set(queue.job_ids)
        for registry in (FinishedJobRegistry, FailedJobRegistry, StartedJobRegistry, ScheduledJobRegistry,
                         DeferredJobRegistry):
            ids.update(registry(queue=queue).get_job_ids())
        for job_id in ids:
            conn.delete(f"rq:job:{job_id}", f"rq:results:{job_id}")
        queue.delete(delete_jobs=True)
        for key in conn.scan_iter(match=f"*{self.queue_name}*"):
            conn.delete(key)


@pytest.fixture
def services(app, redis_url, app_database_url, monkeypatch):
    sink, controller = start_smtp()
    svc = Services(app, redis_url, app_database_url, sink, controller.port)
    monkeypatch.setitem(app.config, "REDIS_URL", redis_url)
    monkeypatch.setitem(app.config, "RQ_QUEUE", svc.queue_name)
    yield svc
    controller.stop()
    svc.clean()


def rows(app):
    with app.app_context(), maintenance_session("tests: les mails de toutes les communes") as session:
        return [{"id": m.id, "tenant_id": m.tenant_id, "to": m.to_address, "status": m.status,
                 "attempts": m.attempts, "last_error": m.last_error}
                for m in session.scalars(select(OutboxMail).order_by(OutboxMail.id))]


def register(web, email, slug="auray"):
    return web.post(f"/{slug}/creer-mon-espace", {
        "first_name": "Yann", "last_name": "Kerouac", "email": email, "password": "Bonjour-2026",
        "confirm": "Bonjour-2026", "accept_cgu": "y"})


def flush(app) -> int:
    result = app.test_cli_runner().invoke(args=["mail", "flush"])
    assert result.exit_code == 0, result.output
    return int(re.search(r"(\d+) mail", result.output).group(1))


def test_account_creation_mail_goes_through_rq_and_smtp(web, services, app):
    assert "Félicitations" in register(web, "e2e@exemple.test").get_data(as_text=True)
    assert [(r["status"], r["attempts"]) for r in rows(app)] == [(MAIL_QUEUED, 0)]
    assert services.sink.messages == []  # nothing is sent inside the request

    services.rq_worker()
    (mail,) = services.sink.to("e2e@exemple.test")
    assert mail["Subject"] == "Activez votre espace citoyens — Ville d'Auray"
    assert mail["From"].addresses[0].addr_spec == "ne-pas-repondre@auray.test"
    assert mail["Reply-To"] == "enfance@auray.test"
    assert services.sink.text(mail).rstrip().endswith("Cordialement,\n\nLa Ville d'Auray")
    link = services.sink.link(mail, "/auray/activation/")
    assert "Votre espace a bien été activé" in web.get(urlparse(link).path).get_data(as_text=True)
    assert [(r["status"], r["attempts"]) for r in rows(app)] == [(MAIL_SENT, 1)]


class Links:
    def demande(self, number):
        return f"http://portail.test/auray/demandes/{number}"


def _submit_inscription(app, tenants, fam, code):
    """A demande as core.demandes records it (its web pages are built elsewhere)."""
    from core.demandes import create_inscription_demande
    from core.models import Activity, Child, Family, User
    from tenants.context import tenant_scope

    with app.app_context(), tenant_scope(tenants["auray"]):
        activity = Activity(code=code, name="Klub 8/12 ans", kind="units", season="2026-2027",
                            starts_on=date(2026, 9, 2), ends_on=date(2027, 7, 6), inscription_validation="commune")
        db.session.add(activity)
        db.session.flush()
        user = db.session.get(User, fam["user_id"])
        children = list(db.session.scalars(select(Child).where(Child.id.in_(fam["child_ids"]))))
        demande = create_inscription_demande(user=user, family=db.session.get(Family, fam["family_id"]),
                                             activity=activity, children=children, links=Links())
        db.session.commit()
        number = demande.number
        db.session.remove()
    return number


def test_demande_mails_go_through_rq_and_smtp_in_each_familys_language(services, app, tenants, make_family):
    from core.models import User
    from tenants.context import tenant_scope

    expected = {
        "fr": ("Nous avons bien reçu votre demande — Ville d'Auray",
               "Nous avons bien reçu votre demande (Inscription).", "Cordialement,"),
        "en": ("We have received your request — Ville d'Auray",
               "We have received your request (Registration).", "Kind regards,"),
    }
    families = {}
    for locale in expected:
        fam = make_family("auray", children=[("Anouk", "2016-04-02"), ("Maël", "2021-01-15")])
        with app.app_context(), tenant_scope(tenants["auray"]):
            db.session.get(User, fam["user_id"]).locale = locale
            db.session.commit()
            db.session.remove()
        families[locale] = fam
    numbers = {locale: _submit_inscription(app, tenants, fam, code=f"klub-{locale}")
               for locale, fam in families.items()}
    assert [r["status"] for r in rows(app)] == [MAIL_QUEUED, MAIL_QUEUED]

    services.rq_worker()
    for locale, (subject, received, regards) in expected.items():
        (mail,) = services.sink.to(families[locale]["email"])
        assert mail["Subject"] == subject
        text = services.sink.text(mail)
        assert received in text
        assert services.sink.link(mail, "/auray/demandes/") == f"http://portail.test/auray/demandes/{numbers[locale]}"
        assert "Klub 8/12 ans 2026-2027 — Anouk" in text and "Klub 8/12 ans 2026-2027 — Maël" in text
        assert text.rstrip().endswith(f"{regards}\n\nLa Ville d'Auray")


def test_redis_down_at_submit_then_the_sweep_sends_the_mail_exactly_once(web, services, app, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    res = register(web, "panne@exemple.test")
    assert res.status_code == 200
    assert "Félicitations, vous venez de créer votre espace." in res.get_data(as_text=True)
    assert [r["status"] for r in rows(app)] == [MAIL_PENDING]
    assert services.queue().count == 0

    monkeypatch.setitem(app.config, "REDIS_URL", services.redis_url)  # Redis is back
    assert flush(app) == 1
    assert [r["status"] for r in rows(app)] == [MAIL_QUEUED]
    services.rq_worker()
    assert len(services.sink.to("panne@exemple.test")) == 1
    assert flush(app) == 0  # sent: nothing left for the sweep
    services.rq_worker()
    assert len(services.sink.to("panne@exemple.test")) == 1
    assert [(r["status"], r["attempts"]) for r in rows(app)] == [(MAIL_SENT, 1)]


def test_flask_worker_runs_the_sweep_itself(web, services, app, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")
    register(web, "balai@exemple.test")
    assert [r["status"] for r in rows(app)] == [MAIL_PENDING]
    services.flask_worker()  # Redis is back: the worker's sweep queues the mail, then sends it
    assert len(services.sink.to("balai@exemple.test")) == 1
    assert [(r["status"], r["attempts"]) for r in rows(app)] == [(MAIL_SENT, 1)]


def test_smtp_refusing_is_retried_then_failed_then_sent_after_renvoyer(web, make_web, make_agent, services, app):
    services.sink.refuse = True
    register(web, "refus@exemple.test")
    services.flask_worker()  # three attempts (MAIL_MAX_ATTEMPTS=3, no delay in this test), then "failed"
    (row,) = rows(app)
    assert (row["status"], row["attempts"]) == (MAIL_FAILED, 3)
    assert "550" in row["last_error"]
    assert services.sink.attempts == 3 and services.sink.messages == []

    agent = make_web()
    make_agent("auray")
    agent.login("auray", "agent@auray.test")
    page = agent.get("/auray/admin/mails").get_data(as_text=True)
    assert "refus@exemple.test" in page and "Échec" in page and "550" in page

    services.sink.refuse = False
    res = agent.post(f"/auray/admin/mails/{row['id']}/renvoyer", page="/auray/admin/mails")
    assert res.status_code == 302
    assert [r["status"] for r in rows(app)] == [MAIL_QUEUED]
    services.flask_worker()
    assert len(services.sink.to("refus@exemple.test")) == 1
    assert [(r["status"], r["attempts"], r["last_error"]) for r in rows(app)] == [(MAIL_SENT, 1, None)]
    assert "Envoyé" in agent.get("/auray/admin/mails").get_data(as_text=True)


def test_a_closed_smtp_port_is_an_error_recorded_like_any_other(web, services, app):
    register(web, "ferme@exemple.test")
    services.flask_worker(MAIL_PORT=str(_closed_port()))
    (row,) = rows(app)
    assert (row["status"], row["attempts"]) == (MAIL_FAILED, 3)
    assert "Connection refused" in row["last_error"] or "ConnectionRefused" in row["last_error"]


def test_the_same_mail_queued_several_times_and_two_workers_send_one_mail(web, services, app):
    from jobs.mail import send_mail

    register(web, "double@exemple.test")
    (row,) = rows(app)
    queue = services.queue()
    for _ in range(5):
        queue.enqueue(send_mail, row["id"], row["tenant_id"])
    assert queue.count == 6
    workers = [services.start("rq"), services.start("flask")]  # two workers, both kinds, at once
    for worker in workers:
        output, _ = worker.communicate(timeout=180)
        assert worker.returncode == 0, output[-3000:]
    assert len(services.sink.to("double@exemple.test")) == 1
    assert [(r["status"], r["attempts"]) for r in rows(app)] == [(MAIL_SENT, 1)]


def test_a_retry_waits_in_rqs_scheduler_and_the_sweep_takes_it_if_the_scheduler_lost_it(
        web, services, app, monkeypatch):
    from datetime import UTC

    from rq.registry import ScheduledJobRegistry
    from sqlalchemy import update

    services.sink.refuse = True
    register(web, "plus-tard@exemple.test")
    services.flask_worker(MAIL_RETRY_DELAYS="300,900")
    with app.app_context(), maintenance_session("tests: le mail") as session:
        mail = session.scalars(select(OutboxMail)).one()
        state = (mail.status, mail.attempts, mail.next_attempt_at, mail.created_at)
    status, attempts, next_attempt_at, created_at = state
    assert (status, attempts) == (MAIL_QUEUED, 1)
    assert (next_attempt_at - created_at).total_seconds() >= 300  # the first step of the backoff
    registry = ScheduledJobRegistry(queue=services.queue())
    (job_id,) = registry.get_job_ids()
    assert registry.get_scheduled_time(job_id).replace(tzinfo=UTC).timestamp() == pytest.approx(
        next_attempt_at.replace(tzinfo=UTC).timestamp(), abs=1)

    # Redis lost it (restarted, nothing on disk); once it is due, the sweep queues the mail again
    registry.remove(job_id)
    services.sink.refuse = False
    assert flush(app) == 0  # not due yet
    with app.app_context(), maintenance_engine(app).begin() as conn:  # the owner: every commune
        conn.execute(update(OutboxMail.__table__).values(next_attempt_at=created_at))
    assert flush(app) == 1
    services.rq_worker()
    assert len(services.sink.to("plus-tard@exemple.test")) == 1
    assert [(r["status"], r["attempts"]) for r in rows(app)] == [(MAIL_SENT, 2)]


def test_flask_worker_releases_the_places_of_abandoned_demarches(services, app, tenants, make_family, make_activity,
                                                                 inscribe):
    """The worker's sweep also frees what an abandoned démarche held, so "Places : N" stays exact."""
    from datetime import datetime

    from core import reservations as booking
    from core.models import Activity, Cart, Child, Reservation, Slot, User
    from tenants.context import tenant_scope
    from tests.conftest import days_from_today

    fam = make_family("auray", children=[("Lou", "2021-03-01")])
    act = make_activity("auray")
    inscribe(act, fam["child_ids"])
    slot_id = act["slots"][("matin", days_from_today(10).isoformat())]
    with app.app_context(), tenant_scope(tenants["auray"]):
        user = db.session.scalars(select(User).where(User.family_id == fam["family_id"])).first()
        cart = booking.open_cart(user=user, family=user.family, activity_ids=[act["id"]],
                                 child_ids=fam["child_ids"], hold_minutes=20)
        ctx = booking.Context(cart=cart, activities={act["id"]: db.session.get(Activity, act["id"])},
                              children={}, slots={}, zone="A")
        booking.set_choices(ctx, [(fam["child_ids"][0], slot_id, True)])
        db.session.commit()
        assert db.session.get(Slot, slot_id).taken == 1
        cart.expires_at = datetime(2000, 1, 1)  # the family left the wizard long ago
        db.session.execute(update(Reservation).where(Reservation.cart_id == cart.id)
                           .values(held_until=datetime(2000, 1, 1)))
        db.session.commit()
        cart_id = cart.id
        db.session.remove()

    services.flask_worker()

    with app.app_context(), tenant_scope(tenants["auray"]):
        assert db.session.get(Slot, slot_id).taken == 0
        assert db.session.get(Cart, cart_id).status == "expired"
        assert db.session.get(Child, fam["child_ids"][0]) is not None
        assert db.session.scalars(select(Reservation.status).where(Reservation.slot_id == slot_id)).all() == [
            "cancelled"]
        db.session.remove()


def test_a_publications_mails_go_to_rq_in_one_go_and_none_is_lost_when_redis_is_down(
        services, app, monkeypatch, billing_settings, month_activity, make_family, inscribe, book, inside):
    """Publishing a month writes one mail per family in one statement; after commit they go to
    RQ together (one pipeline).  Redis down at that moment: every one stays pending, the sweep
    queues them later and each family receives its mail once."""
    from tests.billing_helpers import last_month, run_month

    billing_settings("auray")
    act = month_activity()
    families = [make_family("auray", parent_email=f"facture{n}@exemple.test", children=[("Lou", "2021-05-01")])
                for n in range(3)]
    first, _last = last_month()
    for fam in families:
        inscribe(act, fam["child_ids"])
        book(act, fam["child_ids"][0], [("matin", first)])
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    inside("auray", lambda: run_month([act["id"]], publish=True))
    assert [r["status"] for r in rows(app)] == [MAIL_PENDING] * 3
    assert services.queue().count == 0

    monkeypatch.setitem(app.config, "REDIS_URL", services.redis_url)  # Redis is back
    assert flush(app) == 3
    assert services.queue().count == 3 and [r["status"] for r in rows(app)] == [MAIL_QUEUED] * 3
    services.rq_worker()
    for fam in families:
        (mail,) = services.sink.to(fam["email"])
        assert "Votre facture est disponible" in mail["Subject"]
    assert flush(app) == 0
    assert [(r["status"], r["attempts"]) for r in rows(app)] == [(MAIL_SENT, 1)] * 3

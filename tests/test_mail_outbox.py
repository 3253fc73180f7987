"""The outbox without Redis: real SMTP (aiosmtpd), retries with backoff, the sweep, agents' "Renvoyer"."""

import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from core.clock import utcnow
from core.models import MAIL_FAILED, MAIL_PENDING, MAIL_QUEUED, MAIL_SENT, OutboxMail
from extensions import db
from tenants.rls import maintenance_engine, maintenance_session
from tests.mail_support import start_smtp


@pytest.fixture
def smtp(app, monkeypatch):
    """A real SMTP server; the app sends to it inline (no Redis), retrying at once after a failure."""
    sink, controller = start_smtp()
    for key, value in {"MAIL_BACKEND": "smtp", "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": controller.port,
                       "MAIL_MAX_ATTEMPTS": 3, "MAIL_RETRY_DELAYS": (0,), "REDIS_URL": None}.items():
        monkeypatch.setitem(app.config, key, value)
    yield sink
    controller.stop()


def register(web, email, slug="auray"):
    return web.post(f"/{slug}/creer-mon-espace", {
        "first_name": "Yann", "last_name": "Le Goff", "email": email, "password": "Bonjour-2026",
        "confirm": "Bonjour-2026", "accept_cgu": "y"})


def rows(app):
    with app.app_context(), maintenance_session("tests: les mails de toutes les communes") as session:
        return [{"id": m.id, "tenant_id": m.tenant_id, "to": m.to_address, "status": m.status,
                 "attempts": m.attempts, "last_error": m.last_error, "next_attempt_at": m.next_attempt_at}
                for m in session.scalars(select(OutboxMail).order_by(OutboxMail.id))]


def set_mail(app, mail_id, **values):
    with app.app_context(), maintenance_engine(app).begin() as conn:  # the owner: every commune
        conn.execute(update(OutboxMail.__table__).where(OutboxMail.__table__.c.id == mail_id).values(**values))


def flush(app):
    result = app.test_cli_runner().invoke(args=["mail", "flush"])
    assert result.exit_code == 0, result.output
    return int(re.search(r"(\d+) mail", result.output).group(1))


def test_a_mail_goes_out_over_smtp_with_the_communes_headers(web, smtp, app):
    assert "Félicitations" in register(web, "smtp@exemple.test").get_data(as_text=True)
    (mail,) = smtp.to("smtp@exemple.test")
    assert mail["Subject"] == "Activez votre espace citoyens — Ville d'Auray"
    assert mail["From"].addresses[0].addr_spec == "ne-pas-repondre@auray.test"
    assert mail["Reply-To"] == "enfance@auray.test"
    assert smtp.text(mail).rstrip().endswith("Cordialement,\n\nLa Ville d'Auray")
    assert "/auray/activation/" in smtp.link(mail, "/auray/activation/")
    (row,) = rows(app)
    assert (row["status"], row["attempts"], row["last_error"]) == (MAIL_SENT, 1, None)


def test_smtp_refusing_is_retried_then_failed_and_shown_to_the_agent_who_sends_it_again(
        web, make_web, make_agent, smtp, app):
    smtp.refuse = True
    assert "Félicitations" in register(web, "refus@exemple.test").get_data(as_text=True)
    (row,) = rows(app)
    assert (row["status"], row["attempts"]) == (MAIL_QUEUED, 1)  # waiting for its next attempt
    assert "550" in row["last_error"] and row["next_attempt_at"] is not None

    assert flush(app) == 1 and rows(app)[0]["attempts"] == 2
    assert flush(app) == 1
    (row,) = rows(app)
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == (MAIL_FAILED, 3, None)
    assert smtp.attempts == 3 and smtp.messages == []
    assert flush(app) == 0  # a failed mail waits for an agent

    agent = make_web()
    make_agent("auray")
    agent.login("auray", "agent@auray.test")
    page = agent.get("/auray/admin/mails?statut=failed").get_data(as_text=True)
    assert "refus@exemple.test" in page and "Échec" in page and "550" in page and "Renvoyer" in page
    assert "Mails" in agent.get("/auray/admin/").get_data(as_text=True)  # reachable from the agent space

    smtp.refuse = False
    res = agent.post(f"/auray/admin/mails/{row['id']}/renvoyer", {"next": "/auray/admin/mails?statut=failed"},
                     page="/auray/admin/mails?statut=failed")
    assert res.status_code == 302 and res.headers["Location"] == "/auray/admin/mails?statut=failed"
    assert "est renvoyé" in agent.get(res.headers["Location"]).get_data(as_text=True)
    (mail,) = smtp.to("refus@exemple.test")
    assert "La Ville d'Auray" in smtp.text(mail)
    (row,) = rows(app)
    assert (row["status"], row["attempts"], row["last_error"]) == (MAIL_SENT, 1, None)
    page = agent.get("/auray/admin/mails").get_data(as_text=True)
    assert "Envoyé" in page and "Renvoyer</button>" not in page


def test_renvoyer_needs_a_failed_mail_of_this_commune_an_agent_and_the_csrf_token(
        web, make_web, make_agent, make_family, smtp, app):
    smtp.refuse = True
    register(web, "a@exemple.test")
    register(make_web(), "b@exemple.test", slug="saint-loubes")
    for row in rows(app):
        set_mail(app, row["id"], status=MAIL_FAILED)
    auray_mail, loubes_mail = rows(app)
    smtp.refuse = False

    agent = make_web()
    make_agent("auray")
    agent.login("auray", "agent@auray.test")
    page = "/auray/admin/mails"
    assert agent.post(f"/auray/admin/mails/{loubes_mail['id']}/renvoyer", page=page).status_code == 404
    assert agent.post("/auray/admin/mails/999999/renvoyer", page=page).status_code == 404
    assert agent.post("/auray/admin/mails/99999999999999999999999/renvoyer", page=page).status_code == 404
    assert agent.post(f"/auray/admin/mails/{auray_mail['id']}/renvoyer", csrf=False).status_code == 400
    assert "b@exemple.test" not in agent.get(page).get_data(as_text=True)

    parent = make_web()
    fam = make_family("auray")
    parent.login("auray", fam["email"])
    assert parent.get(page).status_code == 403
    assert parent.post(f"/auray/admin/mails/{auray_mail['id']}/renvoyer", page="/auray/mon-espace").status_code == 403
    assert smtp.messages == []

    set_mail(app, auray_mail["id"], status=MAIL_SENT)
    res = agent.post(f"/auray/admin/mails/{auray_mail['id']}/renvoyer", page=page)
    assert res.status_code == 302
    assert "rien à renvoyer" in agent.get(res.headers["Location"]).get_data(as_text=True)
    assert smtp.messages == []


def test_a_family_page_lists_that_familys_mails_only(web, make_web, make_agent, make_family, smtp, app, tenants):
    from core.mail import queue_mail
    from core.models import User
    from tenants.context import tenant_scope

    mine, other = make_family("auray", name="KERBRAT"), make_family("auray", name="LE ROUX")
    foreign = make_family("saint-loubes", name="DUPUY")
    with app.app_context():
        for fam in (mine, other):
            with tenant_scope(tenants["auray"]):
                user = db.session.get(User, fam["user_id"])
                queue_mail(to=user.email, template="password_reset", user=user,
                           context={"name": user.display_name, "link": "http://x.test/auray/r", "hours": 2})
                db.session.commit()
        db.session.remove()
    agent = make_web()
    make_agent("auray")
    agent.login("auray", "agent@auray.test")
    html = agent.get(f"/auray/admin/familles/{mine['family_id']}/mails").get_data(as_text=True)
    assert "KERBRAT" in html and mine["email"] in html and other["email"] not in html
    assert "Réinitialisation de votre mot de passe" in html and "Envoyé" in html
    assert agent.get(f"/auray/admin/familles/{foreign['family_id']}/mails").status_code == 404
    everything = agent.get("/auray/admin/mails").get_data(as_text=True)
    assert mine["email"] in everything and other["email"] in everything
    assert f"/auray/admin/familles/{mine['family_id']}/mails" in everything
    found = agent.get("/auray/admin/mails?q=" + mine["email"]).get_data(as_text=True)
    assert mine["email"] in found and other["email"] not in found
    assert agent.get("/auray/admin/mails?statut=nimportequoi&page=abc").status_code == 200
    assert agent.get("/auray/admin/mails?page=99999999999999999999999").status_code == 200
    assert agent.get("/auray/admin/familles/99999999999999999999999/mails").status_code == 404


def test_the_sweep_sends_what_was_never_queued_or_is_stuck_and_leaves_the_rest(web, make_web, smtp, app):
    smtp.refuse = True
    for n in range(4):
        register(make_web(), f"m{n}@exemple.test")
    smtp.refuse = False
    never, stuck, fresh, later = rows(app)
    now = utcnow()
    set_mail(app, never["id"], status=MAIL_PENDING, next_attempt_at=None, attempts=0)
    set_mail(app, stuck["id"], status=MAIL_QUEUED, next_attempt_at=None, queued_at=now - timedelta(hours=1))
    set_mail(app, fresh["id"], status=MAIL_QUEUED, next_attempt_at=None, queued_at=now)
    set_mail(app, later["id"], status=MAIL_QUEUED, next_attempt_at=now + timedelta(hours=1))
    assert flush(app) == 2
    assert sorted(m["To"] for m in smtp.messages) == ["m0@exemple.test", "m1@exemple.test"]
    assert [r["status"] for r in rows(app)] == [MAIL_SENT, MAIL_SENT, MAIL_QUEUED, MAIL_QUEUED]
    assert flush(app) == 0 and len(smtp.messages) == 2


def test_a_job_run_twice_or_at_once_by_two_workers_sends_once(web, smtp, app):
    """Two workers taking the same mail at the same moment: the row is claimed under a lock."""
    from jobs.mail import send_mail

    smtp.refuse = True
    register(web, "double@exemple.test")
    smtp.refuse = False
    (row,) = rows(app)
    set_mail(app, row["id"], status=MAIL_QUEUED, next_attempt_at=None)
    start, results = threading.Barrier(4), []

    def worker():
        with app.app_context():
            start.wait()
            results.append(send_mail(row["id"], row["tenant_id"]))
            db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [MAIL_SENT] * 4  # each run reports the mail sent…
    assert len(smtp.to("double@exemple.test")) == 1  # …and it went out once
    with app.app_context():
        assert send_mail(row["id"], row["tenant_id"]) == MAIL_SENT
    assert len(smtp.messages) == 1 and rows(app)[0]["attempts"] == 2


def test_a_retry_that_is_not_due_is_not_sent_early(web, smtp, app):
    from jobs.mail import send_mail

    smtp.refuse = True
    register(web, "tot@exemple.test")
    smtp.refuse = False
    (row,) = rows(app)
    set_mail(app, row["id"], next_attempt_at=utcnow() + timedelta(minutes=5))
    with app.app_context():
        assert send_mail(row["id"], row["tenant_id"]) == MAIL_QUEUED
    assert smtp.messages == [] and rows(app)[0]["attempts"] == 1


def test_backoff_grows_then_repeats_its_last_step(ctx, monkeypatch):
    from flask import current_app

    from jobs.mail import retry_delay

    monkeypatch.setitem(current_app.config, "MAIL_RETRY_DELAYS", (60, 300, 900))
    assert [retry_delay(n) for n in (1, 2, 3, 4, 9)] == [60, 300, 900, 900, 900]


def test_flask_workers_rq_worker_sweeps_once_per_interval(ctx, monkeypatch):
    from fakeredis import FakeStrictRedis
    from rq import Queue

    import jobs.worker

    sweeps, clock = [], [1000.0]
    monkeypatch.setattr("jobs.mail.sweep", lambda: sweeps.append(clock[0]) or 0)
    monkeypatch.setattr(jobs.worker, "monotonic", lambda: clock[0])
    conn = FakeStrictRedis()
    worker = jobs.worker.SweepingWorker([Queue("t", connection=conn)], connection=conn, sweep_interval=60)
    assert worker.dequeue_timeout == 60  # waiting for jobs never outlasts the sweep interval
    assert worker.should_run_maintenance_tasks
    worker.run_maintenance_tasks()
    clock[0] += 59
    assert not worker.should_run_maintenance_tasks
    clock[0] += 1
    assert worker.should_run_maintenance_tasks
    worker.run_maintenance_tasks()
    assert sweeps == [1000.0, 1060.0]

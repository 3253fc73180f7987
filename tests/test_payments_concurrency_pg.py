"""On a real PostgreSQL: a PAID notification replayed 10 times, 5 of them at once on real concurrent
connections, records one payment (the transaction row is locked FOR UPDATE; a receipt's transaction
id is unique); two reminder jobs at once mail once."""

from __future__ import annotations

import threading
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from core.billing import online, reminders
from core.billing.models import Payment
from core.billing.payment_models import OnlineTransaction, Receipt, Reminder
from core.models import OutboxMail, User
from extensions import db
from tenants.context import tenant_scope
from tests.test_concurrency_pg import race_app  # noqa: F401  (fixture: a pool of real connections)

pytestmark = pytest.mark.postgres


def test_ten_replays_five_of_them_concurrent_record_one_payment(race_app, tenants, pay_settings,  # noqa: F811
                                                               make_family, make_invoice):
    pay_settings("auray")
    fam = make_family("auray")
    a, b = make_invoice(fam, "10.10", due_in=3), make_invoice(fam, "7.45", due_in=9)
    with race_app.test_request_context("/auray/"), tenant_scope(tenants["auray"]):
        user = db.session.get(User, fam["user_id"])
        _tx, url = online.start(fam["family_id"], [a, b], user=user, email=user.email,
                                return_url=lambda i: f"http://localhost/auray/paiements/{i}/retour",
                                notify_url="http://localhost/auray/paiements/notification")
        db.session.commit()
        fields = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        data = online.standin_notification(fields, "ok")
        db.session.remove()

    barrier = threading.Barrier(5)
    answers, errors = [], []

    def notify(wait):
        try:
            client = race_app.test_client()
            if wait:
                barrier.wait(30)
            answers.append(client.post("/auray/paiements/notification", data=data).status_code)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=notify, args=(True,)) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for _ in range(5):
        notify(False)
    assert not errors, errors
    assert sorted(answers) == [200] * 10
    with race_app.app_context(), tenant_scope(tenants["auray"]):
        assert db.session.scalar(select(func.count()).select_from(Receipt)) == 1
        assert db.session.scalar(select(func.sum(Payment.amount))) == Decimal("17.55")
        tx = db.session.scalars(select(OnlineTransaction)).one()
        assert (tx.status, tx.notifications) == ("paid", 10)
        mails = db.session.scalars(select(OutboxMail.template)).all()
        assert mails.count("payment_received") == 1
        db.session.remove()


def test_two_reminder_jobs_at_once_mail_once(race_app, tenants, pay_settings, make_family,  # noqa: F811
                                             make_invoice):
    pay_settings("auray")
    families = [make_family("auray") for _ in range(3)]
    for fam in families:
        make_invoice(fam, "12.00", due_in=2)          # within the 5 days before the deadline
    barrier = threading.Barrier(2)
    counts, errors = [], []

    def job():
        try:
            with race_app.app_context(), tenant_scope(tenants["auray"]):
                barrier.wait(30)
                counts.append(reminders.send_due())
                db.session.commit()
                db.session.remove()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=job) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sum(counts) == 3
    with race_app.app_context(), tenant_scope(tenants["auray"]):
        assert db.session.scalar(select(func.count()).select_from(Reminder)) == 3
        assert db.session.scalars(select(OutboxMail.template)).all().count("invoice_reminder") == 3
        db.session.remove()

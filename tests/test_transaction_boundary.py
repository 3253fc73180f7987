"""The transaction boundary outside the views (web/transaction.py): every view commits when it
answers, writes nothing when it raises, and a lock not taken in time reads "Réessayez dans un
instant" (with nothing written)."""

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from core.dossier import changes as dossier_changes
from core.dossier.models import FamilyChange
from core.locking import Busy
from extensions import db
from tenants.context import tenant_scope

NEW_CHILD = {"first_name": "Gaël", "last_name": "Testfam", "birth_date": "2020-02-02", "school": "", "class_name": ""}
PAGE = "/auray/famille/enfants/nouveau"


@pytest.fixture
def parent(web, make_family):
    fam = make_family("auray")
    web.login("auray", fam["email"])
    return fam


def changes(app, tenants) -> int:
    with app.app_context(), tenant_scope(tenants["auray"]):
        count = db.session.scalar(select(func.count()).select_from(FamilyChange))
        db.session.remove()
    return count


@pytest.fixture
def service_writes_then(monkeypatch):
    """The service of "Ajouter un enfant" writes its row (flushed), then raises `exc`."""

    def arm(exc: BaseException):
        real = dossier_changes.propose_create

        def writes_then_raises(**kwargs):
            real(**kwargs)
            db.session.flush()
            raise exc

        monkeypatch.setattr(dossier_changes, "propose_create", writes_then_raises)

    return arm


def test_every_view_runs_inside_the_boundary(app):
    unwrapped = [endpoint for endpoint, view in app.view_functions.items()
                 if endpoint != "static" and not getattr(view, "_committing", False)]
    assert unwrapped == []


def test_the_view_commits_what_its_service_wrote(web, parent, app, tenants):
    assert web.post(PAGE, NEW_CHILD).status_code == 302
    assert changes(app, tenants) == 1


def test_busy_in_a_service_answers_retry_and_writes_nothing(web, parent, app, tenants, service_writes_then):
    service_writes_then(Busy())
    # a form posted without JavaScript: back to the page it came from, which says it
    res = web.post(PAGE, NEW_CHILD, headers={"Referer": f"http://localhost{PAGE}"})
    assert res.status_code == 303 and res.headers["Location"].endswith(PAGE)
    assert "Réessayez dans un instant." in web.get(PAGE).get_data(as_text=True)
    assert changes(app, tenants) == 0
    # htmx: the page stays as it is, the message shows where the page says things
    res = web.post(PAGE, NEW_CHILD, headers={"HX-Request": "true"})
    assert res.status_code == 200 and res.headers.get("HX-Reswap") == "none"
    assert 'id="grid-message"' in res.get_data(as_text=True)
    assert "Réessayez dans un instant." in res.get_data(as_text=True)
    # nowhere to go back to: a page that says it, and when to try again
    res = web.post(PAGE, NEW_CHILD)
    assert res.status_code == 503 and res.headers.get("Retry-After")
    assert "Réessayez dans un instant." in res.get_data(as_text=True)
    assert changes(app, tenants) == 0


def test_a_lock_timeout_from_the_database_answers_retry_and_writes_nothing(web, parent, app, tenants,
                                                                           service_writes_then):
    import psycopg.errors

    lock_timeout = psycopg.errors.LockNotAvailable("canceling statement due to lock timeout")
    service_writes_then(OperationalError("SELECT … FOR UPDATE", {}, lock_timeout))
    res = web.post(PAGE, NEW_CHILD)
    assert res.status_code == 503 and "Réessayez dans un instant." in res.get_data(as_text=True)
    assert changes(app, tenants) == 0


def test_a_view_that_fails_after_its_service_wrote_leaves_nothing_written(web, parent, app, tenants,
                                                                          service_writes_then):
    service_writes_then(RuntimeError("the page could not be built"))
    with pytest.raises(RuntimeError):  # testing: the error reaches the test (a 500 page in production)
        web.post(PAGE, NEW_CHILD)
    assert changes(app, tenants) == 0
    service_writes_then(ZeroDivisionError())
    app.config["PROPAGATE_EXCEPTIONS"] = False
    try:
        res = web.post(PAGE, NEW_CHILD)
    finally:
        app.config["PROPAGATE_EXCEPTIONS"] = None
    assert res.status_code == 500 and "Réessayez dans un instant." in res.get_data(as_text=True)
    assert changes(app, tenants) == 0

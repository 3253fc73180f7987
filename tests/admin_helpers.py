"""Helpers for the back-office tests: parents' demandes through the core, support accounts."""

from __future__ import annotations

import copy

import pytest
from sqlalchemy import select

from core import reservations as booking
from core.accounts import hash_password
from core.demandes import create_inscription_demande, submit_cart
from core.models import Activity, Child, Demande, SupportUser, User
from extensions import db
from tenants.context import tenant_scope
from tests.conftest import PASSWORD


class Links:
    def demande(self, number):
        return f"http://portail.test/demandes/{number}"


def book(app, fam: dict, act: dict, wishes: list[tuple[int, int]], *, waitlist: bool = False) -> dict:
    """The family ticks [(child_id, slot_id)] in a démarche and validates: one demande."""
    with app.test_request_context(f"/{act['slug']}/"), tenant_scope(act["tenant_id"]):
        user = db.session.scalars(select(User).where(User.family_id == fam["family_id"])).first()
        cart = booking.open_cart(user=user, family=user.family, activity_ids=[act["id"]],
                                 child_ids=sorted({c for c, _s in wishes}), hold_minutes=20)
        activities = db.session.scalars(select(Activity).where(Activity.id == act["id"])).all()
        children = db.session.scalars(select(Child).where(Child.id.in_({c for c, _s in wishes}))).all()
        from core.models import Slot

        slots = db.session.scalars(select(Slot).where(Slot.id.in_({s for _c, s in wishes}))).all()
        ctx = booking.Context.load(cart=cart, activities=activities, children=children, slots=slots, zone="A")
        booking.set_choices(ctx, [(c, s, True) for c, s in wishes], waitlist=waitlist)
        demande = submit_cart(cart, user, links=Links())
        db.session.commit()
        out = {"id": demande.id, "number": demande.number, "status": demande.status,
               "line_ids": [line.id for line in demande.lines]}
        db.session.remove()
    return out


def inscription_demande(app, fam: dict, act: dict, child_ids: list[int]) -> dict:
    with app.test_request_context(f"/{act['slug']}/"), tenant_scope(act["tenant_id"]):
        user = db.session.scalars(select(User).where(User.family_id == fam["family_id"])).first()
        activity = db.session.get(Activity, act["id"])
        children = db.session.scalars(select(Child).where(Child.id.in_(child_ids))).all()
        demande = create_inscription_demande(user=user, family=user.family, activity=activity, children=children,
                                             links=Links())
        db.session.commit()
        out = {"id": demande.id, "number": demande.number, "line_ids": [line.id for line in demande.lines]}
        db.session.remove()
    return out


def demande_state(app, tenant_id: int, demande_id: int) -> dict:
    from core.models import Reservation

    with app.app_context(), tenant_scope(tenant_id):
        demande = db.session.get(Demande, demande_id)
        res = {}
        for line in demande.lines:
            if line.reservation_id:
                res[line.id] = db.session.get(Reservation, line.reservation_id).status
        out = {"status": demande.status, "motif": demande.motif, "lines": {line.id: line.status for line in demande.lines},
               "labels": {line.id: line.label for line in demande.lines},
               "reservations": res, "events": [(e.status, e.actor, e.note) for e in demande.events]}
        db.session.remove()
    return out


def make_support(app, email="support@portail.test", name="Sam Support", password=PASSWORD) -> dict:
    with app.app_context():
        user = SupportUser(email=email, name=name, password_hash=hash_password(password))
        db.session.add(user)
        db.session.commit()
        out = {"id": user.id, "email": email, "password": password, "name": name}
        db.session.remove()
    return out


def support_login(web, support: dict):
    res = web.post("/support/connexion", {"email": support["email"], "password": support["password"]})
    assert res.status_code == 302, res.get_data(as_text=True)[:300]
    return res


def support_enter(web, slug: str):
    """Switch into a commune: /support/ records it, the commune logs the support member in."""
    res = web.post(f"/support/communes/{slug}/entrer", {}, page="/support/")
    assert res.status_code == 302 and "/admin/support-entree?jeton=" in res.headers["Location"], res.status_code
    entry = web.get(res.headers["Location"])
    assert entry.status_code == 302 and entry.headers["Location"].endswith(f"/{slug}/admin/")
    return res.headers["Location"]


# ---------------------------------------------------------------------------- submitting a page's form

class _FormParser:
    """What a browser would submit for the form whose action ends with `action` (or the first one)."""

    def __init__(self, html: str, action: str | None):
        from html.parser import HTMLParser

        self.values: list[tuple[str, str]] = []
        outer = self
        state = {"in_form": False, "done": False, "select": None, "options": [], "textarea": None, "text": ""}

        class P(HTMLParser):
            def handle_starttag(self, tag, attrs):
                a = dict(attrs)
                if tag == "form" and not state["done"]:
                    target = a.get("action") or ""
                    state["in_form"] = action is None or (not target if action == "" else target.endswith(action))
                if not state["in_form"]:
                    return
                if tag == "input" and a.get("name"):
                    kind = (a.get("type") or "text").lower()
                    if kind in ("submit", "button", "file", "image", "reset"):
                        return
                    if kind in ("checkbox", "radio") and "checked" not in a:
                        return
                    outer.values.append((a["name"], a.get("value", "on" if kind == "checkbox" else "")))
                elif tag == "select":
                    state["select"], state["options"] = a.get("name"), []
                elif tag == "option" and state["select"]:
                    state["options"].append((a.get("value", ""), "selected" in a))
                elif tag == "textarea":
                    state["textarea"], state["text"] = a.get("name"), ""

            def handle_endtag(self, tag):
                if tag == "form" and state["in_form"]:
                    state["in_form"], state["done"] = False, True
                elif tag == "select" and state["select"]:
                    chosen = [v for v, sel in state["options"] if sel] or [v for v, _s in state["options"][:1]]
                    outer.values.extend((state["select"], v) for v in chosen)
                    state["select"] = None
                elif tag == "textarea" and state["textarea"]:
                    outer.values.append((state["textarea"], state["text"].lstrip("\n")))
                    state["textarea"] = None

            def handle_data(self, data):
                if state["textarea"]:
                    state["text"] += data

        P(convert_charrefs=True).feed(html)


def form_data(html: str, action: str | None = None, **changes) -> dict:
    """The form's current values as a dict (lists for repeated names), with `changes` applied
    (a value None removes the field, like an unticked checkbox)."""
    data: dict = {}
    for name, value in _FormParser(html, action).values:
        data.setdefault(name, []).append(value)
    out = {k: (v if len(v) > 1 else v[0]) for k, v in data.items()}
    for key, value in changes.items():
        key = key.replace("__", "-")
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@pytest.fixture
def keep_tenant_settings(app):
    """The communes' rows outlive a test (only the other tables are emptied): put their settings back."""
    from tenants.context import unscoped
    from tenants.models import Tenant

    with app.app_context(), unscoped():
        saved = {t.id: (t.name, copy.deepcopy(t.settings)) for t in db.session.scalars(select(Tenant))}
        db.session.remove()
    yield
    with app.app_context(), unscoped():
        for tenant in db.session.scalars(select(Tenant)):
            tenant.name, tenant.settings = saved[tenant.id]
        db.session.commit()
        db.session.remove()

"""Data builders for the agenda and absence tests (dates relative to today, every day open)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from html import unescape
from html.parser import HTMLParser

from sqlalchemy import select

from core.activity_config import upsert_activity
from core.calendar import now_local
from core.models import (
    INSCRIPTION_ACCEPTED,
    RES_ABSENT,
    RES_PENDING,
    RES_RESERVED,
    ActivityUnit,
    Inscription,
    Reservation,
    Slot,
)
from extensions import db
from tenants.context import tenant_scope

ALL_DAYS = {"weekdays": [0, 1, 2, 3, 4, 5, 6], "public_holidays": "open"}
TAKING = (RES_RESERVED, RES_PENDING, RES_ABSENT)


def today() -> date:
    return now_local().date()


def units_spec(code="agenda-jours", name="Accueil de loisirs Les Lutins", start=None, end=None) -> dict:
    t = today()
    return {
        "code": code, "name": name, "kind": "units", "season": "2026/2027",
        "starts_on": start or t - timedelta(days=70), "ends_on": end or t + timedelta(days=70),
        "validation": "commune", "calendar": ALL_DAYS,
        "units": [{"code": "matin", "label": "Matin", "capacity": 10},
                  {"code": "repas", "label": "Repas", "capacity": 10},
                  {"code": "apres_midi", "label": "Après-midi", "capacity": 10}],
    }


def sessions_spec(sessions: list[dict], code="agenda-stages", name="Séjours & Stages Test") -> dict:
    t = today()
    return {
        "code": code, "name": name, "kind": "sessions", "season": "2026/2027",
        "starts_on": t - timedelta(days=70), "ends_on": t + timedelta(days=70),
        "validation": "prereservation", "calendar": ALL_DAYS, "sessions": sessions,
    }


class Builder:
    """Inside one commune: activities, inscriptions and reservations written directly."""

    def __init__(self, app, tenant_id: int):
        self.app, self.tenant_id = app, tenant_id

    def activity(self, spec: dict) -> int:
        with self.app.app_context(), tenant_scope(self.tenant_id):
            activity = upsert_activity(spec, zone="A")
            db.session.commit()
            return activity.id

    def inscribe(self, child_id: int, activity_id: int, status=INSCRIPTION_ACCEPTED) -> None:
        with self.app.app_context(), tenant_scope(self.tenant_id):
            db.session.add(Inscription(child_id=child_id, activity_id=activity_id, status=status))
            db.session.commit()

    def slot(self, activity_id: int, day: date, *, unit: str | None = None, title: str | None = None) -> int:
        with self.app.app_context(), tenant_scope(self.tenant_id):
            stmt = select(Slot).where(Slot.activity_id == activity_id, Slot.day == day)
            if unit is not None:
                stmt = stmt.join(ActivityUnit, Slot.unit_id == ActivityUnit.id).where(ActivityUnit.code == unit)
            if title is not None:
                stmt = stmt.where(Slot.title == title)
            return db.session.scalars(stmt).one().id

    def book(self, child_id: int, family_id: int, slot_id: int, status=RES_RESERVED) -> int:
        with self.app.app_context(), tenant_scope(self.tenant_id):
            slot = db.session.get(Slot, slot_id)
            res = Reservation(child_id=child_id, slot_id=slot_id, activity_id=slot.activity_id, family_id=family_id,
                              status=status)
            if status in TAKING:
                slot.taken += 1
            db.session.add(res)
            db.session.commit()
            return res.id

    def book_days(self, child_ids: list[int], family_id: int, activity_id: int, days: list[date]) -> None:
        """Every unit of every day in `days` reserved for each child, in one transaction."""
        with self.app.app_context(), tenant_scope(self.tenant_id):
            slots = db.session.scalars(select(Slot).where(Slot.activity_id == activity_id, Slot.day.in_(days))).all()
            for slot in slots:
                for child_id in child_ids:
                    db.session.add(Reservation(child_id=child_id, slot_id=slot.id, activity_id=activity_id,
                                               family_id=family_id, status=RES_RESERVED))
                    slot.taken += 1
            db.session.commit()

    def reservation(self, res_id: int) -> dict:
        with self.app.app_context(), tenant_scope(self.tenant_id):
            res = db.session.get(Reservation, res_id)
            slot = db.session.get(Slot, res.slot_id)
            return {"status": res.status, "motif": res.absence_motif, "document": res.absence_document,
                    "taken": slot.taken}


# ------------------------------------------------------------------ reading the agenda page

class _Items(HTMLParser):
    """The agenda's items: <li class="ag-item ag-item--STATUS" title="…"> and their visible text."""

    def __init__(self):
        super().__init__()
        self.items, self._depth, self._current = [], 0, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self._current is not None:
            if tag == "li":
                self._depth += 1
            if tag == "a":
                self._current["links"].append(attrs.get("href"))
            return
        classes = (attrs.get("class") or "").split()
        if tag == "li" and "ag-item" in classes:
            status = next(c.split("--", 1)[1] for c in classes if c.startswith("ag-item--"))
            self._current = {"status": status, "title": attrs.get("title", ""), "text": "", "links": []}
            self._depth = 1

    def handle_endtag(self, tag):
        if self._current is not None and tag == "li":
            self._depth -= 1
            if self._depth == 0:
                self._current["text"] = re.sub(r"\s+", " ", self._current["text"]).strip()
                self.items.append(self._current)
                self._current = None

    def handle_data(self, data):
        if self._current is not None:
            self._current["text"] += data


def agenda_items(html: str) -> list[dict]:
    parser = _Items()
    parser.feed(html)
    for item in parser.items:
        item["title"] = unescape(item["title"])
    return parser.items

"""How a change reads: its title (stored in French for the agents, in the reader's language for the family's
mails), the fields it touches, where it points, and the current values beside the pending ones."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import force_locale
from flask_babel import gettext as _

from core.dossier.fields import (
    ENTITY_CHILD,
    ENTITY_CONTACT,
    ENTITY_LABELS,
    ENTITY_MANDATE,
    ENTITY_QUOTIENT,
    ENTITY_RESPONSABLE,
    FIELDS,
    display,
    spec,
)
from core.dossier.models import OP_CREATE, OP_DELETE, OP_UPDATE, FamilyChange
from core.dossier.records import current_values, target_of
from core.models import Child
from extensions import db


def stored_label(entity: str, target=None, child: Child | None = None, values: dict | None = None) -> str:
    """Stored with the change, in French: the commune's agents read it in the queue."""
    with force_locale("fr"):
        return _title(entity, target, child, values)


def describe(change: FamilyChange) -> str:
    """The change's title in the reader's language (mails to the family)."""
    child = db.session.get(Child, change.child_id) if change.child_id else None
    if change.entity == ENTITY_CHILD:
        target = child if change.op != OP_CREATE else None
    elif change.entity in (ENTITY_RESPONSABLE, ENTITY_CONTACT) and change.op != OP_CREATE:
        target = target_of(change.entity, change.entity_id) if change.entity_id else None
        if target is None:
            return change.label
    else:
        target = None
    return _title(change.entity, target, child, change.changes if change.op == OP_CREATE else None)


def _title(entity: str, target, child: Child | None, values: dict | None) -> str:
    section = str(ENTITY_LABELS[entity])
    if entity == ENTITY_QUOTIENT:
        return _("%(section)s — justificatif", section=section)
    if entity == ENTITY_MANDATE:
        return f"{section} — {(values or {}).get('rum') or ''}".strip(" —")
    if entity == ENTITY_RESPONSABLE:
        name = target.display_name if target is not None else ""
        return f"{section} — {name}".strip(" —")
    if entity == ENTITY_CHILD and target is None:
        return _("Nouvel enfant : %(name)s", name=f"{(values or {}).get('first_name') or ''} "
                                                  f"{(values or {}).get('last_name') or ''}".strip())
    kid = child if child is not None else (target if entity == ENTITY_CHILD else getattr(target, "child", None))
    who = f"{kid.first_name} {kid.last_name}" if kid is not None else ""
    if entity == ENTITY_CONTACT:
        name = target.display_name if target is not None else \
            f"{(values or {}).get('first_name') or ''} {(values or {}).get('last_name') or ''}".strip()
        return f"{who} — {section} — {name}"
    return f"{who} — {section}"


def field_labels(change: FamilyChange) -> str:
    title = describe(change)
    if change.op == OP_UPDATE:
        names = []
        for name in change.changes or {}:
            try:
                names.append(str(spec(change.entity, name).label))
            except KeyError:
                continue
        return _("%(title)s : %(fields)s", title=title, fields=", ".join(names))
    if change.op == OP_DELETE:
        return _("%(label)s (suppression)", label=title)
    return title


def change_path(change: FamilyChange) -> str:
    if change.entity == ENTITY_QUOTIENT:
        return "/mes-qf-revenus"
    if change.entity == ENTITY_MANDATE:
        return "/prelevements"
    if change.child_id:
        return f"/famille/enfants/{change.child_id}"
    return "/famille/dossier"


@dataclass
class Row:
    name: str
    label: str
    current: str
    pending: str | None = None

    @property
    def has_pending(self) -> bool:
        return self.pending is not None


def rows(entity: str, target, change: FamilyChange | None, *, skip=("photo",)) -> list[Row]:
    """Current value beside the pending one, field by field."""
    current = current_values(entity, target)
    changed = (change.changes or {}) if change is not None and change.op == OP_UPDATE else {}
    out = []
    for f in FIELDS[entity]:
        if f.name in skip:
            continue
        pending = display(f, changed[f.name]["new"]) if f.name in changed else None
        out.append(Row(f.name, str(f.label), display(f, current[f.name]), pending))
    return out


def change_rows(change: FamilyChange, *, skip=("photo",)) -> list[Row]:
    """What a change asks, for the agents' queue (current value as recorded when asked)."""
    out = []
    if change.op == OP_CREATE:
        for f in FIELDS[change.entity]:
            if f.name in skip or f.name not in (change.changes or {}):
                continue
            out.append(Row(f.name, str(f.label), "", display(f, change.changes[f.name])))
        return out
    if change.op == OP_DELETE:
        return out
    target = target_of(change.entity, change.entity_id)
    current = current_values(change.entity, target) if target is not None else {}
    for name, values in (change.changes or {}).items():
        try:
            f = spec(change.entity, name)
        except KeyError:
            continue
        if name in skip:
            continue
        out.append(Row(name, str(f.label), display(f, current.get(name, values.get("old"))), display(f, values["new"])))
    return out

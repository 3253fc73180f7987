"""What an agent does on family files outside the changes: find a family, open a file, add a child, set the
quotient familial."""

from __future__ import annotations

from sqlalchemy import func, or_, select

from core.clock import utcnow
from core.dossier.models import FamilyFile, Responsable
from core.dossier.records import family_file
from core.models import Child, Family, User
from extensions import db


def search_families(query: str | None, limit: int = 100) -> list[Family]:
    stmt = select(Family).order_by(Family.name, Family.id)
    q = (query or "").strip()
    if q:
        like = f"%{q.lower()}%"
        users = select(User.family_id).where(func.lower(User.email).like(like), User.family_id.is_not(None))
        resps = select(Responsable.family_id).where(or_(func.lower(Responsable.email).like(like),
                                                        func.lower(Responsable.last_name).like(like)))
        stmt = stmt.where(or_(func.lower(Family.name).like(like), func.lower(Family.code).like(like),
                              Family.id.in_(users), Family.id.in_(resps)))
    return list(db.session.scalars(stmt.limit(limit)))


def create_family(name: str) -> Family:
    from core.accounts import new_family_code

    for _attempt in range(10):
        code = new_family_code()
        if db.session.scalars(select(Family).where(Family.code == code)).first() is None:
            break
    family = Family(name=name.strip().upper(), code=code)
    db.session.add(family)
    db.session.flush()
    family_file(family)
    return family


def add_child_directly(family: Family, values: dict) -> Child:
    """An agent adds a child to a file (no validation needed: the commune is the validator)."""
    child = Child(family_id=family.id, tenant_id=family.tenant_id, first_name=values["first_name"].strip(),
                  last_name=values["last_name"].strip(), birth_date=values["birth_date"],
                  school=(values.get("school") or "").strip() or None,
                  class_name=(values.get("class_name") or "").strip() or None)
    db.session.add(child)
    return child


def set_quotient(family: Family, *, agent, value: int | None) -> FamilyFile:
    row = family_file(family)
    row.quotient_familial = value
    row.quotient_set_at = utcnow()
    row.quotient_set_by = agent.display_name
    return row

"""Query scoping that cannot leak.

* ``TenantScoped`` models carry a NOT NULL ``tenant_id``.
* Every ORM statement gets ``with_loader_criteria(TenantScoped, tenant_id == current)``;
  a statement touching a scoped model while no commune is set raises ``TenantNotSet``.
* ``before_flush`` stamps new scoped objects with the current commune and rejects
  objects of another commune.
* ``get_scoped(Model, id)`` is the only primary-key lookup for scoped models: it
  checks the commune even for objects already in the identity map.
"""

from __future__ import annotations

from flask import abort
from sqlalchemy import ForeignKey, bindparam, event, inspect, select
from sqlalchemy.orm import (
    Mapped,
    Session,
    declared_attr,
    make_transient_to_detached,
    mapped_column,
    with_loader_criteria,
)

from core import fastsql
from core.bounds import as_id
from tenants.context import CrossTenantWrite, TenantNotSet, current_tenant_id, is_unscoped


class TenantScoped:
    """Mixin for every model that belongs to one commune."""

    @declared_attr
    def tenant_id(cls) -> Mapped[int]:  # noqa: N805
        return mapped_column(ForeignKey("tenant.id", ondelete="RESTRICT"), nullable=False, index=True)


# Models that are deliberately global.  Keep this list short; a test checks it.
GLOBAL_MODELS = {"Tenant", "SupportUser"}


def _touches_scoped(state) -> bool:
    for mapper in state.all_mappers:
        if issubclass(mapper.class_, TenantScoped):
            return True
    return False


@event.listens_for(Session, "do_orm_execute")
def _scope_statement(state) -> None:
    if state.is_column_load:
        return
    if state.execution_options.get("portail_unscoped") or is_unscoped():
        return
    tid = current_tenant_id()
    if tid is None:
        if _touches_scoped(state):
            raise TenantNotSet(
                "Requête sur des données communales sans commune active : "
                "entrez dans tenant_scope() ou utilisez unscoped() explicitement."
            )
        return
    state.statement = state.statement.options(
        with_loader_criteria(TenantScoped, lambda cls: cls.tenant_id == tid, include_aliases=True)
    )


@event.listens_for(Session, "before_flush")
def _stamp_and_check(session, flush_context, instances) -> None:
    tid = current_tenant_id()
    unscoped_ok = is_unscoped()
    for obj in list(session.new):
        if not isinstance(obj, TenantScoped):
            continue
        if obj.tenant_id is None:
            if tid is None:
                raise TenantNotSet(f"{type(obj).__name__} créé sans commune active")
            obj.tenant_id = tid
        elif tid is not None and obj.tenant_id != tid:
            raise CrossTenantWrite(f"{type(obj).__name__} d'une autre commune")
        elif tid is None and not unscoped_ok:
            raise TenantNotSet(f"{type(obj).__name__} créé sans commune active")
    for obj in list(session.dirty) + list(session.deleted):
        if not isinstance(obj, TenantScoped):
            continue
        hist = inspect(obj).attrs.tenant_id.history
        if hist.deleted and hist.deleted[0] is not None and hist.added and hist.added[0] != hist.deleted[0]:
            raise CrossTenantWrite(f"Changement de commune interdit sur {type(obj).__name__}")
        if unscoped_ok:
            continue
        if tid is None:
            raise TenantNotSet(f"{type(obj).__name__} modifié sans commune active")
        if obj.tenant_id != tid:
            raise CrossTenantWrite(f"{type(obj).__name__} d'une autre commune")


def _scoped_key(model, ident, caller: str) -> tuple[int, int] | None:
    """(commune, primary key) of a lookup, None for an id that cannot be one (`core.bounds.as_id`); raises
    outside a commune."""
    if not issubclass(model, TenantScoped):
        raise TypeError(f"{model.__name__} n'est pas un modèle communal")
    tid = current_tenant_id()
    if tid is None:
        raise TenantNotSet(f"{caller}() sans commune active")
    ident = as_id(ident)
    return None if ident is None else (tid, ident)


def get_scoped(session: Session, model, ident, *, options=()):
    """Primary-key lookup for a scoped model; None unless it belongs to the current commune.
    `options`: loader options (e.g. a relationship read in the same query)."""
    key = _scoped_key(model, ident, "get_scoped")
    if key is None:
        return None
    tid, ident = key
    obj = session.get(model, ident, options=list(options) or None)
    if obj is None or obj.tenant_id != tid:
        return None
    return obj


_by_id: dict = {}


def get_scoped_row(session: Session, model, ident):
    """`get_scoped` through one Core statement that names the commune, the instance built from its
    row and added to the session as if a query had loaded it: the same object, a third of the cost
    (Flask-Login's user, read on every request: on PostgreSQL the request's first statement, sent in
    the round trip of its transaction's BEGIN, `fastsql.rows_with_begin`)."""
    key = _scoped_key(model, ident, "get_scoped_row")
    if key is None:
        return None
    tid, ident = key
    obj = session.identity_map.get(session.identity_key(model, ident))
    if obj is None:
        plan = _by_id.get(model)
        if plan is None:
            table = model.__table__
            keys = {col.name: inspect(model).get_property_by_column(col).key for col in table.columns}
            stmt = fastsql.Hot(select(*table.columns).where(table.c.id == bindparam("ident"),
                                                            table.c.tenant_id == bindparam("tid")))
            plan = _by_id[model] = (stmt, keys)
        stmt, keys = plan
        found = fastsql.rows_with_begin(stmt, {"ident": ident, "tid": tid})
        if not found:
            return None
        row = dict(zip(found[0]._fields, found[0], strict=True))
        obj = model(**{key: row[name] for name, key in keys.items()})
        make_transient_to_detached(obj)
        session.add(obj)
    return obj if obj.tenant_id == tid else None


def get_or_404(session: Session, model, ident, *, options=()):
    obj = get_scoped(session, model, ident, options=options)
    if obj is None:
        abort(404)
    return obj

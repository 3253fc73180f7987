"""The current commune (tenant) of a request, a job or a CLI command.

The value lives in a ContextVar so that web requests, RQ jobs and CLI commands
share one mechanism.  Web requests set it from the URL (/<slug>/) and clear it
on teardown; jobs and commands enter it with ``tenant_scope(tenant_id)``.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


class TenantNotSet(RuntimeError):
    """A query touched commune data while no commune was set (fail closed)."""


class CrossTenantWrite(RuntimeError):
    """An object of one commune was about to be written while another commune is current."""


@dataclass(frozen=True)
class _Scope:
    tenant_id: int | None
    unscoped: bool = False


_current: ContextVar[_Scope] = ContextVar("portail_tenant_scope", default=_Scope(None))  # noqa: B039 (frozen)

# Told the commune whenever it changes (None outside any): tenants/rls.py keeps the database's
# per-transaction setting (app.tenant_id, row-level security) equal to it inside a begun transaction.
_on_change: list = []


def on_change(listener):
    """Register `listener(tenant_id | None)`, called after every change of the current commune."""
    _on_change.append(listener)
    return listener


def _changed() -> None:
    tid = _current.get().tenant_id
    for listener in _on_change:
        listener(tid)


def current_tenant_id() -> int | None:
    return _current.get().tenant_id


def is_unscoped() -> bool:
    return _current.get().unscoped


def require_tenant_id() -> int:
    tid = current_tenant_id()
    if tid is None:
        raise TenantNotSet("Aucune commune n'est active : la requête sur des données communales est refusée.")
    return tid


def set_tenant_id(tenant_id: int | None) -> None:
    """Set the commune for the rest of this context (used by the web layer)."""
    if _current.get() != _Scope(tenant_id):
        _current.set(_Scope(tenant_id))
        _changed()


@contextmanager
def tenant_scope(tenant_id: int):
    if tenant_id is None:
        raise TenantNotSet("tenant_scope() demande une commune")
    before = _current.get()
    token = _current.set(_Scope(int(tenant_id)))
    if before.tenant_id != int(tenant_id):
        _changed()
    try:
        yield int(tenant_id)
    finally:
        _current.reset(token)
        if before.tenant_id != int(tenant_id):
            _changed()


@contextmanager
def unscoped():
    """The ORM guard's explicit, rare opt-out: queries are not filtered by commune.

    It lifts the ORM guard only.  On PostgreSQL the application's role stays under row-level security
    (tenants/rls.py): with no commune set, a tenant table shows no row.  Code that works across
    communes loops over them in ``tenant_scope``; reading them all at once takes the maintenance
    (owner) connection, ``tenants.rls.maintenance_session``."""
    before = _current.get()
    token = _current.set(_Scope(None, unscoped=True))
    if before.tenant_id is not None:
        _changed()
    try:
        yield
    finally:
        _current.reset(token)
        if before.tenant_id is not None:
            _changed()

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
    _current.set(_Scope(tenant_id))


@contextmanager
def tenant_scope(tenant_id: int):
    if tenant_id is None:
        raise TenantNotSet("tenant_scope() demande une commune")
    token = _current.set(_Scope(int(tenant_id)))
    try:
        yield int(tenant_id)
    finally:
        _current.reset(token)


@contextmanager
def unscoped():
    """Explicit, rare opt-out: queries see every commune (CLI, support listing, sweeps)."""
    token = _current.set(_Scope(None, unscoped=True))
    try:
        yield
    finally:
        _current.reset(token)

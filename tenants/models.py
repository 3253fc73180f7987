from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, String, func, select
from sqlalchemy.orm import Mapped, mapped_column

from extensions import db


class Tenant(db.Model):
    """A commune.  Global by design (it *is* the scope)."""

    __tablename__ = "tenant"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # A new random value whenever one of the commune's activities (or their units) changes: the hot
    # paths keep the activities per process and read this with the démarche (core/reservations/store.py).
    activities_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    def setting(self, *path, default=None):
        node = self.settings or {}
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node

    def brand_colour(self, key: str) -> str:
        """'primary' or 'accent', readable on the portal's surfaces whatever was stored (core.contrast)."""
        from core.contrast import readable_colour
        from tenants.registry import DEFAULT_SETTINGS

        default = DEFAULT_SETTINGS["branding"][key]
        try:
            return readable_colour(str(self.setting("branding", key, default=default) or default).strip())
        except ValueError:
            return default

    @property
    def signature(self) -> str:
        return self.setting("signature") or self.name

    def __repr__(self) -> str:
        return f"<Tenant {self.slug}>"


def tenant_by_slug(slug: str) -> Tenant | None:
    """The commune of a slug (`/auray/`, `--tenant auray`), or None."""
    return db.session.scalars(select(Tenant).where(Tenant.slug == slug)).first()


def tenant_or_click_error(slug: str) -> Tenant:
    """The commune of a command's `--tenant`, or the command stops with a French message."""
    import click

    tenant = tenant_by_slug(slug)
    if tenant is None:
        raise click.ClickException(f"Commune inconnue : {slug} (lancez d'abord `flask tenants sync`)")
    return tenant

"""Files sent by families (children's photos): under instance/uploads/<commune>/, never under static/.

Served only through a view that checks who asks.  A replaced or refused photo is removed
after the commit that replaced or refused it (never before: a rollback keeps it).
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from extensions import db
from tenants.models import Tenant

NAME_RE = re.compile(r"^[0-9a-f]{32}\.(jpg|png)$")
MIMETYPES = {"jpg": "image/jpeg", "png": "image/png"}
_KEY = "portail_files_to_remove"


def uploads_root() -> Path:
    return Path(current_app.config.get("UPLOADS_DIR") or Path(current_app.instance_path) / "uploads")


def _folder(tenant_id: int) -> Path:
    tenant = db.session.get(Tenant, tenant_id)
    return uploads_root() / tenant.slug / "enfants"


def path_of(tenant_id: int, name: str | None) -> Path | None:
    """The file of a stored photo name, or None for anything that is not one of our names."""
    if not name or not NAME_RE.match(name):
        return None
    return _folder(tenant_id) / name


def store(tenant_id: int, data: bytes, ext: str) -> str:
    name = f"{secrets.token_hex(16)}.{ext}"
    folder = _folder(tenant_id)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{name}.tmp"
    tmp.write_bytes(data)
    tmp.rename(folder / name)
    return name


def remove_after_commit(tenant_id: int, name: str) -> None:
    path = path_of(tenant_id, name)
    if path is not None:
        db.session.info.setdefault(_KEY, []).append(str(path))


@event.listens_for(Session, "after_commit")
def _remove(session) -> None:
    for path in session.info.pop(_KEY, []):
        Path(path).unlink(missing_ok=True)


@event.listens_for(Session, "after_rollback")
def _keep(session) -> None:
    session.info.pop(_KEY, None)

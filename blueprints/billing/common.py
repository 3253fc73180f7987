from __future__ import annotations

from datetime import date
from functools import wraps

from flask import Response

from extensions import db


def committing(view):
    """The transaction boundary around a view: commit what the service did when the view answers,
    roll back when it raises."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        try:
            out = view(*args, **kwargs)
        except Exception:
            db.session.rollback()
            raise
        db.session.commit()
        return out

    return wrapped


def pdf_response(data: bytes, filename: str, *, download: bool = False) -> Response:
    disposition = "attachment" if download else "inline"
    return Response(data, mimetype="application/pdf",
                    headers={"Content-Disposition": f'{disposition}; filename="{filename}"',
                             "Cache-Control": "private, no-store"})


def parse_date(raw: str | None) -> date | None:
    try:
        return date.fromisoformat((raw or "").strip()[:10]) if raw else None
    except ValueError:
        return None

from __future__ import annotations

from datetime import date

from flask import Response


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

"""Serving a piece's file: to the family and the agents of its commune only (the views check),
with headers that never let a browser run it: the type found from the content, nosniff, a
sandboxing CSP, no caching; anything but PDF, JPEG or PNG is an attachment."""

from __future__ import annotations

from flask import Response, abort, current_app

from core.documents.content import EXTENSIONS
from core.documents.models import Piece
from core.documents.storage import get_storage

INLINE_TYPES = {"application/pdf", "image/jpeg", "image/png"}


def file_response(piece: Piece, *, inline: bool, download_name: str) -> Response:
    storage = get_storage()
    try:
        chunks = storage.chunks(piece.storage_key)
    except KeyError:
        abort(404)
    kind = piece.content_type if piece.content_type in INLINE_TYPES else "application/octet-stream"
    disposition = "inline" if inline and kind in INLINE_TYPES else "attachment"
    ext = EXTENSIONS.get(kind, "bin")
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in download_name)[:80].strip("-") or "piece"
    response = Response(chunks, mimetype=kind, direct_passthrough=True)
    response.headers["Content-Disposition"] = f'{disposition}; filename="{safe}.{ext}"'
    response.headers["Content-Length"] = str(piece.size)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    if kind != "application/pdf":  # Chromium's PDF viewer does not open under a sandboxing CSP
        response.headers["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
    current_app.logger.debug("piece %s served (%s)", piece.id, disposition)
    return response

"""What a file is, by its content — never its name nor the type the browser declared.

Only PDF, JPEG and PNG are kept.  The upload is copied in chunks into a temporary file (on disk
past 1 MiB) while its size is counted: a file over the limit is refused as soon as the limit is
passed, without reading the rest nor holding it in memory.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from typing import BinaryIO

from flask_babel import gettext as _

CHUNK = 64 * 1024
SPOOL_MAX = 1024 * 1024
DEFAULT_MAX_BYTES = 10 * 1024 * 1024

PDF = "application/pdf"
JPEG = "image/jpeg"
PNG = "image/png"
EXTENSIONS = {PDF: "pdf", JPEG: "jpg", PNG: "png"}
# Markup that must never pass for a document (an HTML or SVG page renamed .pdf, .jpg…)
_MARKUP = (b"<!doctype", b"<html", b"<svg", b"<?xml", b"<script", b"<body", b"<head", b"<iframe")


class ContentError(Exception):
    """A refusal the family can read (French, translated)."""

    def __init__(self, message: str, code: str = "content"):
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass
class Checked:
    file: BinaryIO          # positioned at 0; closed by the caller
    content_type: str
    size: int
    sha256: str

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.content_type]


def max_label(max_bytes: int) -> str:
    return f"{max_bytes // (1024 * 1024)} Mo"


def sniff(head: bytes) -> str | None:
    """The type of a file from its first bytes, or None."""
    stripped = head.lstrip()
    if any(stripped[:64].lower().startswith(marker) for marker in _MARKUP):
        return None
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    return None


def _too_large(max_bytes: int) -> ContentError:
    return ContentError(_("Le fichier dépasse la taille maximale de %(size)s.", size=max_label(max_bytes)),
                        code="size")


def _not_a_document() -> ContentError:
    return ContentError(_("Le fichier doit être un PDF, une image JPEG ou une image PNG "
                          "(les autres formats ne sont pas acceptés)."), code="type")


def check_upload(stream: BinaryIO, *, max_bytes: int = DEFAULT_MAX_BYTES, declared_length: int | None = None) -> Checked:
    """Copy `stream` into a temporary file, counting; check what it is.  Raises ContentError."""
    if declared_length is not None and declared_length > max_bytes:
        raise _too_large(max_bytes)
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX)
    digest = hashlib.sha256()
    size = 0
    try:
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(max_bytes)
            digest.update(chunk)
            spool.write(chunk)
        if size == 0:
            raise ContentError(_("Le fichier est vide."), code="empty")
        spool.seek(0)
        head = spool.read(1024)
        kind = sniff(head)
        if kind is None:
            raise _not_a_document()
        spool.seek(0)
        if kind == PDF:
            _check_pdf(spool, size)
        else:
            _check_image(spool, kind)
        spool.seek(0)
        return Checked(file=spool, content_type=kind, size=size, sha256=digest.hexdigest())
    except BaseException:
        spool.close()
        raise


def _check_pdf(spool: BinaryIO, size: int) -> None:
    """A PDF ends with %%EOF (allowing a little trailing whitespace or padding)."""
    spool.seek(max(0, size - 2048))
    tail = spool.read()
    if b"%%EOF" not in tail:
        raise ContentError(_("Le fichier PDF est incomplet ou endommagé."), code="type")


def _check_image(spool: BinaryIO, kind: str) -> None:
    from PIL import Image, UnidentifiedImageError

    expected = "JPEG" if kind == JPEG else "PNG"
    try:
        with Image.open(spool) as img:
            if img.format != expected or img.width * img.height > 80_000_000:
                raise _not_a_document()
            img.verify()
    except ContentError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ContentError(_("L'image est illisible ou endommagée."), code="type") from exc

"""A child's photo: checked by its content, re-encoded without its metadata."""

from __future__ import annotations

from flask_babel import gettext as _

from core.dossier.common import DossierError

PHOTO_MAX_BYTES = 5 * 1024 * 1024
PHOTO_MAX_PIXELS = 40_000_000
PHOTO_MAX_SIDE = 1200
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_photo(data: bytes) -> tuple[bytes, str]:
    """Checks a photo by its content (not its name) and re-encodes it without its metadata.

    Returns (bytes, extension); raises DossierError with a French message.
    """
    if len(data) > PHOTO_MAX_BYTES:
        raise DossierError(_("La photo dépasse la taille maximale de 5 Mo."), field="photo")
    if data.startswith(JPEG_MAGIC):
        kind = "JPEG"
    elif data.startswith(PNG_MAGIC):
        kind = "PNG"
    else:
        raise DossierError(_("Le fichier n'est pas une image JPEG ou PNG."), field="photo")
    import io

    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format != kind or probe.width * probe.height > PHOTO_MAX_PIXELS:
                raise DossierError(_("Le fichier n'est pas une image JPEG ou PNG."), field="photo")
            probe.verify()
        with Image.open(io.BytesIO(data)) as img:
            img = ImageOps.exif_transpose(img)
            img.thumbnail((PHOTO_MAX_SIDE, PHOTO_MAX_SIDE))
            out = io.BytesIO()
            if kind == "JPEG":
                img.convert("RGB").save(out, "JPEG", quality=85)
                return out.getvalue(), "jpg"
            if img.mode not in ("RGB", "RGBA", "L", "LA", "P"):
                img = img.convert("RGBA")
            img.save(out, "PNG", optimize=True)
            return out.getvalue(), "png"
    except DossierError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DossierError(_("Le fichier n'est pas une image JPEG ou PNG."), field="photo") from exc

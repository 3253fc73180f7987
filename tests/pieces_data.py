"""Files and piece types for the pièces justificatives tests."""

from __future__ import annotations

import io

PDF = (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\n"
       b"endobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
       b"<script>alert(document.cookie)</script></svg>")


def png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def jpeg() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 30), (30, 200, 30)).save(out, "JPEG")
    return out.getvalue()


def types_spec(required_for: list[str]) -> dict:
    """Two pieces needed by the given activities (one for the family, one per child) and one not needed."""
    return {
        "retention": {"days_after_expiry": 90, "days_after_refusal": 60},
        "announce": {"days_before_expiry": 30},
        "types": [
            {"code": "domicile", "label": "Justificatif de domicile", "label_en": "Proof of address",
             "concerns": "family", "validity": "months", "months": 3, "required_for": required_for},
            {"code": "assurance", "label": "Attestation d'assurance extrascolaire",
             "label_en": "Out-of-school insurance certificate", "concerns": "child", "validity": "school_year",
             "required_for": required_for},
            {"code": "garde", "label": "Jugement de garde", "concerns": "family", "validity": "unlimited",
             "required_for": []},
        ],
    }

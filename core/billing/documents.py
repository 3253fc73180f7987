"""PDF documents (weasyprint): invoices and attestations, with the commune's header and logo,
French dates and amounts.  Rendered from HTML templates under templates/billing/pdf/."""

from __future__ import annotations

from pathlib import Path

from flask import current_app, render_template


def _logo(tenant) -> str | None:
    name = tenant.setting("branding", "logo", default="")
    if not name:
        return None
    path = Path(current_app.config["TENANTS_DIR"]) / tenant.slug / "static" / name
    return path.resolve().as_uri() if path.is_file() else None


def render_pdf(template: str, *, tenant, **context) -> bytes:
    from weasyprint import HTML

    html = render_template(f"billing/pdf/{template}.html", tenant=tenant, logo=_logo(tenant), **context)
    return HTML(string=html, base_url=str(Path(current_app.root_path))).write_pdf()

"""The family's "Pièces justificatives": each piece the commune asks for, its status, upload and
replace (a plain form, or htmx answering the piece's card), and its own files."""

from __future__ import annotations

from flask import abort, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from blueprints.pieces import bp
from blueprints.pieces.files import file_response
from core import clock
from core.documents import services as svc
from core.documents.content import max_label
from core.documents.models import Piece, PieceType
from core.models import ROLE_PARENT, Child
from extensions import db
from tenants.scoping import get_or_404
from tenants.web import current_tenant, role_required
from web.htmx import is_htmx
from web.transaction import on_busy, rollback_only

# A whole upload request may be a little larger than its file (the form's other fields).
REQUEST_MARGIN = 64 * 1024


@bp.url_value_preprocessor
def _limit_uploads(endpoint, values):
    """Before anything reads the body (the CSRF check does): an upload larger than the limit is
    refused from its Content-Length, without reading it (413, answered by the handler below)."""
    if endpoint == "pieces.upload" and request.method == "POST":
        request.max_content_length = current_app.config["PIECES_MAX_BYTES"] + REQUEST_MARGIN


@bp.errorhandler(413)
def too_large(exc):
    """The body was not read: the piece's card is named in the URL (`?carte=<type>-<child>`), so the
    message goes next to its field — the page (413), or to htmx the card alone (htmx swaps no 4xx)."""
    message = _("Le fichier dépasse la taille maximale de %(size)s.",
                size=max_label(current_app.config["PIECES_MAX_BYTES"]))
    if request.endpoint == "pieces.upload" and current_user.is_authenticated \
            and getattr(current_user, "family_id", None) and current_user.tenant_id == current_tenant().id:
        key = request.args.get("carte", "")
        known = key in {s.key for s in svc.family_space(_family())}
        if is_htmx():
            if known:
                return _slot_fragment(key, error=message)
            response = make_response(_page(errors={"_upload": message}, status=413))
            flash(message, "error")  # the page reloads and says why at its top
            response.headers["HX-Refresh"] = "true"
            return response
        if known:
            return _page(errors={key: message}, status=413, focus=key)
        return _page(errors={"_upload": message}, status=413)
    return render_template("error.html", status=413, title=_("Fichier trop volumineux"), message=message), 413


def _family():
    family = current_user.family
    if family is None:
        abort(404)
    return family


def _page(*, errors: dict | None = None, status: int = 200, focus: str | None = None):
    family = _family()
    slots = svc.family_space(family)
    return render_template("pieces/index.html", slots=slots, errors=errors or {}, focus=focus,
                           expiring=svc.expiring(family.id, tenant=current_tenant()),
                           max_size=max_label(current_app.config["PIECES_MAX_BYTES"]),
                           today=clock.today()), status


@bp.get("/pieces/")
@role_required(ROLE_PARENT)
def index():
    return _page()


def _slot_fragment(slot_key: str, *, message: str | None = None, error: str | None = None, status: int = 200):
    family = _family()
    slot = next((s for s in svc.family_space(family) if s.key == slot_key), None)
    if slot is None:
        abort(404)
    return render_template("pieces/_slot.html", slot=slot, message=message, error=error,
                           max_size=max_label(current_app.config["PIECES_MAX_BYTES"])), status


@bp.post("/pieces/envoyer")
@role_required(ROLE_PARENT)
def upload():
    """Give or replace a piece.  Plain form: back to the page; htmx: the piece's card alone."""
    family = _family()
    piece_type = get_or_404(db.session, PieceType, request.form.get("type"))
    if not piece_type.active:  # a type the commune no longer asks for: the page offers no card for it
        abort(404)
    child = None
    if piece_type.for_child:
        child = get_or_404(db.session, Child, request.form.get("enfant"))
        if child.family_id != family.id:
            abort(404)
    slot_key = f"{piece_type.id}-{child.id if child else 0}"
    upload_file = request.files.get("fichier")
    error = None

    def refused(error: str):
        if is_htmx():
            return _slot_fragment(slot_key, error=error)
        return _page(errors={slot_key: error}, status=422, focus=slot_key)

    on_busy(lambda: refused(_("Réessayez dans un instant.")))
    if upload_file is None or not upload_file.filename:
        error = _("Choisissez le fichier à envoyer (PDF, JPEG ou PNG).")
    else:
        try:
            svc.upload(family=family, user=current_user, piece_type=piece_type, child=child,
                               stream=upload_file.stream, filename=upload_file.filename,
                               tenant_slug=current_tenant().slug,
                               max_bytes=current_app.config["PIECES_MAX_BYTES"])
        except svc.PieceError as err:
            error = err.message
    if error:
        rollback_only()
        return refused(error)
    message = _("« %(piece)s » a bien été envoyée : elle est en attente de validation par la collectivité.",
                piece=svc.piece_label(piece_type, child))
    if is_htmx():
        db.session.flush()
        return _slot_fragment(slot_key, message=message)
    flash(message, "success")
    return redirect(url_for("pieces.index", _anchor=f"piece-{slot_key}"), code=303)


@bp.get("/pieces/<int:piece_id>/fichier")
@role_required(ROLE_PARENT)
def download(piece_id):
    """The family's own file; another family's or commune's answers 404."""
    piece = get_or_404(db.session, Piece, piece_id)
    if current_user.family_id is None or piece.family_id != current_user.family_id:
        abort(404)
    return file_response(piece, inline=request.args.get("voir") == "1",
                         download_name=f"{piece.type.code}-{piece.id}")

from pathlib import Path

from flask import abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user

from blueprints.agenda import bp
from blueprints.agenda.forms import AbsenceForm
from core import agenda as svc
from core import clock
from core.bounds import as_ids
from core.models import ROLE_PARENT, Reservation
from extensions import db
from tenants.scoping import get_or_404
from tenants.web import current_tenant, role_required
from web.transaction import on_busy, on_rollback, rollback_only


def _uploads_root() -> Path:
    """instance/uploads/ (UPLOADS_DIR in the configuration overrides it): never under static/."""
    return Path(current_app.config.get("UPLOADS_DIR") or Path(current_app.instance_path) / "uploads")


def _ids(name: str) -> set[int]:
    return set(as_ids(request.args.getlist(name)))


@bp.get("/agenda")
@role_required(ROLE_PARENT)
def index():
    """Mon agenda / Planning des activités: month, 7-day week, 5-day week or day, with filters."""
    today = clock.today()
    view = svc.parse_view(request.args.get("vue"))
    day = svc.parse_day(request.args.get("date"), svc.default_day(view, today))
    filtered = request.args.get("filtre") == "1"
    child_ids = _ids("enfant") if filtered else None
    activity_ids = _ids("activite") if filtered else None
    agenda = svc.load_agenda(current_user.family_id or 0, view=view, day=day, child_ids=child_ids,
                             activity_ids=activity_ids, today=today)

    base = {"vue": view, "date": day.isoformat()}
    if filtered:
        base.update(filtre="1", enfant=sorted(agenda.shown_children), activite=sorted(agenda.shown_activities))

    def agenda_url(**changes):
        args = dict(base)
        args.update({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in changes.items()})
        return url_for("agenda.index", **args)

    return render_template("agenda/index.html", agenda=agenda, agenda_url=agenda_url, views=svc.VIEWS,
                           view_labels=svc.VIEW_LABELS, status_words=svc.STATUS_WORDS,
                           legend_texts=svc.STATUS_LEGEND, filtered=filtered)


def _own_reservation(reservation_id: int) -> Reservation:
    """Load in the commune (404), then check it is this family's (404 too: never reveal it exists)."""
    res = get_or_404(db.session, Reservation, reservation_id)
    if current_user.family_id is None or res.family_id != current_user.family_id:
        abort(404)
    return res


@bp.get("/absences")
@role_required(ROLE_PARENT)
def absences():
    """"Justifier une absence": the family's booked days, each with its button."""
    upcoming, past = svc.justifiable(current_user.family_id or 0)
    return render_template("agenda/absences.html", upcoming=upcoming, past=past,
                           lookback=svc.ABSENCE_LOOKBACK_DAYS)


@bp.route("/absences/<int:reservation_id>", methods=["GET", "POST"])
@role_required(ROLE_PARENT)
def absence(reservation_id):
    res = _own_reservation(reservation_id)
    item = svc.describe(res)
    refusal = svc.absence_refusal(res)
    form = AbsenceForm()
    status = 200

    def page(refusal, status):
        return render_template("agenda/absence.html", res=res, item=item, form=form, refusal=refusal,
                               status_words=svc.STATUS_WORDS), status

    if request.method == "POST" and refusal is not None:
        status = 409
    elif form.validate_on_submit():
        root = _uploads_root()
        stored = None
        if form.document_bytes:
            stored = svc.store_document(form.document_bytes, form.document_kind, root=root,
                                        tenant_slug=current_tenant().slug)
            on_rollback(lambda: svc.discard_document(stored, root=root))

        def retry():
            flash(_("Le service est très sollicité : réessayez dans un instant."), "error")
            return page(None, 503)

        on_busy(retry)
        try:
            demande = svc.declare_absence(res, user=current_user, motif=form.motif_text(), document=stored)
        except svc.AbsenceError as exc:
            rollback_only()
            refusal, status = exc.message, 409
        else:
            flash(_("Nous avons bien enregistré l'absence de %(child)s (demande N° %(number)s).",
                    child=item.child_name, number=demande.number), "success")
            return redirect(url_for("agenda.index", vue="semaine", date=item.first_day.isoformat()))
    return page(refusal, status)


@bp.get("/absences/<int:reservation_id>/justificatif")
@role_required(ROLE_PARENT)
def document(reservation_id):
    """The family's own document, as a download; another family or commune gets 404."""
    res = _own_reservation(reservation_id)
    if not res.absence_document:
        abort(404)
    path = svc.document_path(res.absence_document, root=_uploads_root(), tenant_slug=current_tenant().slug)
    if path is None:
        abort(404)
    kind = path.suffix.lstrip(".")
    response = send_file(path, mimetype=svc.DOC_MIMETYPES.get(kind, "application/octet-stream"),
                         as_attachment=True, download_name=f"justificatif-absence.{kind}", max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from blueprints.inscriptions import bp
from core import clock
from core.bounds import as_id, as_ids
from core.demandes import DemandeError, create_inscription_demande
from core.documents import services as pieces
from core.documents.content import max_label
from core.dossier.records import family_children
from core.models import INSCRIPTION_ACCEPTED, INSCRIPTION_PENDING, ROLE_PARENT, Activity, Child, Inscription
from extensions import db
from tenants.scoping import get_or_404
from tenants.web import role_required
from web.links import WebLinks
from web.transaction import on_busy, roll_back


def _children() -> list[Child]:
    return family_children(current_user.family_id)


def _status_word(ins: Inscription, today) -> str:
    if ins.status == INSCRIPTION_ACCEPTED and ins.activity.ends_on < today:
        return "terminee"
    return {"pending": "demande_en_cours", "accepted": "reservation_possible", "refused": "refusee"}[ins.status]


@bp.get("/")
@role_required(ROLE_PARENT)
def index():
    children = _children()
    rows = db.session.scalars(select(Inscription).where(Inscription.child_id.in_([c.id for c in children] or [0]))
                              .order_by(Inscription.created_at.desc())).all()
    today = clock.today()
    return render_template("inscriptions/index.html", rows=[(ins, _status_word(ins, today)) for ins in rows])


@bp.route("/nouvelle", methods=["GET", "POST"])
@role_required(ROLE_PARENT)
def new():
    """"Créer une inscription": the activities open for inscription, several children at once."""
    children = _children()
    activities = db.session.scalars(select(Activity).where(Activity.inscription_open.is_(True),
                                                           Activity.archived.is_(False))
                                    .order_by(Activity.position, Activity.name)).all()
    existing = {(i.child_id, i.activity_id): i.status for i in db.session.scalars(select(Inscription).where(
        Inscription.child_id.in_([c.id for c in children] or [0])))}

    def eligible(activity, child):
        age = child.age_on(max(activity.starts_on, clock.today()))
        return ((activity.age_min is None or age >= activity.age_min - 1)
                and (activity.age_max is None or age <= activity.age_max)
                and existing.get((child.id, activity.id)) not in (INSCRIPTION_PENDING, INSCRIPTION_ACCEPTED))

    errors = {}
    piece_errors: dict[str, str] = {}

    def page():
        eligible_ids = {a.id: [c.id for c in children if eligible(a, c)] for a in activities}
        family_id = current_user.family_id or 0
        family_pieces = pieces.family_pieces(family_id)
        piece_types = pieces.types()
        needs = {a.id: pieces.requirements(family_id, a, [c for c in children if c.id in eligible_ids[a.id]],
                                           pieces=family_pieces, piece_types=piece_types) for a in activities}
        return render_template("inscriptions/new.html", activities=activities, children=children, eligible=eligible,
                               eligible_ids=eligible_ids, existing=existing, errors=errors, needs=needs,
                               piece_errors=piece_errors,
                               max_size=max_label(current_app.config["PIECES_MAX_BYTES"])), 422 if errors else 200

    if request.method == "POST":
        activity_id = as_id(request.form.get("activite"))
        activity = next((a for a in activities if a.id == activity_id), None)
        if activity is None:  # not one this page offers: another commune's or none (404), or closed meanwhile
            get_or_404(db.session, Activity, activity_id)
            flash(_("Les inscriptions à cette activité sont fermées."), "error")
        else:
            chosen_ids = set(as_ids(request.form.getlist("enfants")))
            chosen = [c for c in children if c.id in chosen_ids]

            def retry():  # the page again, saying it where the activity's errors show
                errors[activity.id] = _("Réessayez dans un instant.")
                return page()

            on_busy(retry)
            done = _inscribe(activity, chosen, eligible, errors, piece_errors)
            if done is not None:
                return redirect(url_for("demandes.show", number=done.number, nouvelle=1), code=303)
    return page()


def _inscribe(activity: Activity, chosen: list[Child], eligible, errors: dict, piece_errors: dict):
    """The inscription demande for these children (with the files given for the pieces it needs), or
    None with the reason in `errors[activity.id]` (and a file's in `piece_errors`)."""
    if not chosen:
        errors[activity.id] = _("Choisissez au moins un enfant.")
        return None
    if not all(eligible(activity, c) for c in chosen):
        errors[activity.id] = _("Cette activité n'est pas ouverte à l'un des enfants choisis (âge ou inscription déjà faite).")
        return None
    try:
        _pieces_given(activity, chosen, piece_errors)
        if piece_errors:
            raise DemandeError("pieces", _("Un fichier n'a pas pu être enregistré : corrigez-le ci-dessous."))
        demande = create_inscription_demande(user=current_user, family=current_user.family,
                                             activity=activity, children=chosen, links=WebLinks())
    except DemandeError as err:
        roll_back()
        errors[activity.id] = err.message
        return None
    return demande


def _pieces_given(activity, chosen, piece_errors: dict) -> None:
    """The files given with the inscription, for the pieces it still needs: stored "en attente de
    validation" in the family's space (the inscription then waits for their validation)."""
    from tenants.web import current_tenant

    family = current_user.family
    for slot in pieces.requirements(family.id, activity, chosen):
        if slot.state in (pieces.STATE_VALID, pieces.STATE_PENDING):
            continue
        upload = request.files.get(f"piece-{slot.key}")
        if upload is None or not upload.filename:
            continue
        try:
            pieces.upload(family=family, user=current_user, piece_type=slot.type, child=slot.child,
                          stream=upload.stream, filename=upload.filename, tenant_slug=current_tenant().slug,
                          max_bytes=current_app.config["PIECES_MAX_BYTES"])
        except pieces.PieceError as err:
            piece_errors[slot.key] = err.message


@bp.app_template_filter("inscription_label")
def inscription_label(word: str) -> str:
    return {
        "demande_en_cours": _("Demande en cours"),
        "reservation_possible": _("Réservation possible"),
        "refusee": _("Refusée"),
        "terminee": _("Terminée"),
    }.get(word, word)



from __future__ import annotations

from datetime import date, timedelta

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from blueprints.billing import estimate as billing_estimate
from blueprints.reservations import bp
from blueprints.reservations import planning as pl
from blueprints.rush.gate import gate as rush_gate
from blueprints.rush.gate import leave as rush_leave
from core import clock
from core import reservations as booking
from core.bounds import as_id, as_ids
from core.demandes import DemandeError, submit_cart
from core.models import (
    INSCRIPTION_ACCEPTED,
    KIND_UNITS,
    ROLE_PARENT,
    Activity,
    Cart,
    CartItem,
    Child,
    Demande,
    Inscription,
    Slot,
)
from core.reservations import BookingError
from extensions import db
from tenants.scoping import get_or_404
from tenants.web import current_tenant, role_required
from web.htmx import is_htmx
from web.links import WebLinks, safe_next
from web.transaction import RETRY, after_commit, on_busy, roll_back, rollback_only


def _zone() -> str:
    return current_tenant().setting("zone_vacances", default="A")


def _family_children() -> list[Child]:
    if current_user.family_id is None:
        return []
    return db.session.scalars(select(Child).where(Child.family_id == current_user.family_id)
                              .order_by(Child.birth_date)).all()


def _load_cart(cart_id: int, *, must_be_open: bool = True) -> Cart:
    """The family's démarche, or 404 (the wizard's other steps; the planning and a tick read rows:
    `_open_cart`)."""
    cart = get_or_404(db.session, Cart, cart_id)
    if cart is None or cart.family_id != current_user.family_id:
        abort(404)
    if must_be_open and not booking.cart_is_open(cart):
        if cart.status == "open":  # abandoned too long: release its holds now (committed with the redirect)
            booking.cancel_cart(cart, status="expired")
        flash(_("Le temps de votre démarche est écoulé : les places retenues ont été libérées. Recommencez la démarche."),
              "error")
        abort(redirect(url_for("reservations.index")))
    return cart


def _cart_activities(cart: Cart) -> list[Activity]:
    activities = db.session.scalars(select(Activity).where(Activity.id.in_(cart.activity_ids))
                                    .order_by(Activity.position, Activity.id)).all()
    rush_gate(activities)  # opening-day waiting room (planning, ticks)
    return activities


def _cart_scope(cart: Cart):
    activities = _cart_activities(cart)
    children = db.session.scalars(select(Child).where(Child.id.in_(cart.child_ids), Child.family_id == cart.family_id)
                                  .order_by(Child.birth_date)).all()
    return activities, children


# ---------------------------------------------------------------- "Modifier les réservations"

@bp.get("/reservations")
@role_required(ROLE_PARENT)
def index():
    """The table Personne / Activité / Détails / Date with ▶ (accepted inscriptions)."""
    children = _family_children()
    rows = []
    if children:
        rows = db.session.execute(
            select(Inscription, Child, Activity).join(Child, Inscription.child_id == Child.id)
            .join(Activity, Inscription.activity_id == Activity.id)
            .where(Inscription.child_id.in_([c.id for c in children]), Inscription.status == INSCRIPTION_ACCEPTED,
                   Activity.archived.is_(False))
            .order_by(Child.birth_date, Activity.position, Activity.name)).all()
    return render_template("reservations/index.html", rows=rows, has_children=bool(children))


@bp.route("/reservations/<int:activity_id>", methods=["GET", "POST"])
@role_required(ROLE_PARENT)
def step1(activity_id):
    """1 - Choix des personnes (several children, and other activities to do at the same time)."""
    activity = get_or_404(db.session, Activity, activity_id)
    rush_gate([activity])  # opening-day waiting room
    children = _family_children()
    child_ids = [c.id for c in children]
    inscriptions = db.session.scalars(select(Inscription).where(
        Inscription.child_id.in_(child_ids or [0]), Inscription.status == INSCRIPTION_ACCEPTED)).all()
    by_activity: dict[int, set[int]] = {}
    for ins in inscriptions:
        by_activity.setdefault(ins.activity_id, set()).add(ins.child_id)
    if activity.id not in by_activity:
        flash(_("Aucun de vos enfants n'a d'inscription validée à cette activité : commencez par « Créer une inscription »."),
              "error")
        return redirect(url_for("reservations.index"))
    others = db.session.scalars(select(Activity).where(Activity.id.in_(list(by_activity)), Activity.id != activity.id,
                                                       Activity.archived.is_(False))
                                .order_by(Activity.position, Activity.name)).all()
    error = None
    if request.method == "POST":
        chosen_children = set(as_ids(request.form.getlist("enfants")))
        chosen_acts = {activity.id} | set(as_ids(request.form.getlist("activites")))
        allowed_acts = {a for a in chosen_acts if a in by_activity}
        allowed_children = {c for c in chosen_children if any(c in by_activity[a] for a in allowed_acts)}
        if not allowed_children:
            error = _("Choisissez au moins une personne.")
        else:
            acts = db.session.scalars(select(Activity).where(Activity.id.in_(allowed_acts))).all()
            cart = booking.open_cart(user=current_user, family=current_user.family, activity_ids=list(allowed_acts),
                                     child_ids=list(allowed_children),
                                     hold_minutes=max(a.hold_minutes for a in acts))
            billing_estimate.remember(cart.id, cart.family_id)  # prices the démarche while the parent ticks
            return redirect(url_for("reservations.planning", cart_id=cart.id, activite=activity.id))
    preselected = by_activity[activity.id]
    return render_template("reservations/step1.html", activity=activity, children=children, by_activity=by_activity,
                           others=others, preselected=preselected, error=error)


# ---------------------------------------------------------------- step 2: the planning

def _planning_args(cart: Cart, activities):
    activity_id = request.values.get("activite", type=int)
    activity = next((a for a in activities if a.id == activity_id), activities[0])
    view = request.values.get("vue", "semaine")
    view = view if view in pl.VIEWS else "semaine"
    anchor, is_open = pl.parse_date(request.values.get("date")), True
    if anchor is None or not (activity.starts_on - timedelta(days=366) <= anchor <= activity.ends_on + timedelta(days=366)):
        anchor, is_open = pl.first_bookable_day(activity, clock.today())
    filters = pl.Filters(
        themes=set(request.values.getlist("theme")),
        time_slots=set(request.values.getlist("creneau")),
        disciplines=set(request.values.getlist("discipline")),
        age=request.values.get("age", type=int),
    )
    return activity, view, anchor, filters, is_open


def _open_cart(cart_id: int, cart: booking.CartRow | None) -> booking.CartRow:
    """The démarche as read (rows: the planning, a tick) if it is the family's and open, else 404;
    a démarche past its time goes through `_load_cart`, which says why and goes back (releasing
    its holds)."""
    if cart is None or cart.family_id != current_user.family_id:
        abort(404)
    if not booking.cart_is_open(cart):
        _load_cart(cart_id)
    return cart


@bp.get("/demarches/<int:cart_id>/planning")
@role_required(ROLE_PARENT)
def planning(cart_id):
    cart, children, inscribed = booking.read_cart_and_children(cart_id)
    cart = _open_cart(cart_id, cart)
    activities = booking.load_activities(cart.activity_ids, with_units=True, version=cart.activities_version)
    rush_gate(activities)  # opening-day waiting room (planning, ticks)
    if not activities or not children:
        abort(404)
    activity, view, anchor, filters, is_open = _planning_args(cart, activities)
    plan = pl.build(cart, activities, activity, children, view=view, anchor=anchor, zone=_zone(), filters=filters,
                    inscribed=inscribed)
    plan.nothing_open = not is_open
    count = len(plan.ctx.items)  # every item of the démarche (read with it)
    est = billing_estimate.for_cart(cart.id, activities, plan.ctx.items.values())
    template = "reservations/_planning_body.html" if is_htmx() else "reservations/planning.html"
    return render_template(template, cart=cart, plan=plan, count=count, est=est)


def _context_for(cart: Cart, slot_ids: set[int]):
    activities, children = _cart_scope(cart)
    slots = db.session.scalars(select(Slot).where(Slot.id.in_(slot_ids or {0}),
                                                  Slot.activity_id.in_(cart.activity_ids))).all()
    if len(slots) != len(slot_ids):
        abort(404)
    return booking.Context.load(cart=cart, activities=activities, children=children, slots=slots, zone=_zone())


def _summarise(cells: dict, *, want: bool) -> None:
    states = [c.state for c in cells.values()]
    ok = sum(1 for s in states if (s in booking.CHECKED_STATES) == want or s in (booking.WAITLIST, booking.CANCEL))
    refused = len(states) - ok
    if want:
        flash(ngettext("%(num)d case cochée.", "%(num)d cases cochées.", ok), "success")
    else:
        flash(ngettext("%(num)d case décochée.", "%(num)d cases décochées.", ok), "success")
    if refused:
        reasons = sorted({c.message for c in cells.values() if c.reason})
        flash(" ".join([ngettext("%(num)d case n'a pas pu être modifiée.", "%(num)d cases n'ont pas pu être modifiées.",
                                 refused), *reasons]), "error")


@bp.post("/demarches/<int:cart_id>/choix")
@role_required(ROLE_PARENT)
def choose(cart_id):
    """One tick: the desired state of one cell (htmx answers the cell; without JS, back to the planning).

    The hottest request of an opening morning: its first statement locks the démarche (with its
    items), then the slot with the child, its inscription and its booking; the activities are kept
    per process; `set_choices` judges and writes (one more lock where one activity per time slot
    applies)."""
    child_id = as_id(request.form.get("child"))
    slot_id = as_id(request.form.get("slot"))
    if child_id is None or slot_id is None:
        abort(404)
    waitlist = request.form.get("waitlist") == "1"

    def retry():  # a lock not taken in time (the démarche or the place busy elsewhere): the cell as it is
        cart = _load_cart(cart_id)
        if child_id not in cart.child_ids:
            abort(404)
        ctx = _context_for(cart, {slot_id})
        return _tick_answer(cart, ctx, child_id, slot_id, ctx.cell(child_id, slot_id), str(RETRY), waitlist)

    on_busy(retry)
    cart, locked = booking.lock_cart_and_slots(cart_id, [slot_id], [child_id])
    if cart is None:  # not found with this slot and child (set_choices will say not_in_cart: 404), or the
        # démarche itself is not the commune's: read alone, it says which (404, or closed)
        cart = booking.lock_cart(cart_id)
    cart = _open_cart(cart_id, cart)
    if child_id not in cart.child_ids:
        abort(404)
    want = request.form.get(f"c-{child_id}-{slot_id}") == "1" or request.form.get("want") == "1"
    # rows (what the rules and the cell read), kept per process while the commune's activities are unchanged
    activities = booking.load_activities(cart.activity_ids, version=getattr(cart, "activities_version", None))
    rush_gate(activities)  # opening-day waiting room
    ctx = booking.Context(cart=cart, activities={a.id: a for a in activities}, children={}, slots={}, zone=_zone())
    message = None
    try:
        cells = booking.set_choices(ctx, [(child_id, slot_id, want)], waitlist=waitlist, locked=locked)
        cell = cells[(child_id, slot_id)]
    except BookingError as err:
        roll_back()
        if err.code == "not_in_cart":
            abort(404)
        ctx = _context_for(cart, {slot_id})
        cell, message = ctx.cell(child_id, slot_id), err.message
    return _tick_answer(cart, ctx, child_id, slot_id, cell, message, waitlist)


def _tick_answer(cart, ctx, child_id: int, slot_id: int, cell, message, waitlist: bool):
    """htmx: the cell and, beside it, what changed; without JavaScript: back to the planning."""
    if not is_htmx():
        if message or cell.reason:
            flash(message or cell.message, "error")
        return redirect(safe_next(request.form.get("back"), url_for("reservations.planning", cart_id=cart.id)),
                        code=303)
    activity = ctx.activities[ctx.slots[slot_id].activity_id]
    slot = ctx.slots[slot_id]
    count = len(ctx.items)  # every item of the démarche, kept up to date by set_choices
    est = billing_estimate.for_cart(cart.id, ctx.activities.values(), ctx.items.values(), slots=ctx.slots)
    return render_template("reservations/_tick.html", cart=cart, cell=cell, child=ctx.children[child_id], slot=slot,
                           activity=activity, remaining=max(0, booking.online_remaining(activity, slot)),
                           count=count, message=message, children=list(ctx.children.values()), ctx=ctx, est=est,
                           refocus=waitlist)  # the "Liste d'attente" button is gone: focus the new cell


@bp.post("/demarches/<int:cart_id>/planning")
@role_required(ROLE_PARENT)
def planning_submit(cart_id):
    """Without JavaScript: the whole grid is a form; apply the desired state of every shown cell."""
    cart = _load_cart(cart_id)
    shown = []
    for key in request.form.getlist("shown"):  # "<child>-<slot>", written by the page
        child_id, _sep, slot_id = key.partition("-")
        child_id, slot_id = as_id(child_id), as_id(slot_id)
        if child_id is None or slot_id is None:
            abort(400)
        shown.append((child_id, slot_id))
    if shown:
        if not {c for c, _s in shown} <= set(cart.child_ids):
            abort(404)
        ctx = _context_for(cart, {s for _c, s in shown})
        wishes = []
        for child_id, slot_id in shown:
            want = request.form.get(f"c-{child_id}-{slot_id}") == "1"
            if ctx.cell(child_id, slot_id).checked != want:
                wishes.append((child_id, slot_id, want))
        if wishes:
            on_busy(url_for("reservations.planning", cart_id=cart.id))
            try:
                booking.set_choices(ctx, wishes)
            except BookingError as err:
                rollback_only()
                flash(err.message, "error")
    if request.form.get("go") == "recap":
        return redirect(url_for("reservations.recap", cart_id=cart.id), code=303)
    args = {k: v for k, v in request.form.items() if k in ("activite", "vue", "date")}
    return redirect(url_for("reservations.planning", cart_id=cart.id, **args), code=303)


def _bulk(cart: Cart, slots: list, child_ids: list[int], want: bool, *, back: str):
    """Tick or untick these slots for these children, then back to the planning."""
    ctx = _context_for(cart, {s.id for s in slots}) if slots else None
    if ctx is None:
        flash(_("Aucune case ne correspond à ce choix."), "error")
        return redirect(back, code=303)
    wishes = [(c, s.id, want) for s in slots for c in child_ids]
    on_busy(back)
    try:
        cells = booking.set_choices(ctx, wishes)
    except BookingError as err:
        rollback_only()
        flash(err.message, "error")
        return redirect(back, code=303)
    _summarise(cells, want=want)
    return redirect(back, code=303)


@bp.post("/demarches/<int:cart_id>/tout")
@role_required(ROLE_PARENT)
def toggle_all(cart_id):
    """"Tout cocher / Tout décocher" the units of the days shown."""
    cart = _load_cart(cart_id)
    activities, _children = _cart_scope(cart)
    activity, view, anchor, _f, _open = _planning_args(cart, activities)
    start, end, _weeks = pl.date_range(view, anchor)
    want = request.form.get("want") == "1"
    slots = []
    if activity.kind == KIND_UNITS:
        slots = db.session.scalars(select(Slot).where(Slot.activity_id == activity.id, Slot.day >= start,
                                                      Slot.day <= end)).all()
    return _bulk(cart, slots, cart.child_ids, want,
                 back=url_for("reservations.planning", cart_id=cart.id, activite=activity.id, vue=view,
                              date=anchor.isoformat()))


@bp.post("/demarches/<int:cart_id>/periodicite")
@role_required(ROLE_PARENT)
def periodicity(cart_id):
    """"Appliquer une périodicité": these weekdays and units, from one date to another."""
    cart = _load_cart(cart_id)
    activities, _children = _cart_scope(cart)
    activity, view, anchor, _f, _open = _planning_args(cart, activities)
    start, end = pl.parse_date(request.form.get("du")), pl.parse_date(request.form.get("au"))
    weekdays = {int(x) for x in request.form.getlist("jours") if x in {"0", "1", "2", "3", "4", "5", "6"}}
    units = set(request.form.getlist("unites"))
    children = list(cart.child_ids)
    if request.form.getlist("enfants"):
        children = [x for x in as_ids(request.form.getlist("enfants")) if x in cart.child_ids]
    problems = []
    if not start or not end:
        problems.append(_("Indiquez les dates de début et de fin (jj/mm/aaaa)."))
    elif end < start:
        problems.append(_("La date de fin doit être postérieure à la date de début."))
    elif (end - start).days > 366:
        problems.append(_("La périodicité ne peut pas dépasser un an."))
    if not weekdays:
        problems.append(_("Choisissez au moins un jour de la semaine."))
    if not units:
        problems.append(_("Choisissez au moins une unité (Matin, Soir…)."))
    if not children:
        problems.append(_("Choisissez au moins une personne."))
    if activity.kind != KIND_UNITS:
        problems.append(_("La périodicité s'applique aux activités à la journée."))
    if problems:
        for p in problems:
            flash(p, "error")
        return redirect(url_for("reservations.planning", cart_id=cart.id, activite=activity.id, vue=view,
                                date=anchor.isoformat(), periodicite="1"), code=303)
    unit_ids = {u.id for u in activity.units if u.code in units}
    slots = [s for s in db.session.scalars(select(Slot).where(
        Slot.activity_id == activity.id, Slot.day >= start, Slot.day <= end, Slot.unit_id.in_(unit_ids or {0})))
        if s.day.weekday() in weekdays]
    return _bulk(cart, slots, children, request.form.get("want", "1") == "1",
                 back=url_for("reservations.planning", cart_id=cart.id, activite=activity.id, vue=view,
                              date=(start if start else anchor).isoformat()))


# ---------------------------------------------------------------- step 3: le récapitulatif

def _recap_lines(cart: Cart):
    rows = db.session.execute(
        select(CartItem, Slot, Activity, Child).join(Slot, CartItem.slot_id == Slot.id)
        .join(Activity, Slot.activity_id == Activity.id).join(Child, CartItem.child_id == Child.id)
        .where(CartItem.cart_id == cart.id).order_by(Child.birth_date, Slot.day, Slot.time_slot)).all()
    by_child: dict = {}
    for item, slot, activity, child in rows:
        by_child.setdefault(child, []).append((item, booking.describe_slot(slot, activity), activity))
    return by_child


@bp.get("/demarches/<int:cart_id>/recapitulatif")
@role_required(ROLE_PARENT)
def recap(cart_id):
    cart = _load_cart(cart_id)
    activities, children = _cart_scope(cart)
    by_child = _recap_lines(cart)
    others = []
    if by_child:
        inscribed = {(i.child_id, i.activity_id) for i in db.session.scalars(select(Inscription).where(
            Inscription.activity_id.in_(cart.activity_ids), Inscription.status == INSCRIPTION_ACCEPTED))}
        used_acts = {a.id for lines in by_child.values() for _i, _d, a in lines}
        others = [c for c in _family_children() if c not in by_child
                  and any((c.id, a) in inscribed for a in used_acts)]
    items = [item for lines in by_child.values() for item, _label, _activity in lines]
    est = billing_estimate.for_cart(cart.id, activities, items,
                                    pricing=billing_estimate.remember(cart.id, cart.family_id))
    return render_template("reservations/recap.html", cart=cart, by_child=by_child, others=others,
                           activities=activities, est=est)


@bp.post("/demarches/<int:cart_id>/meme-demande")
@role_required(ROLE_PARENT)
def same_for(cart_id):
    """"Effectuer la même demande pour": copy the wishes of the démarche to another child."""
    cart = _load_cart(cart_id)
    target = get_or_404(db.session, Child, request.form.get("enfant"))
    if target.family_id != cart.family_id:
        abort(404)
    items = db.session.scalars(select(CartItem).where(CartItem.cart_id == cart.id,
                                                      CartItem.action == "book")).all()
    if not items:
        flash(_("Votre demande est vide : cochez au moins une case du planning."), "error")
        return redirect(url_for("reservations.recap", cart_id=cart.id))
    if target.id not in cart.child_ids:
        cart.child_ids = sorted(set(cart.child_ids) | {target.id})
        db.session.flush()
    ctx = _context_for(cart, {i.slot_id for i in items})
    ctx.children[target.id] = target
    on_busy(url_for("reservations.recap", cart_id=cart.id))
    cells = booking.set_choices(ctx, [(target.id, s, True) for s in sorted({i.slot_id for i in items})])
    _summarise(cells, want=True)
    return redirect(url_for("reservations.recap", cart_id=cart.id), code=303)


@bp.post("/demarches/<int:cart_id>/valider")
@role_required(ROLE_PARENT)
def submit(cart_id):
    cart = _load_cart(cart_id, must_be_open=False)
    done = db.session.scalars(select(Demande).where(Demande.cart_id == cart.id)).first()
    if done is None:
        if not booking.cart_is_open(cart):
            _load_cart(cart_id)  # says why and redirects
        on_busy(url_for("reservations.recap", cart_id=cart.id))
        try:
            demande = submit_cart(cart, current_user, links=WebLinks())
        except DemandeError as err:
            rollback_only()
            flash(err.message, "error")
            return redirect(url_for("reservations.recap", cart_id=cart.id))
        except IntegrityError:  # a concurrent "Valider" of the same démarche won
            roll_back()
            demande = db.session.scalars(select(Demande).where(Demande.cart_id == cart.id)).first()
            if demande is None:
                raise
        done = demande
        after_commit(lambda: rush_leave(cart))  # the next family in the waiting room may come in
    return redirect(url_for("demandes.show", number=done.number, nouvelle=1), code=303)


@bp.post("/demarches/<int:cart_id>/annuler")
@role_required(ROLE_PARENT)
def cancel(cart_id):
    """"Annuler la démarche": every held place is released at once."""
    cart = _load_cart(cart_id, must_be_open=False)
    if cart.status == "open":
        on_busy(url_for("reservations.recap", cart_id=cart.id))
        booking.cancel_cart(cart)
        after_commit(lambda: rush_leave(cart))
    flash(_("La démarche a été annulée : rien n'a été réservé."), "info")
    return redirect(url_for("reservations.index"))


@bp.app_template_filter("weekday_short")
def weekday_short(day: date) -> str:
    from flask_babel import format_date

    return format_date(day, "EEE dd/MM")


"""Demandes: numbered per commune, lines, a dated history, decisions and their mails.

Statuses as the parent reads them: Déposée, En cours, Traitée positivement,
Traitée négativement (with a motif), Traitée partiellement, Annulée.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.clock import utcnow
from core.locking import lock, lock_one
from core.mail import queue_mail
from core.models import (
    ACTION_BOOK,
    ACTION_CANCEL,
    ACTION_INSCRIPTION,
    ACTION_WAITLIST,
    CART_OPEN,
    CART_SUBMITTED,
    DEMANDE_ACCEPTEE,
    DEMANDE_ANNULEE,
    DEMANDE_DEPOSEE,
    DEMANDE_EN_COURS,
    DEMANDE_LISTE_ATTENTE,
    DEMANDE_OPEN,
    DEMANDE_PARTIELLE,
    DEMANDE_REFUSEE,
    INSCRIPTION_ACCEPTED,
    INSCRIPTION_PENDING,
    INSCRIPTION_REFUSED,
    LINE_ACCEPTED,
    LINE_CANCELLED,
    LINE_PENDING,
    LINE_REFUSED,
    LINE_WAITLIST,
    RES_HELD,
    RES_PENDING,
    RES_RESERVED,
    RES_WAITLIST,
    TYPE_ABSENCE,
    TYPE_INSCRIPTION,
    TYPE_RESERVATION,
    VALIDATION_IMMEDIATE,
    Activity,
    Cart,
    CartItem,
    Child,
    Counter,
    Demande,
    DemandeEvent,
    DemandeLine,
    Inscription,
    Reservation,
    Slot,
    User,
)
from core.reservations import describe_slot, lifecycle, promote_waitlist, slot_dates
from extensions import db

STATUS_LABELS = {
    DEMANDE_DEPOSEE: _l("Déposée"),
    DEMANDE_EN_COURS: _l("En cours"),
    DEMANDE_ACCEPTEE: _l("Traitée positivement"),
    DEMANDE_REFUSEE: _l("Traitée négativement"),
    DEMANDE_PARTIELLE: _l("Traitée partiellement"),
    DEMANDE_ANNULEE: _l("Annulée"),
    DEMANDE_LISTE_ATTENTE: _l("Liste d'attente"),
}
TYPE_LABELS = {
    TYPE_RESERVATION: _l("Réservation de séances"),
    TYPE_INSCRIPTION: _l("Inscription"),
    TYPE_ABSENCE: _l("Justificatif d'absence"),
}
LINE_LABELS = {
    LINE_PENDING: _l("En attente de validation"),
    LINE_ACCEPTED: _l("Acceptée"),
    LINE_REFUSED: _l("Refusée"),
    LINE_WAITLIST: _l("Liste d'attente"),
    LINE_CANCELLED: _l("Annulée"),
}


class DemandeError(Exception):
    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(message)


class AlreadyDecided(DemandeError):
    pass


class PiecesMissing(DemandeError):
    """An inscription cannot be accepted while a piece it needs is not validated and valid."""


def next_number(name: str = "demande") -> int:
    """Allocate the commune's next number under a row lock (gap-free, unique per commune)."""
    counter = db.session.scalars(select(Counter).where(Counter.name == name)).first()
    if counter is None:
        # The commune's first demandes may come at once (an opening morning): one creates the row,
        # the others hit the unique constraint inside a savepoint and use that row.
        try:
            with db.session.begin_nested():
                db.session.add(Counter(name=name, value=0))
        except IntegrityError:
            pass
        counter = db.session.scalars(select(Counter).where(Counter.name == name)).one()
    counter = lock_one(Counter, counter.id)
    counter.value += 1
    return counter.value


def _event(demande: Demande, status: str, actor: str, note: str | None = None) -> None:
    demande.events.append(DemandeEvent(tenant_id=demande.tenant_id, status=status, actor=actor, note=note))


def _status_from_lines(lines: list[DemandeLine]) -> str:
    states = {line.status for line in lines}
    if not states or LINE_PENDING in states:
        return DEMANDE_DEPOSEE
    if states <= {LINE_REFUSED}:
        return DEMANDE_REFUSEE
    if states <= {LINE_WAITLIST, LINE_CANCELLED} and LINE_WAITLIST in states:
        return DEMANDE_LISTE_ATTENTE  # nothing granted yet: not "Traitée positivement"
    if LINE_REFUSED in states or LINE_WAITLIST in states:
        return DEMANDE_PARTIELLE
    return DEMANDE_ACCEPTEE


# ====================================================================== submitting

def submit_cart(cart: Cart, user: User, *, links) -> Demande:
    """"Valider": turn the démarche into a demande, in one transaction (caller commits).

    Two concurrent "Valider" of the same démarche: the cart row is locked, the second
    finds it submitted and gets the same demande (and a unique constraint backs it).
    """
    cart = lock_one(Cart, cart.id)
    existing = db.session.scalars(select(Demande).where(Demande.cart_id == cart.id)).first()
    if existing is not None:
        return existing
    if cart.status != CART_OPEN:
        raise DemandeError("cart_closed", str(_l("Cette démarche est terminée : recommencez depuis « Modifier les réservations ».")))
    items = db.session.scalars(select(CartItem).where(CartItem.cart_id == cart.id).order_by(CartItem.id)).all()
    if not items:
        raise DemandeError("empty", str(_l("Votre demande est vide : cochez au moins une case du planning.")))
    slots = lock(Slot, {i.slot_id for i in items})
    lock(Child, {i.child_id for i in items})  # same order as set_choices: démarche, slots, children
    activities = {a.id: a for a in db.session.scalars(select(Activity).where(
        Activity.id.in_({s.activity_id for s in slots.values()})))}
    reservations = {r.id: r for r in db.session.scalars(select(Reservation).where(
        Reservation.id.in_([i.reservation_id for i in items if i.reservation_id]))
        .execution_options(populate_existing=True))}  # read under the slot locks
    lost = [i for i in items if i.action == ACTION_BOOK and (
        i.reservation_id not in reservations or reservations[i.reservation_id].status != RES_HELD
        or reservations[i.reservation_id].cart_id != cart.id)]
    if lost:
        raise DemandeError("expired", str(_l(
            "Le temps de votre démarche est écoulé et certaines places ont été libérées. "
            "Vérifiez le planning avant de valider.")))

    demande = Demande(number=next_number(), type=TYPE_RESERVATION, family_id=cart.family_id,
                      requester_id=user.id, cart_id=cart.id, status=DEMANDE_DEPOSEE)
    db.session.add(demande)
    children = {c.id: c for c in db.session.scalars(select(Child).where(
        Child.id.in_({i.child_id for i in items})))}
    promote = []
    for position, item in enumerate(items):
        slot, child = slots[item.slot_id], children[item.child_id]
        activity = activities[slot.activity_id]
        immediate = activity.validation_mode == VALIDATION_IMMEDIATE
        label = f"{describe_slot(slot, activity)} — {child.first_name}"
        line = DemandeLine(tenant_id=cart.tenant_id, position=position, action=item.action, child_id=child.id,
                           activity_id=activity.id, slot_id=slot.id, label=label)
        if item.action == ACTION_BOOK:
            res = reservations[item.reservation_id]
            lifecycle.confirm(res, slot, immediate=immediate)
            line.status = LINE_ACCEPTED if immediate else LINE_PENDING
        elif item.action == ACTION_WAITLIST:
            res = db.session.scalars(select(Reservation).where(
                Reservation.child_id == child.id, Reservation.slot_id == slot.id)).first()
            if res is None:
                res = Reservation(tenant_id=cart.tenant_id, child_id=child.id, slot_id=slot.id,
                                  activity_id=activity.id, family_id=child.family_id)
                db.session.add(res)
            if lifecycle.to_waitlist(res, slot):
                promote.append(slot)
            line.status = LINE_WAITLIST
        elif item.action == ACTION_CANCEL:
            res = reservations.get(item.reservation_id)
            if res is not None and res.status in (RES_PENDING, RES_RESERVED, RES_WAITLIST) \
                    and lifecycle.cancel(res, slot):
                promote.append(slot)
            line.status = LINE_ACCEPTED
            line.label = str(_l("Annulation")) + " : " + label
        db.session.flush()
        line.reservation_id = res.id if res is not None else None
        demande.lines.append(line)
        db.session.delete(item)
    demande.status = _status_from_lines(demande.lines)
    acts = sorted({activities[slots[i.slot_id].activity_id].name for i in items})
    kids = sorted({children[i.child_id].first_name for i in items})
    demande.summary = f"{', '.join(acts)} - {', '.join(kids)}"[:300]
    _event(demande, DEMANDE_DEPOSEE, user.display_name)
    if demande.status != DEMANDE_DEPOSEE:
        demande.decided_at = utcnow()
        demande.decided_by = str(_l("Traitement automatique"))
        _event(demande, demande.status, demande.decided_by)
    cart.status = CART_SUBMITTED
    db.session.flush()
    for slot in promote:
        promote_waitlist(slot)
    _mail_demande(demande, user, links, _mail_template(demande))
    return demande


def create_inscription_demande(*, user: User, family, activity: Activity, children: list[Child], links) -> Demande:
    """"Créer une inscription": several children at once, validated by the commune or at once."""
    from core.documents.services import missing, missing_text

    immediate = activity.inscription_validation == VALIDATION_IMMEDIATE
    # pieces justificatives the activity needs: an immediate inscription waits for them
    waiting = {child.id: missing(family.id, activity, [child]) for child in children}
    demande = Demande(number=next_number(), type=TYPE_INSCRIPTION, family_id=family.id, requester_id=user.id,
                      status=DEMANDE_DEPOSEE)
    db.session.add(demande)
    db.session.flush()
    for position, child in enumerate(children):
        ins = db.session.scalars(select(Inscription).where(Inscription.child_id == child.id,
                                                           Inscription.activity_id == activity.id)).first()
        if ins is not None and ins.status in (INSCRIPTION_PENDING, INSCRIPTION_ACCEPTED):
            raise DemandeError("already", str(_l("%(child)s est déjà inscrit(e) ou a déjà une demande en cours pour cette activité.",
                                                 child=child.first_name)))
        if ins is None:
            ins = Inscription(child_id=child.id, activity_id=activity.id)
            db.session.add(ins)
        at_once = immediate and not waiting[child.id]
        ins.status = INSCRIPTION_ACCEPTED if at_once else INSCRIPTION_PENDING
        ins.demande_id = demande.id
        ins.decided_at = utcnow() if at_once else None
        demande.lines.append(DemandeLine(
            tenant_id=demande.tenant_id, position=position, action=ACTION_INSCRIPTION, child_id=child.id,
            activity_id=activity.id, status=LINE_ACCEPTED if at_once else LINE_PENDING,
            label=f"{activity.name} {activity.season} — {child.first_name}"))
    demande.status = _status_from_lines(demande.lines)
    demande.summary = f"{activity.name} {activity.season} - {', '.join(c.first_name for c in children)}"[:300]
    needed = [slot for child in children for slot in waiting[child.id] if slot.child is None or slot.child == child]
    unique = list({slot.key: slot for slot in needed}.values())
    _event(demande, DEMANDE_DEPOSEE, user.display_name,
           str(_l("En attente des pièces justificatives : %(pieces)s", pieces=missing_text(unique))) if unique else None)
    if demande.status != DEMANDE_DEPOSEE:
        demande.decided_at = utcnow()
        demande.decided_by = str(_l("Traitement automatique"))
        _event(demande, demande.status, demande.decided_by)
    db.session.flush()
    _mail_demande(demande, user, links, _mail_template(demande))
    return demande


# ====================================================================== deciding

def decide(demande: Demande, *, accept: set[int], refuse: set[int], motif: str | None, actor: str,
           expected_status: str | None = None, links=None) -> Demande:
    """Accept or refuse lines (all, or line by line).  Refused places go to the waiting list.

    Locks the demande first: of two agents deciding at once, the second gets AlreadyDecided.
    """
    demande = lock_one(Demande, demande.id)
    if demande.status not in DEMANDE_OPEN or (expected_status and demande.status != expected_status):
        raise AlreadyDecided("decided", str(_l("Cette demande a déjà été traitée par quelqu'un d'autre.")))
    lines = {line.id: line for line in demande.lines if line.status == LINE_PENDING}
    slots = lock(Slot, {line.slot_id for line in lines.values() if line.slot_id})
    promote = []
    for line_id, line in lines.items():
        if line_id not in accept and line_id not in refuse:
            continue
        ok = line_id in accept
        if ok and line.action == ACTION_INSCRIPTION:
            _check_pieces(demande, line)
        line.status = LINE_ACCEPTED if ok else LINE_REFUSED
        if not ok:
            line.motif = motif
        if line.action == ACTION_INSCRIPTION:
            ins = db.session.scalars(select(Inscription).where(Inscription.demande_id == demande.id,
                                                               Inscription.child_id == line.child_id)).first()
            if ins is not None:
                ins.status = INSCRIPTION_ACCEPTED if ok else INSCRIPTION_REFUSED
                ins.decided_at = utcnow()
        elif line.reservation_id:
            res = db.session.get(Reservation, line.reservation_id, populate_existing=True)  # read under the slot lock
            if res is not None and res.status == RES_PENDING:
                if ok:
                    lifecycle.accept(res, slots[res.slot_id])
                elif lifecycle.refuse(res, slots[res.slot_id]):
                    promote.append(slots[res.slot_id])
    remaining = [line for line in demande.lines if line.status == LINE_PENDING]
    demande.status = DEMANDE_EN_COURS if remaining else _status_from_lines(demande.lines)
    if motif and demande.status in (DEMANDE_REFUSEE, DEMANDE_PARTIELLE):
        demande.motif = motif
    if not remaining:
        demande.decided_at = utcnow()
        demande.decided_by = actor
    _event(demande, demande.status, actor, motif)
    db.session.flush()
    for slot in promote:
        promote_waitlist(slot)
    if not remaining and demande.requester is not None:
        _mail_demande(demande, demande.requester, links, "demande_decided")
    return demande


def _check_pieces(demande: Demande, line: DemandeLine) -> None:
    from core.documents.services import missing, missing_text

    absent = missing(demande.family_id, line.activity, [line.child])
    if absent:
        raise PiecesMissing("pieces", str(_l("Pièces manquantes au dossier pour %(child)s : %(pieces)s. "
                                             "Validez-les d'abord, ou refusez la demande avec ce motif.",
                                             child=line.child.first_name, pieces=missing_text(absent))))


def cancel_demande(demande: Demande, user: User) -> Demande:
    """A pending demande can be cancelled by its family before the decision."""
    demande = lock_one(Demande, demande.id)
    if demande.status != DEMANDE_DEPOSEE:
        raise AlreadyDecided("decided", str(_l("Cette demande est déjà en cours de traitement : elle ne peut plus être annulée.")))
    slots = lock(Slot, {line.slot_id for line in demande.lines if line.slot_id})
    promote = []
    for line in demande.lines:
        if line.status not in (LINE_PENDING, LINE_WAITLIST):
            continue
        line.status = LINE_CANCELLED
        if line.action == ACTION_INSCRIPTION:
            ins = db.session.scalars(select(Inscription).where(Inscription.demande_id == demande.id,
                                                               Inscription.child_id == line.child_id)).first()
            if ins is not None and ins.status == INSCRIPTION_PENDING:
                db.session.delete(ins)
        elif line.reservation_id:
            res = db.session.get(Reservation, line.reservation_id, populate_existing=True)  # read under the slot lock
            if res is not None and res.status in (RES_PENDING, RES_WAITLIST) \
                    and lifecycle.cancel(res, slots[res.slot_id]):
                promote.append(slots[res.slot_id])
    demande.status = DEMANDE_ANNULEE
    demande.decided_at = utcnow()
    _event(demande, DEMANDE_ANNULEE, user.display_name)
    db.session.flush()
    for slot in promote:
        promote_waitlist(slot)
    return demande


# ====================================================================== mails

def _mail_template(demande: Demande) -> str:
    decided = demande.status in (DEMANDE_ACCEPTEE, DEMANDE_REFUSEE, DEMANDE_PARTIELLE)
    return "demande_decided" if decided else "demande_received"


def _mail_demande(demande: Demande, user: User, links, template: str) -> None:
    if links is None:
        return
    queue_mail(
        to=user.email, template=template, locale=user.locale, user=user,
        context={
            "name": user.display_name,
            "demande_number": demande.number,
            "demande_type": demande.type,
            "deposited_at": demande.created_at.isoformat() if demande.created_at else utcnow().isoformat(),
            "status": demande.status,
            "motif": demande.motif,
            "lines": [line.label for line in demande.lines],
            "refused_lines": [f"{line.label}" + (f" ({line.motif})" if line.motif else "")
                              for line in demande.lines if line.status == LINE_REFUSED],
            "link": links.demande(demande.number),
        },
    )


def on_promoted(res: Reservation, slot: Slot, activity: Activity) -> None:
    """A waiting-list place became free: update the demande line and tell the family."""
    line = db.session.scalars(select(DemandeLine).where(DemandeLine.reservation_id == res.id,
                                                        DemandeLine.status == LINE_WAITLIST)).first()
    immediate = activity.validation_mode == VALIDATION_IMMEDIATE
    if line is not None:
        line.status = LINE_ACCEPTED if immediate else LINE_PENDING
        demande = line.demande
        if not immediate and demande.status not in DEMANDE_OPEN:
            demande.status = DEMANDE_EN_COURS
        elif immediate:
            demande.status = _status_from_lines(demande.lines)
        _event(demande, demande.status, str(_l("Liste d'attente")),
               str(_l("Une place s'est libérée : %(line)s", line=line.label)))
        requester = demande.requester
    else:
        requester = None
    if requester is None:
        requester = db.session.scalars(select(User).where(User.family_id == res.family_id)).first()
    if requester is None:
        return
    child = db.session.get(Child, res.child_id)
    dates = slot_dates(slot)
    number = line.demande.number if line else None
    queue_mail(to=requester.email, template="waitlist_promoted", locale=requester.locale, user=requester,
               context={"name": requester.display_name, "child": child.first_name, "activity": activity.name,
                        "slot": describe_slot(slot, activity), "first_date": dates[0].isoformat(),
                        "status": res.status, "demande_number": number,
                        "path": f"/demandes/{number}" if number else "/agenda"})

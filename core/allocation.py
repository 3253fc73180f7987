"""Pre-reservation lists (Saint-Aubin: "la validation se fera avec l'édition des listes établies
par les services municipaux, communiquées à la fin de la période de pré-réservation").

At the end of the period the agent allocates the places of each session among the pending
pre-reservations: first come first served (demande number), or a lottery whose seed is recorded,
with the priorities the commune sets:

* residents first (``Family.resident``);
* siblings kept together (the children of one family asking the same session get in together or
  not at all);
* children without any place yet first (no place in this activity before the run, nor earlier in
  the run: sessions are allocated in date order).

``compute()`` is a pure function (same inputs, same seed -> same lists).  ``preview()`` records a
run; ``publish()`` recomputes it under the locks, refuses if anything changed since the preview,
then turns every line into accepted (réservé), waiting list or refused, keeps ``slot.taken``
consistent and queues one mail per family.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from core.admin_models import RUN_PREVIEW, RUN_PUBLISHED, RUN_SUPERSEDED, AllocationRun
from core.clock import utcnow
from core.locking import lock
from core.mail import queue_mail
from core.models import (
    ACTION_BOOK,
    ACTION_WAITLIST,
    DEMANDE_ACCEPTEE,
    DEMANDE_EN_COURS,
    DEMANDE_LISTE_ATTENTE,
    DEMANDE_PARTIELLE,
    DEMANDE_REFUSEE,
    LINE_ACCEPTED,
    LINE_CANCELLED,
    LINE_PENDING,
    LINE_REFUSED,
    LINE_WAITLIST,
    RES_ABSENT,
    RES_PENDING,
    RES_RESERVED,
    RES_WAITLIST,
    TYPE_RESERVATION,
    Activity,
    Child,
    Demande,
    DemandeEvent,
    DemandeLine,
    Family,
    Reservation,
    Slot,
    User,
)
from core.reservations import lifecycle
from extensions import db

METHOD_FCFS = "fcfs"
METHOD_LOTTERY = "lottery"
LOSERS_WAITLIST = "waitlist"
LOSERS_REFUSED = "refused"

OUT_ACCEPTED = "accepted"
OUT_WAITLIST = "waitlist"
OUT_REFUSED = "refused"


METHOD_LABELS = {METHOD_FCFS: _l("Premier arrivé, premier servi"), METHOD_LOTTERY: _l("Tirage au sort")}
OUTCOME_LABELS = {OUT_ACCEPTED: _l("Retenu"), OUT_WAITLIST: _l("Liste d'attente"), OUT_REFUSED: _l("Refusé")}

DEFAULT_RULES = {
    "method": METHOD_LOTTERY,
    "residents_first": True,
    "siblings_together": True,
    "unplaced_first": True,
    "losers": LOSERS_WAITLIST,
    "motif": "",
}


class AllocationError(Exception):
    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(message)


# ====================================================================== the pure part

@dataclass(frozen=True)
class Candidate:
    line_id: int
    slot_id: int
    child_id: int
    family_id: int
    resident: bool
    order: tuple  # first come first served: (demande number, line position)


@dataclass(frozen=True)
class Outcome:
    line_id: int
    slot_id: int
    child_id: int
    family_id: int
    outcome: str
    rank: int  # 1-based position in the slot's ranking (waiting-list order for the others)


@dataclass
class Rules:
    method: str = METHOD_LOTTERY
    residents_first: bool = True
    siblings_together: bool = True
    unplaced_first: bool = True
    losers: str = LOSERS_WAITLIST
    motif: str = ""

    @classmethod
    def from_dict(cls, data: dict | None) -> Rules:
        data = dict(DEFAULT_RULES, **(data or {}))
        return cls(method=data["method"] if data["method"] in METHOD_LABELS else METHOD_LOTTERY,
                   residents_first=bool(data["residents_first"]), siblings_together=bool(data["siblings_together"]),
                   unplaced_first=bool(data["unplaced_first"]),
                   losers=data["losers"] if data["losers"] in (LOSERS_WAITLIST, LOSERS_REFUSED) else LOSERS_WAITLIST,
                   motif=str(data.get("motif") or "")[:300])

    def as_dict(self) -> dict:
        return {"method": self.method, "residents_first": self.residents_first,
                "siblings_together": self.siblings_together, "unplaced_first": self.unplaced_first,
                "losers": self.losers, "motif": self.motif}


@dataclass
class _Group:
    members: list[Candidate] = field(default_factory=list)


def compute(*, slots: list[tuple[int, int]], candidates: list[Candidate], rules: Rules, seed: int,
            placed_before: set[int] = frozenset()) -> list[Outcome]:
    """Allocate.  ``slots`` = [(slot_id, free places)] in date order; ``placed_before`` = children who
    already hold a place in the activity.  Deterministic for the same inputs and seed."""
    candidates = sorted(candidates, key=lambda c: (c.slot_id, c.line_id))
    families = sorted({c.family_id for c in candidates})
    if rules.method == METHOD_LOTTERY:
        rng = random.Random(int(seed))
        rng.shuffle(families)
        draw = {family_id: i for i, family_id in enumerate(families)}
    else:
        draw = {}
    placed = set(placed_before)
    out: list[Outcome] = []
    for slot_id, free in slots:
        mine = [c for c in candidates if c.slot_id == slot_id]
        groups: dict[object, _Group] = {}
        for c in mine:
            key = c.family_id if rules.siblings_together else (c.family_id, c.child_id)
            groups.setdefault(key, _Group()).members.append(c)

        def sort_key(group: _Group):
            first = min(group.members, key=lambda c: c.order)
            base = (draw[first.family_id], min(c.child_id for c in group.members)) if draw else first.order
            resident = 0 if (not rules.residents_first or first.resident) else 1
            unplaced = 0 if (not rules.unplaced_first or any(c.child_id not in placed for c in group.members)) else 1
            return (resident, unplaced, base)

        ranked = sorted(groups.values(), key=sort_key)
        left = max(0, int(free))
        rank = 0
        for group in ranked:
            members = sorted(group.members, key=lambda c: (c.order, c.child_id))
            if rules.siblings_together:
                fits = len(members) <= left
                winners = members if fits else []
            else:
                winners = members[:left]
            left -= len(winners)
            for c in members:
                rank += 1
                won = c in winners
                if won:
                    placed.add(c.child_id)
                lost = OUT_WAITLIST if rules.losers == LOSERS_WAITLIST else OUT_REFUSED
                out.append(Outcome(c.line_id, slot_id, c.child_id, c.family_id, OUT_ACCEPTED if won else lost, rank))
    return out


# ====================================================================== reading the database

@dataclass
class Pool:
    activity: Activity
    slots: list[Slot]
    free: dict[int, int]
    candidates: list[Candidate]
    lines: dict[int, DemandeLine]
    reservations: dict[int, Reservation]
    placed_before: set[int]


def published_line_ids(activity_id: int) -> set[int]:
    done = set()
    for run in db.session.scalars(select(AllocationRun).where(AllocationRun.activity_id == activity_id,
                                                              AllocationRun.status == RUN_PUBLISHED)):
        done.update(int(r["line_id"]) for r in run.result or [])
    return done


def _pool(activity: Activity, *, slots: dict[int, Slot] | None = None) -> Pool:
    """The pre-reservations still to allocate: pending or waiting-list lines not yet in a published list."""
    if slots is None:
        slots = {s.id: s for s in db.session.scalars(select(Slot).where(Slot.activity_id == activity.id))}
    done = published_line_ids(activity.id)
    rows = db.session.execute(
        select(DemandeLine, Demande, Reservation)
        .join(Demande, DemandeLine.demande_id == Demande.id)
        .join(Reservation, DemandeLine.reservation_id == Reservation.id)
        .where(DemandeLine.activity_id == activity.id, Demande.type == TYPE_RESERVATION,
               DemandeLine.action.in_((ACTION_BOOK, ACTION_WAITLIST)),
               DemandeLine.status.in_((LINE_PENDING, LINE_WAITLIST)),
               Reservation.status.in_((RES_PENDING, RES_WAITLIST)))
        .order_by(Demande.number, DemandeLine.position)
        .execution_options(populate_existing=True)
    ).all()
    rows = [(line, demande, res) for line, demande, res in rows if line.id not in done and res.slot_id in slots]
    family_ids = {demande.family_id for _l_, demande, _r in rows}
    residents = {f.id: f.resident for f in db.session.scalars(select(Family).where(Family.id.in_(family_ids or {0})))}
    candidates = [Candidate(line_id=line.id, slot_id=res.slot_id, child_id=line.child_id, family_id=demande.family_id,
                            resident=bool(residents.get(demande.family_id)), order=(demande.number, line.position))
                  for line, demande, res in rows]
    # places not in the pool: reserved, absent, held... (a pending pre-reservation of the pool counts in taken)
    pending_in_pool: dict[int, int] = {}
    for _line, _demande, res in rows:
        if res.status == RES_PENDING:
            pending_in_pool[res.slot_id] = pending_in_pool.get(res.slot_id, 0) + 1
    free = {sid: max(0, s.capacity - (s.taken - pending_in_pool.get(sid, 0))) for sid, s in slots.items()}
    placed_before = set(db.session.scalars(select(Reservation.child_id).where(
        Reservation.activity_id == activity.id, Reservation.status.in_((RES_RESERVED, RES_ABSENT)))))
    ordered = sorted(slots.values(), key=lambda s: (s.day, s.start_time or "", s.title, s.id))
    return Pool(activity=activity, slots=ordered, free=free, candidates=candidates,
                lines={line.id: line for line, _d, _r in rows}, reservations={line.id: res for line, _d, res in rows},
                placed_before=placed_before)


def _compute(pool: Pool, rules: Rules, seed: int) -> list[dict]:
    outcomes = compute(slots=[(s.id, pool.free[s.id]) for s in pool.slots], candidates=pool.candidates,
                       rules=rules, seed=seed, placed_before=pool.placed_before)
    return [{"line_id": o.line_id, "slot_id": o.slot_id, "child_id": o.child_id, "family_id": o.family_id,
             "outcome": o.outcome, "rank": o.rank, "free": pool.free[o.slot_id]} for o in outcomes]


def pending_count(activity: Activity) -> int:
    return len(_pool(activity).candidates)


def new_seed() -> int:
    return secrets.randbelow(1_000_000_000)


def preview(activity: Activity, rules: Rules, *, seed: int | None, actor: str) -> AllocationRun:
    """Compute the lists without changing anything and record them (with their seed) as a preview."""
    seed = new_seed() if seed is None else int(seed)
    pool = _pool(activity)
    run = AllocationRun(activity_id=activity.id, method=rules.method, seed=seed, rules=rules.as_dict(),
                        result=_compute(pool, rules, seed), status=RUN_PREVIEW, created_by=actor[:200])
    db.session.add(run)
    for old in db.session.scalars(select(AllocationRun).where(AllocationRun.activity_id == activity.id,
                                                              AllocationRun.status == RUN_PREVIEW)):
        if old is not run:
            old.status = RUN_SUPERSEDED
    db.session.flush()
    return run


@dataclass
class SlotList:
    slot: Slot
    capacity: int
    free: int
    rows: list[dict]

    @property
    def accepted(self) -> int:
        return sum(1 for r in self.rows if r["outcome"] == OUT_ACCEPTED)


def lists_of(run: AllocationRun) -> list[SlotList]:
    """The run's result per session, with children and families, for the preview page."""
    slots = {s.id: s for s in db.session.scalars(select(Slot).where(Slot.activity_id == run.activity_id))}
    result = run.result or []
    children = {c.id: c for c in db.session.scalars(select(Child).where(
        Child.id.in_({r["child_id"] for r in result} or {0})))}
    families = {f.id: f for f in db.session.scalars(select(Family).where(
        Family.id.in_({r["family_id"] for r in result} or {0})))}
    by_slot: dict[int, list[dict]] = {}
    for r in result:
        by_slot.setdefault(r["slot_id"], []).append(dict(r, child=children.get(r["child_id"]),
                                                         family=families.get(r["family_id"])))
    out = []
    for slot in sorted(slots.values(), key=lambda s: (s.day, s.start_time or "", s.title, s.id)):
        rows = sorted(by_slot.get(slot.id, []), key=lambda r: r["rank"])
        if rows:
            out.append(SlotList(slot=slot, capacity=slot.capacity, free=rows[0]["free"], rows=rows))
    return out


# ====================================================================== publishing

def _signature(result: list[dict]) -> list[tuple]:
    return sorted((r["line_id"], r["slot_id"], r["outcome"], r["rank"]) for r in result)


def publish(run: AllocationRun, *, actor: str, links=None) -> AllocationRun:
    """Apply a previewed run, in one transaction (caller commits).

    Locks the demandes concerned, then the slots (the order of core.demandes.decide), recomputes
    the lists with the recorded seed and refuses if they differ from the preview.
    """
    run = lock(AllocationRun, [run.id])[run.id]
    if run.status != RUN_PREVIEW:
        raise AllocationError("not_preview", str(_l("Ces listes ont déjà été publiées ou remplacées par un autre aperçu.")))
    activity = db.session.get(Activity, run.activity_id)
    rules = Rules.from_dict(run.rules)
    first = _pool(activity)
    lock(Demande, {line.demande_id for line in first.lines.values()})
    slots = lock(Slot, [s.id for s in first.slots])
    lifecycle.release_expired(slots)
    pool = _pool(activity, slots=slots)
    result = _compute(pool, rules, run.seed)
    if _signature(result) != _signature(run.result or []):
        run.status = RUN_SUPERSEDED
        fresh = AllocationRun(activity_id=activity.id, method=run.method, seed=run.seed, rules=run.rules,
                              result=result, status=RUN_PREVIEW, created_by=actor[:200])
        db.session.add(fresh)
        db.session.flush()
        raise AllocationError("changed", str(_l(
            "Des pré-réservations ont changé depuis l'aperçu : vérifiez le nouvel aperçu avant de publier.")))
    now = utcnow()
    motif = rules.motif or str(_l("Nombre de places insuffisant"))
    touched: dict[int, Demande] = {}
    for r in result:
        line = pool.lines[r["line_id"]]
        res = pool.reservations[r["line_id"]]
        slot = slots[res.slot_id]
        if r["outcome"] == OUT_ACCEPTED:
            line.status = LINE_ACCEPTED
            line.motif = None
            lifecycle.accept(res, slot)
        elif r["outcome"] == OUT_WAITLIST:
            line.status = LINE_WAITLIST
            # the list's order is the waiting order
            lifecycle.to_waitlist(res, slot, at=now + timedelta(microseconds=r["rank"]))
        else:
            line.status = LINE_REFUSED
            line.motif = motif
            lifecycle.refuse(res, slot)
        touched[line.demande_id] = line.demande
    for demande in touched.values():
        demande.status = _status_after(demande.lines)
        if demande.status in (DEMANDE_REFUSEE, DEMANDE_PARTIELLE) and any(
                line.status == LINE_REFUSED for line in demande.lines):
            demande.motif = motif
        if demande.status != DEMANDE_EN_COURS:
            demande.decided_at = now
            demande.decided_by = actor[:200]
        demande.events.append(DemandeEvent(tenant_id=demande.tenant_id, status=demande.status, actor=actor[:200],
                                           note=str(_l("Listes publiées : %(activity)s", activity=activity.name))))
    run.status = RUN_PUBLISHED
    run.published_at = now
    run.published_by = actor[:200]
    db.session.flush()
    _mail_families(activity, run, pool, touched)
    return run


def _status_after(lines: list[DemandeLine]) -> str:
    states = {line.status for line in lines if line.status != LINE_CANCELLED}
    if LINE_PENDING in states:
        return DEMANDE_EN_COURS
    if not states or states == {LINE_ACCEPTED}:
        return DEMANDE_ACCEPTEE
    if states == {LINE_REFUSED}:
        return DEMANDE_REFUSEE
    if LINE_ACCEPTED not in states:
        return DEMANDE_LISTE_ATTENTE
    return DEMANDE_PARTIELLE


def family_result(outcomes: list[str]) -> str:
    """One word for a family's mail: accepted if any place, else waitlist if any, else refused."""
    if OUT_ACCEPTED in outcomes:
        return OUT_ACCEPTED
    if OUT_WAITLIST in outcomes:
        return OUT_WAITLIST
    return OUT_REFUSED


def _mail_families(activity: Activity, run: AllocationRun, pool: Pool, demandes: dict[int, Demande]) -> None:
    """One mail per family, listing each of its lines with its outcome."""
    by_family: dict[int, list[dict]] = {}
    for r in run.result:
        by_family.setdefault(r["family_id"], []).append(r)
    for family_id, rows in sorted(by_family.items()):
        rows.sort(key=lambda r: r["line_id"])
        lines = [pool.lines[r["line_id"]] for r in rows]
        numbers = sorted({line.demande.number for line in lines})
        requester = next((line.demande.requester for line in lines if line.demande.requester), None)
        if requester is None:
            requester = db.session.scalars(select(User).where(User.family_id == family_id).order_by(User.id)).first()
        if requester is None:
            continue
        texts = [f"{line.label} : {OUTCOME_LABELS[r['outcome']]}" + (f" ({line.motif})" if line.motif else "")
                 for line, r in zip(lines, rows, strict=True)]
        queue_mail(to=requester.email, template="lists_published", locale=requester.locale, user=requester,
                   context={"name": requester.display_name, "activity": activity.name,
                            "result": family_result([r["outcome"] for r in rows]), "lines": texts,
                            "demande_numbers": numbers,
                            "path": f"/demandes/{numbers[0]}" if len(numbers) == 1 else "/demandes"})

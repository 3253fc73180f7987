"""The world the POST sweep works in (tests/test_post_sweep.py): the three communes, each with an
agent, a family (two children, a contact, inscriptions), a neighbour family and three activities,
built once (with the communes' piece types, a validated and a refused piece, a calendar feed); what a route
uses up (a démarche, a demande, a change, a failed mail, a piece to decide…) made fresh for it;
test clients logged in as each kind of user."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select

from core import clock
from extensions import db
from tenants.context import tenant_scope
from tests.conftest import CSRF_RE, PASSWORD

COMMUNES = ("auray", "saint-loubes", "saint-aubin-de-medoc")


@dataclass
class Commune:
    slug: str
    tenant_id: int
    agent_id: int = 0
    family_id: int = 0
    parent_id: int = 0
    kids: list[int] = field(default_factory=list)
    other_family_id: int = 0
    other_parent_id: int = 0
    other_kid: int = 0
    units_id: int = 0        # booked by the day (Matin, Repas, Après-midi)
    sessions_id: int = 0     # pre-reservations (sessions), period over: lists can be drawn and published
    open_id: int = 0         # open for inscription, nobody inscribed
    slots: list[int] = field(default_factory=list)
    session_slots: list[int] = field(default_factory=list)
    contact_id: int = 0
    resp_id: int = 0
    fam_type_id: int = 0     # a piece for the family (3 months), required by the units and the open activity
    kid_type_id: int = 0     # a piece per child (school year), required by the open activity
    free_type_id: int = 0    # a piece for the family without end, required by nothing
    piece_ids: list[int] = field(default_factory=list)  # the family's pieces (validated, refused), then pending ones
    feed_id: int = 0         # the family's calendar feed
    invoice_ids: list[int] = field(default_factory=list)  # the family's published invoices (unpaid), then fresh ones
    mandate_id: int = 0      # the neighbour family's active mandate (its invoices are under debit)

    def ids(self) -> list[int]:
        return [self.family_id, self.other_family_id, *self.kids, self.other_kid, self.units_id, self.sessions_id,
                self.open_id, self.contact_id, self.resp_id, *self.slots[:3], *self.session_slots[:2],
                self.fam_type_id, self.kid_type_id, self.free_type_id, *self.piece_ids[:3], self.feed_id,
                *self.invoice_ids[:2], self.mandate_id]


class World:
    """The three communes, each with an agent, a family (two children, a contact, inscriptions), a
    neighbour family and three activities; objects a route uses up are made fresh for it."""

    def __init__(self, app):
        from werkzeug.security import generate_password_hash

        from tenants.models import Tenant

        self.app = app
        self.hash = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")  # checked cheaply, hundreds of times
        with app.app_context():
            self.tenant_ids = {t.slug: t.id for t in db.session.scalars(select(Tenant))}
            db.session.remove()
        self.n = 0
        self.batch_of: dict[int, int] = {}  # exported debit -> its pain.008 file
        self.watched: dict[str, tuple] = {}
        self.billing: dict[str, dict] = {}    # commune -> its billing settings  # commune -> (transaction swept, receipts before)
        self.c = {slug: self._build(slug) for slug in COMMUNES}
        self.support_id = self._support()

    # -- plumbing

    def inside(self, slug, fn):
        """fn() inside the commune (a request context for links in mails), committed."""
        with self.app.test_request_context(f"/{slug}/"), tenant_scope(self.tenant_ids[slug]):
            try:
                out = fn()
                db.session.commit()
                return out
            finally:
                db.session.remove()

    def _next(self) -> int:
        self.n += 1
        return self.n

    def _user(self, *, role, email, family=None, first="Camille"):
        from core.models import User

        now = clock.utcnow()
        user = User(email=email, first_name=first, last_name="Balayage", password_hash=self.hash, role=role,
                    family=family, activated_at=now, cgu_accepted_at=now, locale="fr")
        db.session.add(user)
        return user

    def _family(self, name, kids=()):
        from core.models import Child, Family

        family = Family(name=name, code=f"SW{self._next():05d}")
        today = clock.today()
        for first, years in kids:
            family.children.append(Child(first_name=first, last_name=name.title(),
                                         birth_date=today.replace(day=1) - timedelta(days=365 * years)))
        db.session.add(family)
        return family

    def _build(self, slug) -> Commune:
        from core import calendar_feed as cf
        from core.activity_config import upsert_activity
        from core.dossier.models import ChildContact
        from core.dossier.records import responsables
        from core.models import INSCRIPTION_ACCEPTED, ROLE_AGENT, ROLE_PARENT, Inscription, Slot

        c = Commune(slug=slug, tenant_id=self.tenant_ids[slug])
        today = clock.today()
        every_day = {"weekdays": [0, 1, 2, 3, 4, 5, 6], "public_holidays": "open"}

        def make():
            agent = self._user(role=ROLE_AGENT, email=f"agent.balayage@{slug}.test", first="Agent")
            family = self._family("BALAYAGE", [("Lina", 6), ("Noé", 9)])
            parent = self._user(role=ROLE_PARENT, email=f"parent.balayage@{slug}.test", family=family)
            other = self._family("VOISIN", [("Sacha", 7)])
            neighbour = self._user(role=ROLE_PARENT, email=f"voisin.balayage@{slug}.test", family=other)
            units = upsert_activity({
                "code": "balayage-jours", "name": "Accueil Balayage", "kind": "units", "season": "2026/2027",
                "starts_on": today - timedelta(days=14), "ends_on": today + timedelta(days=60), "ages": [3, 12],
                "validation": "commune", "calendar": every_day, "hold_minutes": 240,
                "units": [{"code": "matin", "label": "Matin", "capacity": 500},
                          {"code": "repas", "label": "Repas", "capacity": 500},
                          {"code": "apres_midi", "label": "Après-midi", "capacity": 500}]}, zone="A")
            sessions = upsert_activity({
                "code": "balayage-stages", "name": "Stages Balayage", "kind": "sessions", "season": "2026/2027",
                "starts_on": today + timedelta(days=20), "ends_on": today + timedelta(days=40), "ages": [3, 12],
                "validation": "prereservation", "prereservation_until": today - timedelta(days=1),
                "calendar": every_day, "hold_minutes": 240,
                "sessions": [{"title": "Stage cirque", "dates": [(today + timedelta(days=20 + i)).isoformat()
                                                                 for i in range(3)], "places": 2, "ages": [3, 12]},
                             {"title": "Stage voile", "date": (today + timedelta(days=30)).isoformat(), "places": 5,
                              "theme": "Nature", "time_slot": "matin"}]}, zone="A")
            opened = upsert_activity({
                "code": "balayage-inscriptions", "name": "Mercredis Balayage", "kind": "units",
                "season": "2026/2027", "starts_on": today + timedelta(days=7), "ends_on": today + timedelta(days=90),
                "ages": [3, 12], "validation": "commune", "inscription_open": True, "calendar": every_day,
                "units": [{"code": "journee", "label": "Journée", "capacity": 10}]}, zone="A")
            db.session.flush()
            for kid in family.children:
                for act in (units, sessions):
                    db.session.add(Inscription(child_id=kid.id, activity_id=act.id, status=INSCRIPTION_ACCEPTED))
            db.session.add(Inscription(child_id=other.children[0].id, activity_id=units.id,
                                       status=INSCRIPTION_ACCEPTED))
            contact = ChildContact(child_id=family.children[0].id, first_name="Mamie", last_name="Balayage",
                                   phone="06 11 22 33 44", can_pick_up=True, emergency=True)
            db.session.add(contact)
            resp = responsables(family)[0]
            db.session.flush()
            slots = db.session.scalars(select(Slot.id).where(Slot.activity_id == units.id, Slot.day >= today)
                                       .order_by(Slot.day, Slot.id)).all()
            session_slots = db.session.scalars(select(Slot.id).where(Slot.activity_id == sessions.id)
                                               .order_by(Slot.day)).all()
            c.agent_id, c.family_id, c.parent_id = agent.id, family.id, parent.id
            c.kids = [k.id for k in family.children]
            c.other_family_id, c.other_parent_id, c.other_kid = other.id, neighbour.id, other.children[0].id
            c.units_id, c.sessions_id, c.open_id = units.id, sessions.id, opened.id
            c.slots, c.session_slots = list(slots), list(session_slots)
            c.contact_id, c.resp_id = contact.id, resp.id
            self._pieces(c, slug, family, units, opened)
            c.feed_id = cf.create_feed(family.id, parent).id
            self._billing(c, agent, units)

        self.inside(slug, make)
        return c

    def _billing(self, c: Commune, agent, units) -> None:
        """The commune's régie as its billing.toml has it (online payment through the stand-in, SEPA),
        every agent reading IBANs, the tariffs of the sweep's days; the family's two published invoices
        (one due soon, one overdue); the neighbour family under an active mandate, an invoice of its
        planned for debit; the family's elder child booked today (pointage)."""
        from pathlib import Path

        from core.admin_services import update_settings
        from core.billing import mandates
        from core.billing.config import load_file
        from core.dossier.models import FamilyChange
        from core.models import RES_RESERVED, Child, Reservation, Slot
        from tenants.models import Tenant
        from tests.billing_helpers import TEST_BILLING
        from tests.payment_helpers import IBAN_OK, add_invoice

        tenant = db.session.get(Tenant, c.tenant_id)
        # from the commune's file, not its settings: an earlier test of the run may have changed those
        billing = load_file(Path(__file__).resolve().parent.parent / "tenants" / c.slug / "billing.toml")
        billing["regie"] = {**billing["regie"], "iban_readers": [], "online_payment": True}
        billing["tariffs"] = [*billing.get("tariffs", []),
                              *({**t, "activity": units.code} for t in TEST_BILLING["tariffs"])]
        update_settings(tenant, billing=billing)
        self.billing[c.slug] = billing
        db.session.flush()
        c.invoice_ids = [add_invoice(c.family_id, "12.50", due_in=10).id,
                         add_invoice(c.family_id, "7.30", due_in=-5, issued_ago=40).id]
        other = db.session.get(Child, c.other_kid).family
        mandate = mandates.sign(other, agent, holder="Dominique Voisin", iban=IBAN_OK, bic="", accepted=True,
                                actor="Agent Balayage")
        mandates.activate(db.session.get(FamilyChange, mandate.change_id), "Agent Balayage")
        c.mandate_id = mandate.id
        self._debit_planned(c)
        today = clock.today()
        for slot in db.session.scalars(select(Slot).where(Slot.activity_id == units.id, Slot.day == today)):
            db.session.add(Reservation(child_id=c.kids[0], slot_id=slot.id, activity_id=units.id,
                                       family_id=c.family_id, status=RES_RESERVED))
            slot.taken += 1
        db.session.flush()

    def _debit_planned(self, c: Commune) -> int:
        """An invoice of the neighbour family under debit (its mandate is active), as a publication leaves it."""
        from core.billing.runs import _Document
        from core.billing.sepa import plan_debits
        from tests.payment_helpers import add_invoice

        invoice = add_invoice(c.other_family_id, "21.40", due_in=20)
        plan_debits([_Document(invoice.id, invoice.family_id, invoice.regie, invoice.number, invoice.kind,
                               invoice.total)])
        return invoice.id

    def _pieces(self, c: Commune, slug, family, units, opened) -> None:
        """The commune's piece types, a piece of the family validated until soon (announced) and a
        child's piece refused with its motif."""
        from core.documents.config import apply_type
        from core.documents.models import PIECE_REFUSED, PIECE_VALIDATED, PieceType

        specs = [
            {"code": "domicile", "label": "Justificatif de domicile", "label_en": "Proof of address",
             "concerns": "family", "validity": "months", "months": 3, "required_for": [units.code, opened.code]},
            {"code": "assurance", "label": "Attestation d'assurance", "concerns": "child", "validity": "school_year",
             "required_for": [opened.code]},
            {"code": "garde", "label": "Jugement de garde", "concerns": "family", "validity": "unlimited",
             "required_for": []},
        ]
        rows = []
        for position, spec in enumerate(specs):
            row = apply_type(PieceType(), dict(spec, position=position))
            db.session.add(row)
            rows.append(row)
        db.session.flush()
        c.fam_type_id, c.kid_type_id, c.free_type_id = (r.id for r in rows)
        soon = clock.today() + timedelta(days=20)
        valid = self._piece(slug, family.id, None, c.fam_type_id, status=PIECE_VALIDATED, valid_until=soon)
        refused = self._piece(slug, family.id, family.children[0].id, c.kid_type_id, status=PIECE_REFUSED,
                              motif="Document illisible")
        c.piece_ids = [valid.id, refused.id]

    def _piece(self, slug, family_id, child_id, type_id, *, status, valid_until=None, motif=None):
        from core.documents import storage as st
        from core.documents.models import Piece
        from tests.post_sweep import PDF_TINY

        key = st.new_key(slug, "pdf")
        st.get_storage().save(key, io.BytesIO(PDF_TINY), "application/pdf")
        now = clock.utcnow()
        piece = Piece(family_id=family_id, child_id=child_id, type_id=type_id, status=status, storage_key=key,
                      filename="attestation.pdf", content_type="application/pdf", size=len(PDF_TINY),
                      sha256=hashlib.sha256(PDF_TINY).hexdigest(), uploaded_by="Camille Balayage",
                      valid_until=valid_until, motif=motif, decided_at=now, decided_by="Agent Balayage")
        db.session.add(piece)
        db.session.flush()
        return piece

    def _support(self) -> int:
        from core.models import SupportUser

        with self.app.app_context():
            user = SupportUser(email="support.balayage@portail.test", name="Sam Balayage", password_hash=self.hash)
            db.session.add(user)
            db.session.commit()
            out = user.id
            db.session.remove()
        return out

    # -- fresh objects, one per route that uses them up

    def fresh_parent(self, slug, *, family=True) -> int:
        from core.models import ROLE_PARENT

        def make():
            n = self._next()
            fam = self._family(f"NEUF{n}", [("Jade", 8)]) if family else None
            user = self._user(role=ROLE_PARENT, email=f"neuf{n}.balayage@{slug}.test", family=fam)
            db.session.flush()
            return user.id

        return self.inside(slug, make)

    def fresh_family_without_account(self, slug) -> int:
        def make():
            fam = self._family(f"SANSCOMPTE{self._next()}", [("Eli", 5)])
            db.session.flush()
            return fam.id

        return self.inside(slug, make)

    def fresh_child(self, slug) -> int:
        """A new child (7 years old) of the family, inscribed nowhere."""
        from core.models import Child

        c = self.c[slug]

        def make():
            kid = Child(family_id=c.family_id, first_name=f"Rose{self._next()}", last_name="Balayage",
                        birth_date=clock.today().replace(day=1) - timedelta(days=365 * 7))
            db.session.add(kid)
            db.session.flush()
            return kid.id

        return self.inside(slug, make)

    def fresh_cart(self, slug) -> int:
        """An open démarche of the family for a new child of its own (inscribed to both activities, a
        day ticked: the sweep's ticks hold the other children's days) and the second child."""
        from core import reservations as booking
        from core.models import INSCRIPTION_ACCEPTED, Activity, Child, Inscription, Slot, User

        c = self.c[slug]

        def make():
            user = db.session.get(User, c.parent_id)
            kid = Child(family_id=c.family_id, first_name=f"Zoé{self._next()}", last_name="Balayage",
                        birth_date=clock.today().replace(day=1) - timedelta(days=365 * 7))
            db.session.add(kid)
            db.session.flush()
            for act in (c.units_id, c.sessions_id):
                db.session.add(Inscription(child_id=kid.id, activity_id=act, status=INSCRIPTION_ACCEPTED))
            cart = booking.open_cart(user=user, family=user.family, activity_ids=[c.units_id, c.sessions_id],
                                     child_ids=[kid.id, c.kids[1]], hold_minutes=240)
            acts = db.session.scalars(select(Activity).where(Activity.id.in_([c.units_id, c.sessions_id]))).all()
            kids = db.session.scalars(select(Child).where(Child.id.in_([kid.id, c.kids[1]]))).all()
            slots = db.session.scalars(select(Slot).where(Slot.id.in_(c.slots[6:9]))).all()
            ctx = booking.Context.load(cart=cart, activities=acts, children=kids, slots=slots, zone="A")
            cells = booking.set_choices(ctx, [(kid.id, s.id, True) for s in slots])
            assert any(cell.state == booking.HELD for cell in cells.values()), cells
            return cart.id

        return self.inside(slug, make)

    def fresh_demande(self, slug) -> dict:
        """A reservation demande "Déposée" of the family (validated by the commune)."""
        from core.demandes import submit_cart
        from core.models import Cart, Demande, User
        from tests.admin_helpers import Links

        cart_id = self.fresh_cart(slug)
        c = self.c[slug]

        def make():
            demande = submit_cart(db.session.get(Cart, cart_id), db.session.get(User, c.parent_id), links=Links())
            db.session.flush()
            demande = db.session.get(Demande, demande.id)
            return {"id": demande.id, "number": demande.number}

        return self.inside(slug, make)

    def fresh_pending_inscription(self, slug) -> int:
        """A child of the neighbour family waiting for its inscription to be validated."""
        from core.demandes import create_inscription_demande
        from core.models import Activity, Child, Inscription, User
        from tests.admin_helpers import Links

        c = self.c[slug]

        def make():
            user = db.session.get(User, c.other_parent_id)
            kid = Child(family_id=c.other_family_id, first_name=f"Tom{self._next()}", last_name="Voisin",
                        birth_date=clock.today().replace(day=1) - timedelta(days=365 * 6))
            db.session.add(kid)
            db.session.flush()
            create_inscription_demande(user=user, family=user.family, activity=db.session.get(Activity, c.open_id),
                                       children=[kid], links=Links())
            db.session.flush()
            return db.session.scalars(select(Inscription.id).where(Inscription.child_id == kid.id)).one()

        return self.inside(slug, make)

    def fresh_change(self, slug) -> int:
        """A change of the family waiting for the commune (a new child)."""
        from core.dossier.changes import propose_create
        from core.dossier.fields import ENTITY_CHILD
        from core.models import Family, User

        c = self.c[slug]

        def make():
            change = propose_create(
                family=db.session.get(Family, c.family_id), user=db.session.get(User, c.parent_id),
                entity=ENTITY_CHILD, values={"first_name": f"Léo{self._next()}", "last_name": "Balayage",
                                             "birth_date": clock.today() - timedelta(days=800)})
            db.session.flush()
            return change.id

        return self.inside(slug, make)

    def fresh_deletion(self, slug) -> int:
        from core.dossier.deletion import request_account_deletion
        from core.models import User

        user_id = self.fresh_parent(slug)

        def make():
            row = request_account_deletion(db.session.get(User, user_id), "Nous déménageons.")
            db.session.flush()
            return row.id

        return self.inside(slug, make)

    def fresh_failed_mail(self, slug) -> int:
        from core.mail import queue_mail
        from core.models import MAIL_FAILED

        def make():
            mail = queue_mail(to=f"echec{self._next()}@{slug}.test", template="coparent_invitation",
                              context={"name": "Alex", "inviter": "Camille", "family": "BALAYAGE", "days": 7,
                                       "path": "/famille/invitation/x"})
            mail.status, mail.attempts, mail.last_error = MAIL_FAILED, 6, "550 boîte inconnue"
            db.session.flush()
            return mail.id

        return self.inside(slug, make)

    def fresh_run(self, slug) -> int:
        from core import allocation as alloc
        from core.models import Activity

        c = self.c[slug]

        def make():
            run = alloc.preview(db.session.get(Activity, c.sessions_id), alloc.Rules(), seed=7, actor="Agent")
            db.session.flush()
            return run.id

        return self.inside(slug, make)

    def fresh_activity(self, slug, *, booked=False) -> int:
        """An activity of its own: nobody booked it (it can be deleted), or a child has a day (`booked`)."""
        from core.activity_config import upsert_activity
        from core.models import RES_RESERVED, Reservation, Slot

        today = clock.today()
        c = self.c[slug]

        def make():
            n = self._next()
            act = upsert_activity({"code": f"balayage-vide-{n}", "name": f"Activité {n}", "kind": "units",
                                   "season": "2026/2027", "starts_on": today, "ends_on": today + timedelta(days=3),
                                   "calendar": {"weekdays": [0, 1, 2, 3, 4, 5, 6]},
                                   "units": [{"code": "matin", "label": "Matin", "capacity": 3},
                                             {"code": "soir", "label": "Soir", "capacity": 2}]}, zone="A")
            db.session.flush()
            if booked:
                slot = db.session.scalars(select(Slot).where(Slot.activity_id == act.id).order_by(Slot.id)).first()
                db.session.add(Reservation(child_id=c.kids[0], slot_id=slot.id, activity_id=act.id,
                                           family_id=c.family_id, status=RES_RESERVED))
                slot.taken += 1
            return act.id

        return self.inside(slug, make)

    def fresh_contact(self, slug) -> int:
        from core.dossier.models import ChildContact

        c = self.c[slug]

        def make():
            contact = ChildContact(child_id=c.kids[0], first_name=f"Tata{self._next()}", last_name="Balayage",
                                   phone="06 55 44 33 22", can_pick_up=True, emergency=False)
            db.session.add(contact)
            db.session.flush()
            return contact.id

        return self.inside(slug, make)

    def fresh_pending_piece(self, slug) -> int:
        """A piece of the neighbour family given through the service, waiting for the commune: in turn
        for the family (3 months), for its child (school year), without end."""
        from core.documents import services as svc
        from core.documents.models import PieceType
        from core.models import Child, Family, User
        from tests.post_sweep import PDF_TINY, PNG_1PX

        c = self.c[slug]

        def make():
            n = self._next()
            type_id = (c.fam_type_id, c.kid_type_id, c.free_type_id)[n % 3]
            piece_type = db.session.get(PieceType, type_id)
            child = db.session.get(Child, c.other_kid) if piece_type.for_child else None
            data, name = (PDF_TINY, "justificatif.pdf") if n % 2 else (PNG_1PX, "photo.png")
            piece = svc.upload(family=db.session.get(Family, c.other_family_id),
                               user=db.session.get(User, c.other_parent_id), piece_type=piece_type, child=child,
                               stream=io.BytesIO(data), filename=name, tenant_slug=slug)
            c.piece_ids.append(piece.id)
            return piece.id

        return self.inside(slug, make)

    def fresh_piece_type(self, slug, *, active: bool | None = None) -> int:
        """A piece type of its own (the sweep may rename, deactivate or change it): asked for every
        activity, or no longer asked for (in turn unless `active` says)."""
        from core.documents.config import apply_type
        from core.documents.models import PieceType

        def make():
            n = self._next()
            row = apply_type(PieceType(), {"code": f"balayage-{n}", "label": f"Pièce {n}", "concerns": "child",
                                           "validity": "months", "months": 6, "required_for": ["*"],
                                           "position": 50 + n,
                                           "active": n % 2 == 0 if active is None else active})
            db.session.add(row)
            db.session.flush()
            return row.id

        return self.inside(slug, make)

    def feed(self, slug) -> int:
        """The family's active calendar feed (a new one when the sweep revoked it)."""
        from core import calendar_feed as cf
        from core.models import User

        c = self.c[slug]

        def make():
            feed = cf.active_feed(c.family_id) or cf.create_feed(c.family_id, db.session.get(User, c.parent_id))
            c.feed_id = feed.id
            return feed.id

        return self.inside(slug, make)

    def news_index(self, slug) -> int:
        """The first news item of the commune's home page (one is added when the sweep deleted them all)."""
        from core import admin_services as svc
        from tenants.models import Tenant

        def make():
            tenant = db.session.get(Tenant, self.tenant_ids[slug])
            news = list(tenant.setting("news", default=[]) or [])
            if not news:
                svc.update_settings(tenant, news=[{"date": clock.today().isoformat(), "title": {"fr": "Balayage"},
                                                   "body": {"fr": "Une actualité."}}])
            return 0

        return self.inside(slug, make)

    def fresh_reservation(self, slug) -> int:
        """A reserved day of the family, soon: an absence can be declared on it."""
        from core.models import RES_RESERVED, Reservation, Slot

        c = self.c[slug]

        def make():
            n = self._next()
            slot = db.session.get(Slot, c.slots[(3 * n) % len(c.slots)])
            res = Reservation(child_id=c.kids[1], slot_id=slot.id, activity_id=slot.activity_id,
                              family_id=c.family_id, status=RES_RESERVED)
            slot.taken += 1
            db.session.add(res)
            db.session.flush()
            return res.id

        return self.inside(slug, make)

    def invitation_token(self, slug) -> str:
        from core.dossier.membership import invite_coparent
        from core.models import OutboxMail, User

        user_id = self.fresh_parent(slug)

        def make():
            user = db.session.get(User, user_id)
            invite_coparent(family=user.family, inviter=user, email=f"invite{self._next()}@{slug}.test",
                            first_name="Alex", last_name="Invité")
            db.session.flush()
            mail = db.session.scalars(select(OutboxMail).order_by(OutboxMail.id.desc())).first()
            return mail.context["path"].rsplit("/", 1)[1]

        return self.inside(slug, make)

    def reset_token(self, slug) -> str:
        from core import accounts
        from core.models import User

        user_id = self.fresh_parent(slug)
        return self.inside(slug, lambda: accounts.issue_token(db.session.get(User, user_id), "reset", 2))

    # -- billing and payments: what a route uses up

    def fresh_invoice(self, slug, *, due_in: int = 10, issued_ago: int = 5, family_id: int | None = None) -> int:
        """A published invoice of the family (unpaid), due in `due_in` days."""
        from tests.payment_helpers import add_invoice

        c = self.c[slug]

        def make():
            invoice = add_invoice(family_id or c.family_id, "12.50", due_in=due_in, issued_ago=issued_ago)
            c.invoice_ids.append(invoice.id)
            return invoice.id

        return self.inside(slug, make)

    def family_to_bill(self, slug) -> int:
        """The family, with an invoice to pay (the sweep may have paid the others)."""
        self.fresh_invoice(slug)
        return self.c[slug].family_id

    def fresh_billing_run(self, slug) -> int:
        """A computed draft of this month for an activity of its own, with an adjustment line of the
        family (something to publish)."""
        from core.billing import runs

        activity_id = self.fresh_activity(slug)
        c = self.c[slug]

        def make():
            run = runs.create_run(clock.today().replace(day=1), [activity_id], actor="Agent Balayage")
            runs.add_adjustment(run.id, c.family_id, label="Régularisation", amount_raw="4,20",
                                actor="Agent Balayage")
            runs.compute(run.id, actor="Agent Balayage")
            return run.id

        return self.inside(slug, make)

    def fresh_receipt(self, slug) -> int:
        """A counter payment (cash) over a new invoice of the family."""
        from core.billing import payments

        invoice_id = self.fresh_invoice(slug)
        c = self.c[slug]

        def make():
            receipt = payments.record_counter_payment(c.family_id, [invoice_id], amount_raw="12,50",
                                                      paid_on=clock.today(), method="especes", reference="",
                                                      actor="Agent Balayage")
            return receipt.id

        return self.inside(slug, make)

    def fresh_billed_family(self, slug) -> int:
        """A family of its own (no mandate yet), with an invoice."""
        family_id = self.fresh_family_without_account(slug)
        self.fresh_invoice(slug, family_id=family_id)
        return family_id

    def fresh_mandate(self, slug) -> int:
        """A mandate of a family of its own, recorded on paper: waiting for validation, or (every other
        one) active."""
        from core.billing import mandates
        from core.dossier.models import FamilyChange
        from core.models import Family, User
        from tests.payment_helpers import IBAN_OK

        family_id = self.fresh_family_without_account(slug)
        c = self.c[slug]

        def make():
            mandate = mandates.sign(db.session.get(Family, family_id), db.session.get(User, c.agent_id),
                                    holder="Alix Mandat", iban=IBAN_OK, bic="", accepted=True, actor="Agent Balayage")
            if self._next() % 2:
                mandates.activate(db.session.get(FamilyChange, mandate.change_id), "Agent Balayage")
            return mandate.id

        return self.inside(slug, make)

    def debit_planned(self, slug) -> int:
        """An invoice of the neighbour family planned for debit (the file then has something to take)."""
        return self.inside(slug, lambda: self._debit_planned(self.c[slug]))

    def fresh_exported_debit(self, slug) -> int:
        """A debit sent to the bank in a pain.008 (it can be rejected); its file is `self.batch_of[id]`."""
        from core.billing import sepa
        from core.billing.bank import earliest_collection
        from core.billing.payment_models import Debit
        from core.billing.runs import config
        from core.models import User

        invoice_id = self.debit_planned(slug)
        c = self.c[slug]

        def make():
            day = earliest_collection(clock.today(), config().regie.sepa_lead_days)
            batch = sepa.export(day, agent=db.session.get(User, c.agent_id), actor="Agent Balayage")
            debit = db.session.scalars(select(Debit).where(Debit.invoice_id == invoice_id)).one()
            return debit.id, batch.id

        debit_id, batch_id = self.inside(slug, make)
        self.batch_of[debit_id] = batch_id
        return debit_id

    def fresh_qf_family(self, slug) -> int:
        """A family of its own whose request to change its quotient (a justificatif) waits for the commune."""
        from core.billing import quotients as qfs
        from core.models import Family, User
        from tests.post_sweep import PDF_TINY

        user_id = self.fresh_parent(slug)

        def make():
            user = db.session.get(User, user_id)
            name = qfs.store_justificatif(slug, PDF_TINY)
            qfs.request_change(db.session.get(Family, user.family_id), user, document=name, value="640",
                               comment="Nouvelle attestation CAF")
            return user.family_id

        return self.inside(slug, make)

    def start_payment(self, slug) -> tuple[int, str]:
        """The family starts paying a new invoice online: (transaction id, the stand-in page's URL)."""
        from flask import url_for

        from core.billing import online
        from core.models import User

        invoice_id = self.fresh_invoice(slug)
        c = self.c[slug]

        def make():
            user = db.session.get(User, c.parent_id)
            tx, url = online.start(c.family_id, [invoice_id], user=user, email=user.email,
                                   return_url=lambda tx_id: url_for("billing.payment_return", tenant=slug,
                                                                    tx_id=tx_id, _external=True),
                                   notify_url=url_for("billing.payment_notify", tenant=slug, _external=True),
                                   origin="Balayage")
            return tx.id, url

        return self.inside(slug, make)

    def standin_page(self, slug) -> tuple[int, str]:
        """(transaction id, the stand-in payment page (path and query)) of a payment just started."""
        from urllib.parse import urlsplit

        tx_id, url = self.start_payment(slug)
        parts = urlsplit(url)
        return tx_id, f"{parts.path}?{parts.query}"

    def notification(self, slug, outcome: str = "ok") -> tuple[int, dict]:
        """(transaction id, what the stand-in sends the notification URL) for a payment just started."""
        from urllib.parse import parse_qs, urlsplit

        from core.billing import online

        tx_id, url = self.start_payment(slug)
        fields = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        with self.app.app_context():
            return tx_id, online.standin_notification(fields, outcome)

    def put_back_billing(self, slug) -> None:
        """The commune's régie and tariffs as the world set them (after a sweep of the Tarifs form)."""
        from core.admin_services import update_settings
        from tenants.models import Tenant

        self.inside(slug, lambda: update_settings(db.session.get(Tenant, self.tenant_ids[slug]),
                                                  billing=self.billing[slug]))

    # -- users

    def emails(self, slug) -> list[str]:
        return [f"parent.balayage@{slug}.test", f"agent.balayage@{slug}.test", "support.balayage@portail.test"]

    def client(self, role: str, slug: str, *, fresh: bool = False):
        """A test client as this user: parent, agent, anonymous, support (in /support/) or support_agent
        (a support member inside the commune, through the real switch)."""
        client = self.app.test_client()
        if role in ("parent", "agent"):
            c = self.c[slug]
            user_id = self.fresh_parent(slug) if fresh and role == "parent" else (
                c.parent_id if role == "parent" else c.agent_id)
            with client.session_transaction(path=f"/{slug}/") as s:
                s["_user_id"], s["_fresh"] = f"u:{user_id}", True
        elif role in ("support", "support_agent"):
            with client.session_transaction(path="/support/") as s:
                s["_user_id"], s["_fresh"] = f"s:{self.support_id}", True
            if role == "support_agent":
                token = csrf_of(client.get("/support/").get_data(as_text=True))
                res = client.post(f"/support/communes/{slug}/entrer", data={"csrf_token": token})
                assert res.status_code == 302, res.status_code
                assert client.get(res.headers["Location"]).status_code == 302
        return client


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "pas de jeton CSRF sur la page"
    return match.group(1) or match.group(2)

"""Command-line interface: flask tenants|demo-data|support|accounts|translate|worker|mail."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import click
from flask import current_app
from sqlalchemy import select

from extensions import db

# where the user-facing strings are (pybabel extract): `flask translate update` and the catalogue test
TRANSLATED_SOURCES = ("app.py", "cli.py", "core", "blueprints", "web", "tenants", "jobs", "templates")

ROOT = Path(__file__).resolve().parent
DEMO_PASSWORD = "Portail-Demo-2026"


def sync_tenants(update: bool = False) -> list[str]:
    """Communes of the folders: new ones created with their types of pièces justificatives; with
    `update`, the settings (and piece types) of existing ones overwritten by their files."""
    from core.documents.config import load_folder_pieces
    from tenants.context import tenant_scope
    from tenants.models import Tenant, tenant_by_slug
    from tenants.registry import discover

    done = []
    for folder in discover(current_app.config["TENANTS_DIR"]):
        done.extend(f"! {note}" for note in folder.notes)
        tenant = tenant_by_slug(folder.slug)
        if tenant is None:
            tenant = Tenant(slug=folder.slug, name=folder.name, settings=folder.settings)
            db.session.add(tenant)
            db.session.flush()
            done.append(f"+ {folder.slug}")
        elif update:
            tenant.name = folder.name
            tenant.settings = folder.settings
            done.append(f"~ {folder.slug}")
        elif "billing" in folder.settings and "billing" not in (tenant.settings or {}):
            tenant.settings = {**(tenant.settings or {}), "billing": folder.settings["billing"]}  # a new file only
            done.append(f"~ {folder.slug} (facturation)")
            continue
        else:
            continue
        with tenant_scope(tenant.id):
            load_folder_pieces(tenant, folder.path, update=update)
    db.session.commit()
    return done


DEMO_WRITTEN_ON = "2026-12-01"  # the demo's dates (activities.toml, demo.toml) are written as of this day
YEAR_OF_WEEKS = 364              # whole weeks: a shifted date keeps its weekday


def _shift_dates(node, days: int):
    """A copy of a TOML tree with every date moved by `days`."""
    from datetime import date, datetime, timedelta

    if isinstance(node, dict):
        return {k: _shift_dates(v, days) for k, v in node.items()}
    if isinstance(node, list):
        return [_shift_dates(v, days) for v in node]
    if isinstance(node, date) and not isinstance(node, datetime):
        return node + timedelta(days=days)
    return node


def _last_day(spec: dict):
    """The last day of an activity that can be booked: its last session, or the end of its period."""
    days = [d for session in spec.get("sessions", []) for d in session.get("dates", [session.get("date")]) if d]
    return max(days) if days else spec["ends_on"]


def demo_years(until, today) -> int:
    """How many 52-week years to move a demo date so that it is not over (at least two weeks ahead):
    `make run` shows open weeks to book, whatever the day."""
    from datetime import timedelta

    years = 0
    while until + timedelta(days=years * YEAR_OF_WEEKS) < today + timedelta(days=14):
        years += 1
    return years


def demo_aging():
    """Demo children keep their age: their birth dates move by the whole 52-week years elapsed since
    the demo was written."""
    from datetime import date, timedelta

    from core import clock

    years = max(0, (clock.today() - date.fromisoformat(DEMO_WRITTEN_ON)).days // YEAR_OF_WEEKS)
    return timedelta(days=years * YEAR_OF_WEEKS)


def load_tenant_activities(tenant, folder, *, demo: bool = False) -> list:
    """The commune folder's activities.toml (inside the commune's scope).  For the demo, an activity
    whose period is over is moved by whole 52-week years until it is not (the file stays the truth)."""
    from core import clock
    from core.activity_config import load_activities

    path = folder.path / "activities.toml"
    if not path.is_file():
        return []
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    if demo:
        today = clock.today()
        data["activities"] = [_shift_dates(spec, demo_years(_last_day(spec), today) * YEAR_OF_WEEKS)
                              for spec in data.get("activities", [])]
    return load_activities(data, zone=tenant.setting("zone_vacances", default="A"))


def load_demo_data() -> list[str]:
    """Invented families, agents and children for each commune folder's demo.toml."""
    from datetime import date

    from core.accounts import hash_password, normalize_email
    from core.clock import utcnow
    from core.models import (
        INSCRIPTION_ACCEPTED,
        ROLE_AGENT,
        ROLE_PARENT,
        Activity,
        Child,
        Family,
        Inscription,
        SupportUser,
        User,
    )
    from tenants.context import tenant_scope
    from tenants.models import tenant_by_slug
    from tenants.registry import discover

    report = sync_tenants()
    pw = hash_password(DEMO_PASSWORD)
    now = utcnow()
    aging = demo_aging()
    for folder in discover(current_app.config["TENANTS_DIR"]):
        if not folder.demo_file.is_file():
            continue
        with open(folder.demo_file, "rb") as fh:
            demo = tomllib.load(fh)
        tenant = tenant_by_slug(folder.slug)
        with tenant_scope(tenant.id):
            acts = load_tenant_activities(tenant, folder, demo=True)
            report.extend(f"  {folder.slug}: activité {a.code}" for a in acts)
            from core.documents.config import load_folder_pieces

            pieces = load_folder_pieces(tenant, folder.path)
            if pieces:
                report.append(f"  {folder.slug}: {len(pieces)} type(s) de pièces justificatives")
            for agent in demo.get("agents", []):
                email = normalize_email(agent["email"])
                if db.session.scalars(select(User).where(User.email == email)).first():
                    continue
                db.session.add(User(email=email, first_name=agent["first_name"], last_name=agent["last_name"],
                                    password_hash=pw, role=ROLE_AGENT, activated_at=now, cgu_accepted_at=now))
                report.append(f"  {folder.slug}: agent {email}")
            for fam in demo.get("families", []):
                if db.session.scalars(select(Family).where(Family.code == fam["code"])).first():
                    continue
                family = Family(name=fam["name"], code=fam["code"])
                db.session.add(family)
                for child in fam.get("children", []):
                    birth = child["birth_date"]
                    kid = Child(tenant_id=tenant.id, first_name=child["first_name"], last_name=child["last_name"],
                                birth_date=(birth if isinstance(birth, date) else date.fromisoformat(birth)) + aging,
                                school=child.get("school"), class_name=child.get("class_name"))
                    family.children.append(kid)
                    for code in child.get("inscriptions", []):
                        activity = db.session.scalars(select(Activity).where(Activity.code == code)).one()
                        db.session.add(Inscription(tenant_id=tenant.id, child=kid, activity_id=activity.id,
                                                   status=INSCRIPTION_ACCEPTED, decided_at=now))
                for parent in fam.get("parents", []):
                    email = normalize_email(parent["email"])
                    db.session.add(User(email=email, first_name=parent["first_name"],
                                        last_name=parent["last_name"], password_hash=pw, role=ROLE_PARENT,
                                        family=family, activated_at=now, cgu_accepted_at=now, locale="fr"))
                    report.append(f"  {folder.slug}: famille {email}")
            db.session.commit()
    for folder in discover(current_app.config["TENANTS_DIR"]):
        tenant = tenant_by_slug(folder.slug)
        with tenant_scope(tenant.id):
            report.extend(load_demo_billing(tenant))
            db.session.commit()
    if not db.session.scalars(select(SupportUser).where(SupportUser.email == "support@portail.test")).first():
        db.session.add(SupportUser(email="support@portail.test", name="Support Portail", password_hash=pw))
        db.session.commit()
        report.append("  support support@portail.test")
    return report


DEMO_BILLED_DAYS = 4  # demo bookings per child and activity in each billed month


def load_demo_billing(tenant) -> list[str]:
    """The money side of the demo, relative to the clock (`make run` shows it whatever the day):
    each demo family has a QF and bookings in the two months before this one; the month before
    last is invoiced and paid, last month invoiced and not paid — both by real invoicing runs.

    Bookings go on the activity's own dates of that month (the first four days, one place per day
    and time slot).  A demo activity whose configured dates leave that month out (Auray's holidays,
    Saint-Aubin's stages begin later) is made to cover it: its period starts earlier and it gets
    demo dates there (units on the month's first weekdays; a session per time slot of its
    programme; a stage over two days for an activity of stages), which the report names."""
    from datetime import timedelta

    from core import calendar as cal
    from core import clock
    from core.billing import config as bconf
    from core.billing import invoices as inv
    from core.billing import runs
    from core.billing.models import BillingRun, Invoice
    from core.billing.quotients import record
    from core.models import (
        INSCRIPTION_ACCEPTED,
        RES_RESERVED,
        Activity,
        Child,
        Family,
        Inscription,
        Reservation,
        Slot,
    )

    if not bconf.for_tenant(tenant).tariffs or db.session.scalars(select(BillingRun)).first() is not None:
        return []
    today = clock.today()
    last = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    before = (last - timedelta(days=1)).replace(day=1)
    families = db.session.scalars(select(Family).order_by(Family.id)).all()
    for n, family in enumerate(families):
        record(family, value=620 + 180 * n, source="caf", valid_from=before, valid_to=None, agent_name="Démo")
    pairs = db.session.execute(select(Inscription.child_id, Inscription.activity_id, Child.family_id)
                               .join(Child, Child.id == Inscription.child_id)
                               .where(Inscription.status == INSCRIPTION_ACCEPTED)
                               .order_by(Inscription.activity_id, Inscription.child_id)).all()
    activity_ids = sorted({a for _c, a, _f in pairs})
    if not activity_ids:
        return []
    out = []
    activities = db.session.scalars(select(Activity).where(Activity.id.in_(activity_ids)).order_by(Activity.id)).all()
    for month in (before, last):
        end = (month + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        for activity in activities:
            slots = db.session.scalars(select(Slot).where(Slot.activity_id == activity.id, Slot.day >= month,
                                                          Slot.day <= end).order_by(Slot.day, Slot.id)).all()
            if not slots:
                slots = _demo_dates(activity, month, end, cal)
                activity.starts_on = min(activity.starts_on, month)
                out.append(f"  {tenant.slug}: {activity.code} couvre {month:%m/%Y} par des dates de démonstration "
                           f"(sa configuration n'y a pas de dates)")
            days = sorted({s.day for s in slots})[:DEMO_BILLED_DAYS]
            chosen: dict = {}
            for slot in slots:   # one place per day and time slot (Klub: one activity per time slot)
                if slot.day in days:
                    chosen.setdefault((slot.day, slot.unit_id, slot.time_slot), slot)
            for child_id, activity_id, family_id in pairs:
                if activity_id != activity.id:
                    continue
                for slot in chosen.values():
                    db.session.add(Reservation(child_id=child_id, slot_id=slot.id, activity_id=activity.id,
                                               family_id=family_id, status=RES_RESERVED))
                    slot.taken += 1
        db.session.flush()
    for month in (before, last):
        run = runs.create_run(month, activity_ids, actor="Démo")
        runs.compute(run.id, actor="Démo")
        published = runs.publish(run.id, actor="Démo")
        out.append(f"  {tenant.slug}: facturation de {month:%m/%Y} publiée ({len(published)} facture(s))")
        if month == before:
            for invoice in db.session.scalars(select(Invoice).where(Invoice.id.in_(published))):
                [st] = inv.statements([invoice])
                if st.balance > 0:
                    inv.record_payment(invoice, amount_raw=f"{st.balance}", paid_on=today, method="cheque",
                                       reference="Démo", actor="Démo")
    return out


def _demo_dates(activity, first, last, cal) -> list:
    """Demo dates of an activity in the month [first, last] that its configuration leaves out."""
    from datetime import timedelta

    from core.models import Slot

    weekdays = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    weekdays = [d for d in weekdays if d.weekday() < 5 and not cal.is_public_holiday(d)]
    slots = []
    if activity.units:
        for day in weekdays[:DEMO_BILLED_DAYS]:
            for unit in activity.units:
                slots.append(Slot(activity_id=activity.id, unit_id=unit.id, day=day, last_day=day,
                                  dates=[day.isoformat()], title="", time_slot=unit.code, capacity=unit.capacity,
                                  taken=0))
    else:
        programme = db.session.scalars(select(Slot).where(Slot.activity_id == activity.id)
                                       .order_by(Slot.day, Slot.start_time, Slot.id)).all()
        if any(s.last_day > s.day for s in programme):   # an activity of stages: one stage of two days
            model = next(s for s in programme if s.last_day > s.day)
            days = weekdays[:2]
            slots.append(Slot(activity_id=activity.id, day=days[0], last_day=days[-1],
                              dates=[d.isoformat() for d in days], title="Stage découverte", time_slot=model.time_slot,
                              start_time=model.start_time, end_time=model.end_time, theme=model.theme,
                              discipline=model.discipline, capacity=model.capacity, taken=0))
        else:   # a session per time slot of its programme, on each demo day
            by_time_slot: dict = {}
            for s in programme:
                by_time_slot.setdefault(s.time_slot, s)
            models = list(by_time_slot.values()) or [None]
            for day in weekdays[:DEMO_BILLED_DAYS]:
                for model in models:
                    slots.append(Slot(activity_id=activity.id, day=day, last_day=day, dates=[day.isoformat()],
                                      title=model.title if model else "Journée découverte",
                                      time_slot=model.time_slot if model else "journee",
                                      start_time=model.start_time if model else None,
                                      end_time=model.end_time if model else None,
                                      theme=model.theme if model else None, capacity=model.capacity if model else 12,
                                      taken=0))
    db.session.add_all(slots)
    db.session.flush()
    return slots


def fill_french_plurals() -> None:
    """French is the source language; its catalogue only carries the plural forms, so that
    "0 modification" follows the French rule (n > 1) instead of the English one."""
    from babel.messages.pofile import read_po, write_po

    path = ROOT / "translations" / "fr" / "LC_MESSAGES" / "messages.po"
    with open(path, "rb") as fh:
        catalog = read_po(fh, locale="fr")
    for message in catalog:
        if message.id and isinstance(message.id, tuple):
            message.string = (message.id[0], message.id[1])
        elif message.id:
            message.string = ""
        message.flags.discard("fuzzy")
    with open(path, "wb") as fh:
        write_po(fh, catalog, width=76)


def register(app) -> None:
    @app.cli.group()
    def tenants():
        """Communes (one folder each under tenants/)."""

    @tenants.command("sync")
    @click.option("--update", is_flag=True, help="Overwrite the settings of communes already in the database.")
    def tenants_sync(update):
        for line in sync_tenants(update) or ["(rien à faire)"]:
            click.echo(line)

    @tenants.command("activities")
    @click.argument("slug")
    def tenants_activities(slug):
        """(Re)load a commune's activities.toml: creates or updates activities and their slots."""
        from tenants.context import tenant_scope
        from tenants.models import tenant_by_slug
        from tenants.registry import discover

        folder = next((f for f in discover(current_app.config["TENANTS_DIR"]) if f.slug == slug), None)
        tenant = tenant_by_slug(slug)
        if folder is None or tenant is None:
            raise click.ClickException(f"Commune inconnue : {slug} (lancez d'abord `flask tenants sync`)")
        with tenant_scope(tenant.id):
            for activity in load_tenant_activities(tenant, folder):
                click.echo(f"{activity.code}\t{activity.name}")
            db.session.commit()

    @tenants.command("pieces")
    @click.argument("slug")
    @click.option("--update", is_flag=True, help="Overwrite the types already in the database (agents' changes).")
    def tenants_pieces(slug, update):
        """Load a commune's pieces.toml: the types of pièces justificatives (new ones; --update overwrites)."""
        from core.documents.config import load_folder_pieces
        from tenants.context import tenant_scope
        from tenants.models import tenant_or_click_error
        from tenants.registry import discover

        tenant = tenant_or_click_error(slug)
        folder = next((f for f in discover(current_app.config["TENANTS_DIR"]) if f.slug == slug), None)
        if folder is None:
            raise click.ClickException(f"Pas de dossier tenants/{slug}/")
        with tenant_scope(tenant.id):
            for row in load_folder_pieces(tenant, folder.path, update=update):
                click.echo(f"{row.code}\t{row.label}")
            db.session.commit()

    @tenants.command("list")
    def tenants_list():
        from tenants.models import Tenant

        for t in db.session.scalars(select(Tenant).order_by(Tenant.slug)):
            click.echo(f"{t.slug}\t{t.name}")

    @app.cli.command("demo-data")
    def demo_data():
        """Load the three communes' demo data (development only)."""
        if current_app.config["NAME"] != "development":
            raise click.ClickException("demo-data est refusé hors de la configuration de développement.")
        for line in load_demo_data():
            click.echo(line)
        click.echo(f"Mot de passe de tous les comptes de démonstration : {DEMO_PASSWORD}")

    @app.cli.command("db-is-empty")
    def db_is_empty():
        """Exit 0 when no commune is in the database yet (used by `make run`)."""
        from tenants.models import Tenant

        sys.exit(0 if db.session.scalars(select(Tenant)).first() is None else 1)

    @app.cli.group()
    def support():
        """Support staff accounts (created here only)."""

    @support.command("create")
    @click.option("--email", required=True)
    @click.option("--name", required=True)
    @click.password_option()
    def support_create(email, name, password):
        from core.accounts import hash_password, normalize_email
        from core.models import SupportUser

        email = normalize_email(email)
        if db.session.scalars(select(SupportUser).where(SupportUser.email == email)).first():
            raise click.ClickException("Ce compte support existe déjà.")
        db.session.add(SupportUser(email=email, name=name, password_hash=hash_password(password)))
        db.session.commit()
        click.echo(f"Compte support créé : {email}")

    @app.cli.group()
    def accounts():
        """Accounts of a commune."""

    @accounts.command("precreate")
    @click.option("--tenant", "slug", required=True)
    @click.option("--email", required=True)
    @click.option("--first-name", required=True)
    @click.option("--last-name", required=True)
    @click.option("--role", type=click.Choice(["parent", "agent"]), default="parent")
    def accounts_precreate(slug, email, first_name, last_name, role):
        """The commune creates an account: generated password and activation link by mail."""
        from core import accounts as acc
        from tenants.context import tenant_scope
        from tenants.models import tenant_or_click_error
        from web.links import WebLinks

        tenant = tenant_or_click_error(slug)
        base = current_app.config.get("PUBLIC_URL") or os.environ.get("PUBLIC_URL", "http://127.0.0.1:5000")
        with current_app.test_request_context(f"/{slug}/", base_url=base), tenant_scope(tenant.id):
            from flask import g

            g.tenant = tenant
            try:
                user, _pw = acc.precreate_account(
                    tenant, email=email, first_name=first_name, last_name=last_name, links=WebLinks(),
                    settings=acc.Settings(current_app.config["ACTIVATION_TOKEN_HOURS"]), role=role)
            except acc.AccountError as err:
                raise click.ClickException(err.message) from err
            db.session.commit()
            address = user.email  # read in the commune's scope (row-level security: nothing outside)
        click.echo(f"Compte créé pour {address} ; le mail d'activation est parti.")

    @app.cli.group()
    def translate():
        """Babel catalogues: extract, update, compile."""

    def _pybabel(*args):
        subprocess.run([sys.executable, "-m", "babel.messages.frontend", *args], check=True, cwd=ROOT)

    @translate.command("update")
    def translate_update():
        _pybabel("extract", "-F", "babel.cfg", "-k", "_l", "-o", "translations/messages.pot", *TRANSLATED_SOURCES)
        _pybabel("update", "-i", "translations/messages.pot", "-d", "translations", "--no-fuzzy-matching")
        fill_french_plurals()

    @translate.command("compile")
    def translate_compile():
        _pybabel("compile", "-d", "translations")

    @app.cli.command("worker")
    @click.option("--burst", is_flag=True, help="Run the queued jobs, then exit.")
    def worker(burst):
        """An RQ worker inside this app's context; it also runs the mail sweep every minute."""
        from jobs.dispatch import get_queue
        from jobs.worker import SweepingWorker

        queue = get_queue()
        if queue is None:
            raise click.ClickException("REDIS_URL n'est pas défini : les mails partent en ligne, sans worker.")
        SweepingWorker([queue], connection=queue.connection,
                       sweep_interval=current_app.config["MAIL_SWEEP_INTERVAL"],
                       periodic={"jobs.pieces:enqueue_everywhere": current_app.config["PIECES_SWEEP_INTERVAL"],
                                 "jobs.billing:queue_everywhere": current_app.config["BILLING_SWEEP_INTERVAL"]},
                       ).work(burst=burst, with_scheduler=True)

    @app.cli.group()
    def reservations():
        """The reservation core's periodic work."""

    @reservations.command("expire-holds")
    def reservations_expire_holds():
        """Release the places held by démarches abandoned past their time (run every minute)."""
        from jobs.holds import expire_everywhere

        total = expire_everywhere()
        click.echo(f"{total} démarche(s) expirée(s).")

    @app.cli.group()
    def pieces():
        """Pièces justificatives."""

    @pieces.command("sweep")
    def pieces_sweep():
        """Announce the pieces expiring soon (once each) and delete those past their retention, now."""
        from jobs.pieces import sweep_now

        done = sweep_now()
        click.echo(f"{done['announced']} pièce(s) annoncée(s), {done['purged']} supprimée(s).")

    @app.cli.group()
    def billing():
        """Billing's periodic work (reminders, online payments left waiting, direct debits due)."""

    @billing.command("run")
    @click.option("--tenant", "slug", default=None, help="One commune (its slug); every commune otherwise.")
    def billing_run(slug):
        """Run the billing job now, inline (idempotent: each reminder goes once)."""
        from jobs.billing import run_billing
        from tenants.context import unscoped
        from tenants.models import Tenant

        with unscoped():
            rows = db.session.scalars(select(Tenant).order_by(Tenant.slug)).all()
            targets = [(t.id, t.slug) for t in rows if slug in (None, t.slug)]
        if not targets:
            raise click.ClickException(f"Commune inconnue : {slug}")
        for tenant_id, name in targets:
            click.echo(f"{name}: {run_billing(tenant_id)}")

    @app.cli.group()
    def mail():
        """The outbox of mails."""

    @mail.command("flush")
    def mail_flush():
        """Hand again to the queue (or send inline) every mail never queued, due for a retry or stuck."""
        from jobs.mail import sweep

        click.echo(f"{sweep()} mail(s) remis en file.")

"""No 5xx on anything a user can type: a property-based sweep over every POST route of the app.

Every rule of the URL map that accepts POST has a target below (a test fails when a new one has
none): who posts it (anonymous, parent, agent, support, support acting in a commune), the ids in
its URL and the page whose form posts to it.  For each, as that user, in one of the three communes:

* the form is read from its page (fields, options, hidden values, htmx `hx-vals`), then sent with
  the same junk in every field, then by hypothesis: plausible values with junk in some fields
  (empty, too long, wrong types, unknown ids, ids of another commune, malformed or far dates,
  unicode with NUL, RTL and emoji, huge and negative numbers, lists where one value is expected,
  unknown fields, files that are not what they claim), as a plain form and as htmx;
* a missing and a forged CSRF token (plain and htmx): the French 400 page "Formulaire expiré";
* the ids of the URL replaced by another commune's, an unknown and a too-large one: 404;
* a form refused on what was typed comes back with a message and everything typed (COMES_BACK).

Then the same pattern on the query strings of every GET page, the report that opened issue 12 (the
Saint-Loubès inscription form), and a planted 500 that the machinery must report.  The verdict on
each answer is `tests/post_sweep.judge`; the world is `tests/sweep_world.py`.  Bounded for the
normal suite; more examples with `SWEEP_EXAMPLES=50`, others with `SWEEP_SEED=<n>`.
"""

from __future__ import annotations

import html
import io
import re
import shutil
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from core import clock
from core.bounds import MAX_ID
from extensions import db, limiter
from tenants.context import set_tenant_id
from tests.conftest import PASSWORD, _empty_tables
from tests.post_sweep import (
    PDF_TINY,
    PNG_1PX,
    Form,
    Submission,
    SweepFailure,
    fixed_submissions,
    form_for,
    judge,
    send_and_judge,
    sweep,
)
from tests.sweep_world import COMMUNES, World, csrf_of


@pytest.fixture(scope="module")
def world(app, tmp_path_factory):
    """Built once for the module (the suite's per-test emptying is replaced by `_clean` below);
    the communes' settings, files and uploads are put back or kept in a temporary folder."""
    import copy

    from werkzeug.security import generate_password_hash

    from tenants.context import unscoped
    from tenants.models import Tenant

    tmp = tmp_path_factory.mktemp("sweep")
    shutil.copytree(app.config["TENANTS_DIR"], tmp / "tenants")
    with pytest.MonkeyPatch.context() as mp:
        cheap = generate_password_hash("support-dummy-0", method="pbkdf2:sha256:1000")
        mp.setattr("core.accounts._DUMMY_HASH", cheap)  # unknown addresses: the same check, cheaper
        mp.setattr("blueprints.support.routes._DUMMY_HASH", cheap)
        mp.setitem(app.config, "TENANTS_DIR", str(tmp / "tenants"))
        mp.setitem(app.config, "UPLOADS_DIR", str(tmp / "uploads"))
        mp.setitem(app.config, "PIECES_STORAGE_DIR", str(tmp / "pieces"))
        mp.setitem(app.config, "PIECES_MAX_BYTES", PIECES_MAX_BYTES)  # the junk's 1 MiB file is then too large
        mp.setitem(app.config, "PAYMENT_STANDIN_TRANSPORT", _server_to_server(app))
        app.extensions.pop("pieces_storage", None)
        with app.app_context(), unscoped():
            saved = {t.id: (t.name, copy.deepcopy(t.settings)) for t in db.session.scalars(select(Tenant))}
            db.session.remove()
        try:
            yield World(app)
        finally:
            with app.app_context(), unscoped():
                db.session.remove()
                for tenant in db.session.scalars(select(Tenant)):
                    tenant.name, tenant.settings = saved[tenant.id]
                db.session.commit()
                db.session.remove()
            _empty_tables(app)
            for f in Path(app.config.get("OUTBOX_DIR", tmp)).glob("*"):
                f.unlink()
            limiter.reset()
            set_tenant_id(None)
            app.extensions.pop("pieces_storage", None)


def _server_to_server(app):
    """The stand-in's call of the notification URL, through a client of its own (no cookies)."""
    from urllib.parse import urlsplit

    def transport(url, data):
        return app.test_client().post(urlsplit(url).path, data=data).status_code

    return transport


@pytest.fixture(autouse=True)
def _clean(app):
    """Replaces the suite's emptying after each test: the world lives for the module."""
    limiter.reset()
    yield
    with app.app_context():
        db.session.remove()
    set_tenant_id(None)


# ---------------------------------------------------------------------------- the routes


@dataclass
class Target:
    role: str                       # anonymous, parent, agent, support, support_agent
    args: object = None             # (world, slug) -> the URL's values
    page: object = None             # (world, slug, url) -> the page whose form posts here (default: the URL)
    ids: tuple = ()                 # URL values that name a row: another commune's, unknown, too large -> 404
    fresh: bool = False             # a parent of its own (the route logs out, changes the password…)
    commune: str | None = None      # pinned to a commune (else one in turn)
    form: object = None             # (world, slug) -> the Form, for a route no page posts to (a backend's call)
    csrf: bool = True               # False: server to server, no session (a signature is checked instead)
    after: object = None            # (world, prepared) -> checks once the route is swept, or puts back what it changed


def _cart(w, s):
    return {"cart_id": w.fresh_cart(s)}


def _planning(w, s, url):
    cart = url.split("/")[3]
    return f"/{s}/demarches/{cart}/planning?activite={w.c[s].units_id}"


def _recap(w, s, url):
    return f"/{s}/demarches/{url.split('/')[3]}/recapitulatif"


def _child(w, s):
    return {"child_id": w.c[s].kids[0]}


def _feed(w, s):
    """The family has an active calendar feed (the page then offers "Créer une nouvelle adresse" and
    "Désactiver l'adresse"); nothing in the URL."""
    w.feed(s)
    return {}


def _to_pay(w, s):
    """The family has an invoice to pay online (the sweep may have paid the others); nothing in the URL."""
    w.fresh_invoice(s)
    return {}


def _debit_planned(w, s):
    """An invoice is planned for debit (the file then has something to take); nothing in the URL."""
    w.debit_planned(s)
    return {}


def _billing_run(w, s):
    return {"run_id": w.fresh_billing_run(s)}


def _run_page(w, s, url):
    return url.rsplit("/", 1)[0]


def _notification_form(w, s) -> Form:
    """What the stand-in sends the notification URL for a payment just started (signed: the sweep's
    plausible submissions are genuine, its junk forged)."""
    tx_id, data = w.notification(s)
    w.watched[s] = (tx_id, _online_receipts(w, s))
    form = Form(action=f"/{s}/paiements/notification", source="(le serveur de paiement)")
    for name, value in data.items():
        form.add(name, "hidden", value)
    return form


def _online_receipts(w, s) -> dict[int, int]:
    """{transaction id: its receipts} in the commune."""
    from sqlalchemy import func

    from core.billing.payment_models import Receipt

    return w.inside(s, lambda: dict(db.session.execute(
        select(Receipt.transaction_id, func.count()).where(Receipt.transaction_id.is_not(None))
        .group_by(Receipt.transaction_id)).all()))


def _standin_page(w, s, url):
    """The stand-in page of a payment just started (its form's « Payer » notifies the portal)."""
    tx_id, page = w.standin_page(s)
    w.watched[s] = (tx_id, _online_receipts(w, s))
    return page


def _paid_at_most_once(w, p) -> None:
    """After a sweep of the payment's notification (or of the stand-in that sends it): at most one
    receipt for the transaction swept, of its amount, and nothing recorded for any other."""
    from core.billing.payment_models import OnlineTransaction, Receipt

    tx_id, before = w.watched.pop(p.slug)
    after = _online_receipts(w, p.slug)
    assert {k: v for k, v in after.items() if k != tx_id} == before, "un paiement enregistré pour une autre transaction"

    def read():
        tx = db.session.get(OnlineTransaction, tx_id)
        amounts = db.session.scalars(select(Receipt.amount).where(Receipt.transaction_id == tx_id)).all()
        return tx.amount, amounts

    amount, amounts = w.inside(p.slug, read)
    assert amounts in ([], [amount]), (tx_id, amount, amounts)


PIECES_MAX_BYTES = 1024 * 1024  # for the sweep: a "large body" stays small (the 30 Mo case: tests/test_pieces.py)


TARGETS: dict[str, Target] = {
    # anyone
    "/langue": Target("anonymous", page=lambda w, s, url: "/"),
    "/<tenant>/langue": Target("anonymous", page=lambda w, s, url: f"/{s}/"),
    "/<tenant>/connexion": Target("anonymous"),
    "/<tenant>/creer-mon-espace": Target("anonymous"),
    "/<tenant>/mot-de-passe-oublie": Target("anonymous"),
    "/<tenant>/activation/renvoyer": Target("anonymous", page=lambda w, s, url: f"/{s}/activation/perime"),
    "/<tenant>/reinitialiser/<token>": Target("anonymous", args=lambda w, s: {"token": w.reset_token(s)}),
    "/<tenant>/famille/invitation/<token>": Target("anonymous", args=lambda w, s: {"token": w.invitation_token(s)}),
    "/support/connexion": Target("anonymous"),
    # a parent
    "/<tenant>/deconnexion": Target("parent", fresh=True, page=lambda w, s, url: f"/{s}/mon-espace"),
    "/<tenant>/mes-identifiants": Target("parent", fresh=True),
    "/<tenant>/conditions-generales": Target("parent", fresh=True),
    "/<tenant>/famille/abonnements": Target("parent", fresh=True),
    "/<tenant>/famille/adresse-email": Target("parent", fresh=True),
    "/<tenant>/famille/supprimer-mon-compte": Target("parent", fresh=True),
    "/<tenant>/famille/co-representant": Target("parent"),
    "/<tenant>/famille/responsables/<int:resp_id>": Target(
        "parent", args=lambda w, s: {"resp_id": w.c[s].resp_id}, ids=("resp_id",)),
    "/<tenant>/famille/enfants/nouveau": Target("parent"),
    "/<tenant>/famille/enfants/<int:child_id>/informations": Target("parent", args=_child, ids=("child_id",)),
    "/<tenant>/famille/enfants/<int:child_id>/sante": Target("parent", args=_child, ids=("child_id",)),
    "/<tenant>/famille/enfants/<int:child_id>/autorisations": Target("parent", args=_child, ids=("child_id",)),
    "/<tenant>/famille/enfants/<int:child_id>/contacts/nouveau": Target("parent", args=_child, ids=("child_id",)),
    "/<tenant>/famille/enfants/<int:child_id>/contacts/<int:contact_id>": Target(
        "parent", args=lambda w, s: {"child_id": w.c[s].kids[0], "contact_id": w.fresh_contact(s)},
        ids=("child_id", "contact_id")),
    "/<tenant>/famille/enfants/<int:child_id>/contacts/<int:contact_id>/supprimer": Target(
        "parent", args=lambda w, s: {"child_id": w.c[s].kids[0], "contact_id": w.fresh_contact(s)},
        page=lambda w, s, url: f"/{s}/famille/enfants/{w.c[s].kids[0]}", ids=("child_id", "contact_id")),
    "/<tenant>/famille/modifications/<int:change_id>/annuler": Target(
        "parent", args=lambda w, s: {"change_id": w.fresh_change(s)}, page=lambda w, s, url: f"/{s}/famille/dossier",
        ids=("change_id",)),
    "/<tenant>/inscriptions/nouvelle": Target("parent", commune="saint-loubes"),
    "/<tenant>/reservations/<int:activity_id>": Target(
        "parent", args=lambda w, s: {"activity_id": w.c[s].units_id}, ids=("activity_id",)),
    "/<tenant>/demarches/<int:cart_id>/choix": Target("parent", args=_cart, page=_planning, ids=("cart_id",)),
    "/<tenant>/demarches/<int:cart_id>/planning": Target("parent", args=_cart, page=_planning, ids=("cart_id",)),
    "/<tenant>/demarches/<int:cart_id>/tout": Target("parent", args=_cart, page=_planning, ids=("cart_id",)),
    "/<tenant>/demarches/<int:cart_id>/periodicite": Target("parent", args=_cart, page=_planning, ids=("cart_id",)),
    "/<tenant>/demarches/<int:cart_id>/meme-demande": Target("parent", args=_cart, page=_recap, ids=("cart_id",)),
    "/<tenant>/demarches/<int:cart_id>/valider": Target("parent", args=_cart, page=_recap, ids=("cart_id",)),
    "/<tenant>/demarches/<int:cart_id>/annuler": Target("parent", args=_cart, page=_recap, ids=("cart_id",)),
    "/<tenant>/demandes/<int:number>/annuler": Target(
        "parent", args=lambda w, s: {"number": w.fresh_demande(s)["number"]},
        page=lambda w, s, url: url.rsplit("/", 1)[0], ids=("number",)),
    "/<tenant>/absences/<int:reservation_id>": Target(
        "parent", args=lambda w, s: {"reservation_id": w.fresh_reservation(s)}, ids=("reservation_id",)),
    "/<tenant>/pieces/envoyer": Target("parent", page=lambda w, s, url: f"/{s}/pieces/"),
    "/<tenant>/agenda/abonnement": Target("parent", args=_feed),
    "/<tenant>/agenda/abonnement/revoquer": Target("parent", args=_feed,
                                                   page=lambda w, s, url: f"/{s}/agenda/abonnement"),
    # an agent
    "/<tenant>/admin/activites/nouvelle": Target("agent"),
    "/<tenant>/admin/activites/<int:activity_id>": Target(
        "agent", args=lambda w, s: {"activity_id": w.fresh_activity(s, booked=True)}, ids=("activity_id",)),
    "/<tenant>/admin/activites/<int:activity_id>/archiver": Target(
        "agent", args=lambda w, s: {"activity_id": w.fresh_activity(s)}, page=lambda w, s, url: url.rsplit("/", 1)[0],
        ids=("activity_id",)),
    "/<tenant>/admin/activites/<int:activity_id>/supprimer": Target(
        "agent", args=lambda w, s: {"activity_id": w.fresh_activity(s)}, page=lambda w, s, url: url.rsplit("/", 1)[0],
        ids=("activity_id",)),
    "/<tenant>/admin/annuaire/nouvelle": Target("agent"),
    "/<tenant>/admin/annuaire/<int:family_id>/compte": Target(
        "agent", args=lambda w, s: {"family_id": w.fresh_family_without_account(s)},
        page=lambda w, s, url: url.rsplit("/", 1)[0], ids=("family_id",)),
    "/<tenant>/admin/annuaire/<int:family_id>/residence": Target(
        "agent", args=lambda w, s: {"family_id": w.c[s].family_id}, page=lambda w, s, url: url.rsplit("/", 1)[0],
        ids=("family_id",)),
    "/<tenant>/admin/commune/accueil": Target("agent", page=lambda w, s, url: f"/{s}/admin/commune"),
    "/<tenant>/admin/commune/actualites": Target("agent", page=lambda w, s, url: f"/{s}/admin/commune"),
    "/<tenant>/admin/commune/actualites/<int:index>/supprimer": Target(
        "agent", args=lambda w, s: {"index": w.news_index(s)}, page=lambda w, s, url: f"/{s}/admin/commune"),
    "/<tenant>/admin/commune/identite": Target("agent", page=lambda w, s, url: f"/{s}/admin/commune"),
    "/<tenant>/admin/commune/motifs": Target("agent", page=lambda w, s, url: f"/{s}/admin/commune"),
    "/<tenant>/admin/demandes-suppression/<int:request_id>/traitee": Target(
        "agent", args=lambda w, s: {"request_id": w.fresh_deletion(s)},
        page=lambda w, s, url: f"/{s}/admin/demandes-suppression", ids=("request_id",)),
    "/<tenant>/admin/demandes/<int:demande_id>/decision": Target(
        "agent", args=lambda w, s: {"demande_id": w.fresh_demande(s)["id"]},
        page=lambda w, s, url: url.rsplit("/", 1)[0], ids=("demande_id",)),
    "/<tenant>/admin/familles/nouvelle": Target("agent"),
    "/<tenant>/admin/familles/<int:family_id>/enfants": Target(
        "agent", args=lambda w, s: {"family_id": w.c[s].family_id}, page=lambda w, s, url: url.rsplit("/", 1)[0],
        ids=("family_id",)),
    "/<tenant>/admin/familles/<int:family_id>/quotient": Target(
        "agent", args=lambda w, s: {"family_id": w.c[s].family_id}, page=lambda w, s, url: url.rsplit("/", 1)[0],
        ids=("family_id",)),
    "/<tenant>/admin/inscriptions/<int:inscription_id>/decision": Target(
        "agent", args=lambda w, s: {"inscription_id": w.fresh_pending_inscription(s)},
        page=lambda w, s, url: f"/{s}/admin/inscriptions", ids=("inscription_id",)),
    "/<tenant>/admin/mails/<int:mail_id>/renvoyer": Target(
        "agent", args=lambda w, s: {"mail_id": w.fresh_failed_mail(s)}, page=lambda w, s, url: f"/{s}/admin/mails",
        ids=("mail_id",)),
    "/<tenant>/admin/modifications/<int:change_id>/decision": Target(
        "agent", args=lambda w, s: {"change_id": w.fresh_change(s)}, page=lambda w, s, url: url.rsplit("/", 1)[0],
        ids=("change_id",)),
    "/<tenant>/admin/pre-reservations/<int:activity_id>": Target(
        "agent", args=lambda w, s: {"activity_id": w.c[s].sessions_id}, ids=("activity_id",)),
    "/<tenant>/admin/pre-reservations/tirages/<int:run_id>/publier": Target(
        "agent", args=lambda w, s: {"run_id": w.fresh_run(s)}, page=lambda w, s, url: url.rsplit("/", 1)[0],
        ids=("run_id",)),
    "/<tenant>/admin/pieces/<int:piece_id>/decision": Target(
        "agent", args=lambda w, s: {"piece_id": w.fresh_pending_piece(s)}, page=lambda w, s, url: url.rsplit("/", 1)[0],
        ids=("piece_id",)),
    "/<tenant>/admin/pieces/types": Target("agent"),
    "/<tenant>/admin/pieces/types/nouveau": Target("agent"),
    "/<tenant>/admin/pieces/types/<int:type_id>": Target(
        "agent", args=lambda w, s: {"type_id": w.fresh_piece_type(s)}, ids=("type_id",)),
    # billing and payments (issues 14 and 15): a parent
    "/<tenant>/mes-qf-revenus": Target("parent", fresh=True),
    "/<tenant>/paiements": Target("parent", args=_to_pay, page=lambda w, s, url: f"/{s}/factures"),
    "/<tenant>/prelevements": Target("parent", fresh=True),
    "/<tenant>/paiements/page-de-test": Target("parent", page=_standin_page,
                                               after=lambda w, p: _paid_at_most_once(w, p)),
    # the payment backend, server to server (no session, no CSRF token: a signature)
    "/<tenant>/paiements/notification": Target("anonymous", form=_notification_form, csrf=False,
                                               after=lambda w, p: _paid_at_most_once(w, p)),
    # billing and payments: an agent
    "/<tenant>/admin/facturation/": Target("agent"),
    "/<tenant>/admin/facturation/brouillons/<int:run_id>/ajustement": Target(
        "agent", args=_billing_run, page=_run_page, ids=("run_id",)),
    "/<tenant>/admin/facturation/brouillons/<int:run_id>/publier": Target(
        "agent", args=_billing_run, page=_run_page, ids=("run_id",)),
    "/<tenant>/admin/facturation/brouillons/<int:run_id>/recalculer": Target(
        "agent", args=_billing_run, page=_run_page, ids=("run_id",)),
    "/<tenant>/admin/facturation/factures/<int:invoice_id>": Target(
        "agent", args=lambda w, s: {"invoice_id": w.fresh_invoice(s)}, ids=("invoice_id",)),
    "/<tenant>/admin/facturation/factures/<int:invoice_id>/tresor": Target(
        "agent", args=lambda w, s: {"invoice_id": w.fresh_invoice(s, due_in=-3, issued_ago=35)},
        page=lambda w, s, url: f"/{s}/admin/facturation/impayes", ids=("invoice_id",)),
    "/<tenant>/admin/facturation/familles/<int:family_id>/compte": Target(
        "agent", args=lambda w, s: {"family_id": w.family_to_bill(s)}, ids=("family_id",)),
    "/<tenant>/admin/facturation/familles/<int:family_id>/mandat": Target(
        "agent", args=lambda w, s: {"family_id": w.fresh_billed_family(s)},
        page=lambda w, s, url: url.rsplit("/", 1)[0] + "/compte", ids=("family_id",)),
    "/<tenant>/admin/facturation/familles/<int:family_id>/qf": Target(
        "agent", args=lambda w, s: {"family_id": w.fresh_qf_family(s)}, ids=("family_id",)),
    "/<tenant>/admin/facturation/mandats/<int:mandate_id>": Target(
        "agent", args=lambda w, s: {"mandate_id": w.fresh_mandate(s)}, ids=("mandate_id",)),
    "/<tenant>/admin/facturation/pointage": Target(
        "agent", page=lambda w, s, url: f"{url}?activite={w.c[s].units_id}&jour={clock.today().isoformat()}"),
    "/<tenant>/admin/facturation/prelevements": Target("agent", args=_debit_planned),
    "/<tenant>/admin/facturation/prelevements/<int:debit_id>/rejet": Target(
        "agent", args=lambda w, s: {"debit_id": w.fresh_exported_debit(s)},
        page=lambda w, s, url: f"/{s}/admin/facturation/prelevements/lots/{w.batch_of[int(url.split('/')[-2])]}",
        ids=("debit_id",)),
    "/<tenant>/admin/facturation/recus/<int:receipt_id>/annuler": Target(
        "agent", args=lambda w, s: {"receipt_id": w.fresh_receipt(s)}, page=lambda w, s, url: url.rsplit("/", 1)[0],
        ids=("receipt_id",)),
    "/<tenant>/admin/facturation/tarifs": Target("agent", after=lambda w, p: w.put_back_billing(p.slug)),
    # support
    "/<tenant>/admin/support-sortie": Target("support_agent", page=lambda w, s, url: f"/{s}/admin/"),
    "/support/communes/<slug>/entrer": Target("support", args=lambda w, s: {"slug": s},
                                              page=lambda w, s, url: "/support/"),
    "/support/deconnexion": Target("support", page=lambda w, s, url: "/support/"),
}


# Forms that come back with what was typed and a message next to the field when they refuse it (the
# others accept any text, redirect with a flash, or have nothing typed in them).
COMES_BACK = {
    "/<tenant>/absences/<int:reservation_id>", "/<tenant>/admin/activites/<int:activity_id>",
    "/<tenant>/admin/activites/nouvelle", "/<tenant>/admin/annuaire/<int:family_id>/compte",
    "/<tenant>/admin/annuaire/nouvelle", "/<tenant>/admin/commune/actualites", "/<tenant>/admin/commune/identite",
    "/<tenant>/admin/demandes/<int:demande_id>/decision", "/<tenant>/admin/familles/<int:family_id>/enfants",
    "/<tenant>/admin/pieces/<int:piece_id>/decision", "/<tenant>/admin/pieces/types",
    "/<tenant>/admin/pieces/types/<int:type_id>", "/<tenant>/admin/pieces/types/nouveau",
    "/<tenant>/admin/familles/<int:family_id>/quotient", "/<tenant>/admin/pre-reservations/<int:activity_id>",
    "/<tenant>/connexion", "/<tenant>/creer-mon-espace", "/<tenant>/famille/abonnements",
    "/<tenant>/famille/adresse-email", "/<tenant>/famille/co-representant",
    "/<tenant>/famille/enfants/<int:child_id>/contacts/<int:contact_id>",
    "/<tenant>/famille/enfants/<int:child_id>/contacts/nouveau", "/<tenant>/famille/enfants/<int:child_id>/informations",
    "/<tenant>/famille/enfants/<int:child_id>/sante", "/<tenant>/famille/enfants/nouveau",
    "/<tenant>/famille/invitation/<token>", "/<tenant>/famille/responsables/<int:resp_id>",
    "/<tenant>/famille/supprimer-mon-compte", "/<tenant>/mot-de-passe-oublie", "/support/connexion",
    # billing and payments
    "/<tenant>/admin/facturation/brouillons/<int:run_id>/ajustement", "/<tenant>/admin/facturation/factures/<int:invoice_id>",
    "/<tenant>/admin/facturation/familles/<int:family_id>/compte",
    "/<tenant>/admin/facturation/familles/<int:family_id>/mandat", "/<tenant>/admin/facturation/familles/<int:family_id>/qf",
    "/<tenant>/admin/facturation/mandats/<int:mandate_id>", "/<tenant>/admin/facturation/prelevements",
    "/<tenant>/admin/facturation/tarifs", "/<tenant>/mes-qf-revenus", "/<tenant>/prelevements",
}


def post_rules(app) -> dict[str, object]:
    return {rule.rule: rule for rule in app.url_map.iter_rules() if "POST" in rule.methods}


def fill(rule: str, values: dict) -> str:
    def value(match):
        return str(values[match.group(1)])

    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", value, rule)


def commune_for(rule: str) -> str:
    target = TARGETS[rule]
    if target.commune:
        return target.commune
    return COMMUNES[sorted(TARGETS).index(rule) % len(COMMUNES)]


def test_every_post_route_is_swept(app):
    """A new POST route fails here until it has a target (and a removed one until its target goes)."""
    rules = set(post_rules(app))
    assert sorted(rules - set(TARGETS)) == [], "routes POST sans cible dans le balayage"
    assert sorted(set(TARGETS) - rules) == [], "cibles du balayage sans route"
    assert COMES_BACK <= set(TARGETS)


# ---------------------------------------------------------------------------- one route, every input

@dataclass
class Prepared:
    rule: str
    slug: str
    url: str
    client: object
    form: Form
    csrf: str | None
    values: dict
    page: str


def prepare(app, world: World, rule: str) -> Prepared:
    target = TARGETS[rule]
    slug = commune_for(rule)
    values = dict(target.args(world, slug)) if target.args else {}
    values.setdefault("tenant", slug)
    url = fill(rule, values)
    client = world.client(target.role, slug, fresh=target.fresh)
    if target.form is not None:  # no page: the form is what the backend sends
        return Prepared(rule, slug, url, client, target.form(world, slug), None, values, "")
    page = target.page(world, slug, url) if target.page else url
    res = client.get(page)
    assert res.status_code in (200, 410), f"{page} : {res.status_code}"  # 410: a dead link's page, with its form
    html = res.get_data(as_text=True)
    adapter = app.url_map.bind("localhost")

    def posts_here(action: str) -> bool:
        try:
            found, _args = adapter.match(action, method="POST", return_rule=True)
        except Exception:  # noqa: BLE001 (not a route of the app)
            return False
        return found.rule == rule

    form = form_for(html, page, posts_here)
    assert form is not None, f"{page} n'offre plus de formulaire vers {rule}"
    return Prepared(rule, slug, url, client, form, csrf_of(html), values, page)


def _ids_for(world: World, slug: str) -> list[str]:
    others = [s for s in COMMUNES if s != slug]
    return [str(i) for s in (slug, *others) for i in world.c[s].ids()]


EXPIRED = "Le formulaire a expiré ou n&#39;est pas valide. Rechargez la page et recommencez."  # as HTML
TYPED = {"text", "email", "textarea", "tel", "search", "url", "number", "date", "datetime-local"}


def _baseline(p: Prepared) -> list[tuple[str, str]]:
    """The form as its page offers it (first value of each field), without its CSRF token, files and
    buttons (a browser sends the one clicked: "Ajouter des lignes" is not "Enregistrer")."""
    return [(n, f.values[0] if f.values else "") for n, f in p.form.fields.items()
            if not n.endswith("csrf_token") and f.kind not in ("file", "button")]


def check_reached(p: Prepared, machine: bool) -> None:
    """The form as its page offers it, its first button clicked, reaches the route's work: a redirect or
    a page, or a refusal of what is (not) typed, never a 404 (the world lacks nothing it names)."""
    buttons = [(n, f.values[0] if f.values else "") for n, f in p.form.fields.items() if f.kind == "button"]
    data = MultiDict(_baseline(p) + buttons[:1] + ([("csrf_token", p.csrf)] if p.csrf else []))
    res = p.client.post(p.url, data=data)
    assert judge(res, machine=machine) == [], (p.url, judge(res, machine=machine))
    assert res.status_code != 404, f"{p.url} : le formulaire de {p.page or p.form.source} mène à un 404"


def check_csrf(p: Prepared) -> None:
    """Without the token, or with a forged one: the French 400 page "Formulaire expiré"; to htmx (which
    swaps no error answer) the same page with HX-Refresh, and the page then reloaded says why."""
    for token in (None, "forged", p.csrf[:-4] + "AAAA", "é\x00"):
        for htmx in (False, True):
            data = MultiDict(_baseline(p))
            if token is not None:
                data["csrf_token"] = token
            res = p.client.post(p.url, data=data, headers={"HX-Request": "true"} if htmx else {})
            text = res.get_data(as_text=True)
            assert res.status_code == 400, (p.url, token, htmx, res.status_code)
            assert judge(res) == [], (p.url, judge(res))
            assert "<h1>Formulaire expiré</h1>" in text and EXPIRED in text, (p.url, token)
            assert res.headers.get("HX-Refresh") == ("true" if htmx else None), (p.url, htmx)
    reloaded = p.client.get(p.page).get_data(as_text=True)
    assert 'class="flash flash--error">' + EXPIRED in reloaded, f"{p.page} ne dit pas pourquoi après htmx"


def check_foreign_ids(p: Prepared, world: World) -> None:
    """Each id of the URL replaced by another commune's, an unknown one, one no INTEGER holds: 404."""
    target = TARGETS[p.rule]
    if not target.ids:
        return
    other = next(s for s in COMMUNES if s != p.slug)
    foreign = dict(target.args(world, other))
    data = MultiDict(_baseline(p) + [("csrf_token", p.csrf)])
    for name in target.ids:
        for bad in (foreign[name], 999_999, MAX_ID, MAX_ID + 1, 10**20):
            url = fill(p.rule, dict(p.values, **{name: bad}))
            for headers in ({}, {"HX-Request": "true"}):
                res = p.client.post(url, data=data, headers=headers)
                assert res.status_code == 404, (url, res.status_code)
                assert judge(res) == [], (url, judge(res))


def check_typed_input_kept(p: Prepared) -> bool:
    """A form refused on what was typed comes back with a message and with everything typed in it
    (markers no field accepts as they are: dates, e-mails, numbers, phones refuse them).  True when the
    form came back (a redirect with a flash is the other fair answer)."""
    typed = sorted(n for n, f in p.form.fields.items() if f.kind in TYPED and not n.endswith("csrf_token"))
    if not typed:
        return False
    markers = {n: f"Saisie{i}-éà" for i, n in enumerate(typed)}
    data = MultiDict([(n, v) for n, v in _baseline(p) if n not in markers] + list(markers.items())
                     + [("csrf_token", p.csrf)])
    res = p.client.post(p.url, data=data)
    assert judge(res) == [], (p.url, judge(res))
    body = res.get_data(as_text=True)
    if res.status_code not in (200, 409, 422) or form_for(body, p.url, lambda a: a == p.form.action) is None:
        return False
    lost = [n for n in typed if markers[n] not in body]
    assert not lost, f"{p.url} : saisie perdue pour {lost}"
    assert re.search(r'class="(?:error|flash flash--error)"', body), f"{p.url} : aucun message d'erreur"
    return True


@pytest.mark.parametrize("rule", sorted(TARGETS))
def test_post_route(app, world, rule):
    """One POST route, as its user: CSRF missing or forged, foreign and impossible ids, a refused form
    that keeps what was typed, then junk (fixed cases, then hypothesis): never a 5xx, error pages in
    French, redirects that stay on the site."""
    p = prepare(app, world, rule)
    target = TARGETS[rule]
    machine = not target.csrf  # a server's call: its refusals are short text/plain answers
    if target.csrf:
        check_csrf(p)
    check_foreign_ids(p, world)
    kept = check_typed_input_kept(p)
    assert kept or rule not in COMES_BACK, f"{p.url} : le formulaire refusé ne revient plus avec la saisie"
    today = clock.today()

    def send(sub: Submission):
        return p.client.post(p.url, data=sub.data(p.csrf), headers=sub.headers())

    label = f"{p.slug} POST {p.url}"
    for sub in fixed_submissions(p.form, today=today, passwords=[PASSWORD]):
        send_and_judge(send, sub, label, machine=machine)
    sweep(send, p.form, today=today, label=label, ids=_ids_for(world, p.slug), passwords=[PASSWORD],
          emails=world.emails(p.slug), machine=machine)
    check_reached(prepare(app, world, rule), machine)  # on a page of its own: it may log out, delete, publish…
    if target.after is not None:
        target.after(world, p)


# ---------------------------------------------------------------------------- the report that opened it


def test_the_saint_loubes_inscription_form_with_junk_says_why_or_404(app, world):
    """Issue 12's first finding: "Créer une inscription" at Saint-Loubès answered 500 to junk (an id no
    INTEGER holds) and took any activity id, even one closed to inscriptions."""
    from core.models import Activity, Inscription

    slug = "saint-loubes"
    c = world.c[slug]
    client = world.client("parent", slug)
    url = f"/{slug}/inscriptions/nouvelle"
    token = csrf_of(client.get(url).get_data(as_text=True))

    def post(**data):
        return client.post(url, data=MultiDict([("csrf_token", token), *data.items()]))

    for junk in ("9" * 30, str(MAX_ID + 1), "²", "-1", "", "abc", world.c["auray"].open_id):  # none, or Auray's
        res = post(activite=junk, enfants=c.kids[0])
        assert res.status_code == 404 and "Page introuvable" in res.get_data(as_text=True), junk
    res = post(activite=c.open_id, enfants="9" * 30)
    assert res.status_code == 422 and "Choisissez au moins un enfant." in res.get_data(as_text=True)

    def close():
        db.session.get(Activity, c.open_id).inscription_open = False

    kid = world.fresh_child(slug)  # not inscribed yet (the sweep of this form may have inscribed the others)
    world.inside(slug, close)
    try:
        res = post(activite=c.open_id, enfants=kid)
        assert res.status_code == 200
        assert 'flash--error">Les inscriptions à cette activité sont fermées.' in res.get_data(as_text=True)
        assert world.inside(slug, lambda: db.session.scalars(select(Inscription.id).where(
            Inscription.activity_id == c.open_id, Inscription.child_id == kid)).first()) is None
    finally:
        world.inside(slug, lambda: setattr(db.session.get(Activity, c.open_id), "inscription_open", True))
    res = post(activite=c.open_id, enfants=kid)
    assert res.status_code == 303 and "/demandes/" in res.headers["Location"]


# ---------------------------------------------------------------------------- the pièces justificatives' uploads

def _stored(world, slug) -> tuple[int, int]:
    """(the commune's piece rows, the files of its storage folder)."""
    from core.documents.models import Piece
    from core.documents.storage import get_storage

    rows = world.inside(slug, lambda: len(db.session.scalars(select(Piece.id)).all()))
    root = Path(world.inside(slug, lambda: str(get_storage().root))) / slug
    return rows, len(list(root.glob("*.*"))) if root.is_dir() else 0


def _upload(client, slug, token, fields, content, filename, *, htmx=False, card=None):
    data = MultiDict([("csrf_token", token), *fields.items(), ("fichier", (io.BytesIO(content), filename))])
    url = f"/{slug}/pieces/envoyer" + (f"?carte={card}" if card else "")
    return client.post(url, data=data, headers={"HX-Request": "true"} if htmx else {},
                       content_type="multipart/form-data")


def _error_next_to(body: str, key: str) -> str | None:
    found = re.search(rf'<p class="error" id="fichier-{re.escape(key)}-err" role="alert">([^<]*)</p>', body)
    return html.unescape(found.group(1)) if found else None


NOT_A_DOCUMENT = "Le fichier doit être un PDF, une image JPEG ou une image PNG (les autres formats ne sont pas acceptés)."
TOO_LARGE = "Le fichier dépasse la taille maximale de 1 Mo."
JUNK_UPLOADS = [  # (content, file name, the message next to the field)
    (b"", "vide.pdf", "Le fichier est vide."),
    (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "image.gif", NOT_A_DOCUMENT),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "photo.webp", NOT_A_DOCUMENT),
    (b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>", "facture.pdf",
     NOT_A_DOCUMENT),
    (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "photo.png", NOT_A_DOCUMENT),
    (PNG_1PX[:40], "tronque.png", "L'image est illisible ou endommagée."),
    (b"%PDF-1.4\n" + b"0" * 100, "sans-fin.pdf", "Le fichier PDF est incomplet ou endommagé."),
    (b"%PDF-1.4\n" + b"0" * PIECES_MAX_BYTES, "gros.pdf", TOO_LARGE),  # read up to the limit, then cut
]


def test_junk_uploads_come_back_with_a_french_message_next_to_the_field(world):
    """Empty, another format, HTML or SVG renamed .pdf/.png, a truncated image, a PDF without its end,
    a file over the limit: the page (422) or, to htmx, the piece's card says why next to its field,
    and nothing is stored; a body too large to be read (413) is answered the same way."""
    slug = "saint-loubes"
    c = world.c[slug]
    client = world.client("parent", slug)
    token = csrf_of(client.get(f"/{slug}/pieces/").get_data(as_text=True))
    cards = [({"type": c.fam_type_id}, f"{c.fam_type_id}-0"),
             ({"type": c.kid_type_id, "enfant": c.kids[0]}, f"{c.kid_type_id}-{c.kids[0]}")]
    before = _stored(world, slug)
    for n, (content, filename, message) in enumerate(JUNK_UPLOADS):
        fields, key = cards[n % 2]
        res = _upload(client, slug, token, fields, content, filename)
        assert res.status_code == 422 and judge(res) == [], (filename, res.status_code)
        assert _error_next_to(res.get_data(as_text=True), key) == message, filename
        res = _upload(client, slug, token, fields, content, filename, htmx=True)
        body = res.get_data(as_text=True)
        assert res.status_code == 200 and "<html" not in body and f'id="piece-{key}"' in body, filename
        assert _error_next_to(body, key) == message, filename
    huge = b"%PDF-1.4\n" + b"0" * (PIECES_MAX_BYTES + 100 * 1024)  # over the limit and its margin: not even read
    fields, key = cards[0]
    res = _upload(client, slug, token, fields, huge, "enorme.pdf", card=key)
    assert res.status_code == 413 and _error_next_to(res.get_data(as_text=True), key) == TOO_LARGE
    res = _upload(client, slug, token, fields, huge, "enorme.pdf", card=key, htmx=True)
    assert res.status_code == 200 and _error_next_to(res.get_data(as_text=True), key) == TOO_LARGE
    res = _upload(client, slug, token, fields, huge, "enorme.pdf", htmx=True)  # an older page, without ?carte=
    assert res.status_code == 413 and res.headers.get("HX-Refresh") == "true" and judge(res) == []
    assert TOO_LARGE in html.unescape(client.get(f"/{slug}/pieces/").get_data(as_text=True))
    assert _stored(world, slug) == before


def test_an_upload_naming_another_communes_type_or_child_answers_404(world):
    """The hidden fields of the upload form, tampered with: another commune's type or child, the
    neighbour family's child, a type the commune no longer asks for, ids no INTEGER holds: 404, and
    nothing stored."""
    slug, other = "auray", "saint-aubin-de-medoc"
    c, o = world.c[slug], world.c[other]
    client = world.client("parent", slug)
    token = csrf_of(client.get(f"/{slug}/pieces/").get_data(as_text=True))
    retired = world.fresh_piece_type(slug, active=False)
    cases = [{"type": o.fam_type_id}, {"type": o.kid_type_id, "enfant": o.kids[0]},
             {"type": c.kid_type_id, "enfant": o.kids[0]}, {"type": c.kid_type_id, "enfant": c.other_kid},
             {"type": retired, "enfant": c.kids[0]}, {"type": c.kid_type_id}, {"type": MAX_ID + 1},
             {"type": "9" * 30}, {"type": "²"}, {"type": ""}, {"type": c.kid_type_id, "enfant": MAX_ID + 1}]
    before = _stored(world, slug)
    for fields in cases:
        for htmx in (False, True):
            res = _upload(client, slug, token, fields, PDF_TINY, "domicile.pdf", htmx=htmx)
            assert res.status_code == 404 and judge(res) == [], (fields, htmx, res.status_code)
    assert _stored(world, slug) == before


def test_a_file_name_keeps_no_control_character_nor_direction_mark(world):
    """A forged file name (NUL, which PostgreSQL refuses; a right-to-left mark that shows
    "facture‮fdp.exe" as "facture" + "exe.pdf"; a path): the piece is kept under a clean name."""
    from core.documents.models import Piece

    slug = "saint-aubin-de-medoc"
    c = world.c[slug]
    client = world.client("parent", slug)
    token = csrf_of(client.get(f"/{slug}/pieces/").get_data(as_text=True))
    res = _upload(client, slug, token, {"type": c.free_type_id}, PDF_TINY, "../../fac\x00ture\u202efdp.exe")
    assert res.status_code == 303
    name = world.inside(slug, lambda: db.session.scalars(
        select(Piece.filename).where(Piece.family_id == c.family_id, Piece.type_id == c.free_type_id)).one())
    assert name == "facturefdp.exe"
    assert "facturefdp.exe" in client.get(f"/{slug}/pieces/").get_data(as_text=True)


# ---------------------------------------------------------------------------- the same pattern on GET filters

QUERY_NAMES = ("activite", "page", "unite", "enfant", "date", "jour", "du", "au", "vue", "statut", "type", "q",
               "age", "theme", "creneau", "discipline", "filtre", "commune", "next", "suite", "jeton", "nouvelle")
QUERY_JUNK = ("9" * 30, str(MAX_ID + 1), "-1", "²", "9999-12-31", "0001-01-01", "31/12/9999", "\x00", "‮😀", "//evil.test")


def _get_pages(app, world, slug) -> dict[str, list[str]]:
    """Each user's pages that read their query string (filters, pages, the planning, the agenda)."""
    pages = {"anonymous": [], "parent": [], "agent": [], "support": ["/support/", "/support/journal"]}
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or set(rule.arguments) - {"tenant"} or not rule.rule.startswith("/<tenant>/"):
            continue
        url = fill(rule.rule, {"tenant": slug})
        role = "agent" if "/admin/" in url else "parent"
        pages[role].append(url)
        pages["anonymous"].append(url)
    pages["parent"].append(f"/{slug}/demarches/{world.fresh_cart(slug)}/planning")
    return pages


def test_junk_in_a_query_string_is_never_a_5xx(app, world):
    """The filters of the agents' lists, the agenda, the planning…: ids no INTEGER holds, far dates,
    unicode, open redirects in ?next=: the page falls back or answers 4xx, never 5xx (each junk value
    in one commune in turn)."""
    for n, junk in enumerate(QUERY_JUNK):
        slug = COMMUNES[n % len(COMMUNES)]
        query = "&".join(f"{name}={quote(junk)}" for name in QUERY_NAMES)
        machine = {fill(rule, {"tenant": slug}) for rule, target in TARGETS.items() if not target.csrf}
        for role, urls in _get_pages(app, world, slug).items():
            client = world.client(role, slug)
            for url in urls:
                res = client.get(f"{url}?{query}")
                verdict = judge(res, machine=url in machine)  # the payment backend's notification: text/plain
                assert verdict == [], (role, url, junk, verdict)


# ---------------------------------------------------------------------------- the sweep catches a 500


def test_the_sweep_reports_a_planted_500():
    """A throwaway app whose form divides by what is typed: the sweep must report it, with the
    input that breaks it; the same sweep on a sound form passes."""
    from flask import Flask, abort, request

    throwaway = Flask("planted")

    @throwaway.post("/fragile")
    def fragile():
        return f"<p>{100 // int(request.form.get('n') or 1)}</p>"  # "0" -> ZeroDivisionError, "x" -> ValueError

    @throwaway.post("/solide")
    def solid():
        raw = request.form.get("n", "")
        if not (raw.isascii() and raw.isdigit()) or int(raw) == 0:
            abort(404)
        return f"<p>{100 // int(raw)}</p>"

    @throwaway.errorhandler(404)
    def not_found(_exc):
        return '<html lang="fr"><h1>Page introuvable</h1></html>', 404

    form = Form(action="/fragile")
    form.add("n", "text", "4")
    today = clock.today()
    for propagate in (True, False):  # the exception itself (tests) or the 500 page (production)
        throwaway.config["PROPAGATE_EXCEPTIONS"] = propagate
        client = throwaway.test_client()

        def send(sub, path="/fragile", client=client):
            return client.post(path, data=sub.data(None))

        with pytest.raises((SweepFailure, ExceptionGroup)) as caught:  # several distinct ones with SWEEP_SEED
            sweep(send, form, today=today, label="POST /fragile", max_examples=30)
        found = caught.value.exceptions if isinstance(caught.value, ExceptionGroup) else [caught.value]
        assert all(isinstance(exc, SweepFailure) for exc in found), found
        message = " ".join(map(str, found))
        assert "POST /fragile" in message and "n=" in message
        assert ("ZeroDivisionError" in message or "ValueError" in message) if propagate else "HTTP 500" in message

    client = throwaway.test_client()
    sweep(lambda sub: client.post("/solide", data=sub.data(None)), Form(action="/solide", fields=form.fields),
          today=today, label="POST /solide", max_examples=30)


# ---------------------------------------------------------------------------- the payment backend's notification

def test_a_forged_payment_notification_is_refused_and_records_nothing(world):
    """The notification URL is public (the payment server calls it, without session nor CSRF token):
    a notification forged, tampered with, replayed from another commune, unreadable or empty is refused
    (400, or 404 for a transaction the commune does not have) and records nothing; the genuine one
    records one receipt, and its replay nothing more."""
    from core.billing.payment_models import TX_WAITING, OnlineTransaction, Receipt

    slug, other = "saint-aubin-de-medoc", "auray"
    tx_id, genuine = world.notification(slug)
    _other_tx, foreign = world.notification(other)
    _tx, refused = world.notification(slug, "refuse")
    url = f"/{slug}/paiements/notification"
    client = world.app.test_client()

    def state():
        tx = db.session.get(OnlineTransaction, tx_id)
        receipts = db.session.scalars(select(Receipt.amount).where(Receipt.transaction_id == tx_id)).all()
        return tx.status, tx.notifications, receipts, tx.amount

    def forged(**changes):
        return {k: v for k, v in {**genuine, **changes}.items() if v is not None}

    cases = [
        forged(hmac="0" * 64), forged(hmac="é" * 64), forged(hmac=""), forged(hmac=None), forged(signed=None),
        forged(hmac=refused["hmac"]),                                 # another outcome's signature
        forged(amount=str(Decimal(genuine["amount"]) + 1)),           # the amount changed, the signature kept
        forged(amount="0.01"), forged(transaction_id=foreign["transaction_id"]),
        forged(montant="abc"), forged(montant="١٢٥٠"), forged(montant="1"),  # PayFiP's field, in cents
        forged(transaction_id="\x00"), {}, {"transaction_id": ""},
    ]
    assert world.inside(slug, state)[:3] == (TX_WAITING, 0, [])
    for data in cases:
        res = client.post(url, data=data)
        assert res.status_code in (400, 404) and judge(res, machine=True) == [], (data, res.status_code)
    res = client.post(f"/{slug}/paiements/notification", data=foreign)  # Auray's genuine one, at Saint-Aubin
    assert res.status_code == 404 and judge(res) == []
    for body, kind in ((b'{"transaction_id": 1, "ok": 1}', "application/json"), (b"\xff\xfe\x00idop=\xc3", "text/plain"),
                       (b"idOp=" + b"9" * 40, "application/x-www-form-urlencoded"), (b"", "text/plain")):
        res = client.post(url, data=body, content_type=kind)
        assert res.status_code in (400, 404) and judge(res, machine=True) == [], (body, res.status_code)
    query = "&".join(f"{k}={quote(v)}" for k, v in forged(hmac="0" * 64).items())
    res = client.get(f"{url}?{query}")
    assert res.status_code == 400 and judge(res, machine=True) == []
    assert world.inside(slug, state)[:3] == (TX_WAITING, 0, [])  # nothing recorded, not even a status

    for _replay in range(2):
        res = client.post(url, data=genuine)
        assert res.status_code == 200 and res.get_data(as_text=True) == "OK"
    status, notifications, receipts, amount = world.inside(slug, state)
    assert (status, notifications, receipts) == ("paid", 2, [amount])


def test_the_standin_page_refuses_tampered_urls_and_says_when_the_portal_cannot_be_told(app, world):
    """The local stand-in of the bank's page (development and tests): its return and notification URLs
    are signed with the rest — changed on the way (a newline, another host, an unreadable URL), the page
    is not found; when the notification cannot reach the portal, the page says so (no 5xx) and nothing is
    recorded."""
    from urllib.parse import parse_qs, urlsplit

    import requests

    from core.billing.payment_models import TX_WAITING, OnlineTransaction, Receipt

    slug = "saint-loubes"
    tx_id, page = world.standin_page(slug)
    client = world.client("parent", slug)
    token = csrf_of(client.get(page).get_data(as_text=True))
    fields = {k: v[0] for k, v in parse_qs(urlsplit(page).query).items()}
    path = urlsplit(page).path
    for key, value in (("return_url", fields["return_url"] + "\r\nX-Evil: 1"), ("return_url", "http://[::1"),
                       ("return_url", "http://evil.test/" + slug + "/"), ("direct_notification_url", "http://évil/"),
                       ("amount", "0.01"), ("sig", "é")):
        for method in ("get", "post"):
            data = {**fields, key: value, "choix": "payer", "csrf_token": token}
            res = client.post(path, data=data) if method == "post" else client.get(path, query_string=data)
            assert res.status_code == 404 and judge(res) == [], (key, value, method, res.status_code)

    def unreachable(url, data):
        raise requests.ConnectionError("connexion refusée")

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(app.config, "PAYMENT_STANDIN_TRANSPORT", unreachable)
        res = client.post(path, data={**fields, "choix": "payer", "csrf_token": token})
    assert res.status_code == 409 and judge(res) == []
    assert "Le portail n&#39;a pas pu être prévenu du paiement" in res.get_data(as_text=True)
    assert world.inside(slug, lambda: (db.session.get(OnlineTransaction, tx_id).status, db.session.scalars(
        select(Receipt.id).where(Receipt.transaction_id == tx_id)).all())) == (TX_WAITING, [])
    res = client.post(path, data={**fields, "choix": "payer", "csrf_token": token})  # the portal is back
    assert res.status_code == 303 and res.headers["Location"] == fields["return_url"]
    assert world.inside(slug, lambda: db.session.get(OnlineTransaction, tx_id).status) == "paid"


def test_the_tariffs_form_with_numbers_toml_reads_but_no_amount_holds_says_why(world):
    """Facturation → Tarifs takes the régie as TOML: 1e308, inf or nan where a number is expected answered
    500 (no Decimal quantizes them), and so did a number of 5,000 digits (tomllib's int() refuses it); a time
    of day where a text is expected could not be kept (JSON)."""
    slug = "auray"
    client = world.client("agent", slug)
    url = f"/{slug}/admin/facturation/tarifs"
    token = csrf_of(client.get(url).get_data(as_text=True))
    try:
        for toml, message in (("[regie]\nunjustified_absence_pct = 1e308", "« 1e+308 » n&#39;est pas un nombre entier."),
                              ("[regie]\npayment_day = inf", "« inf » n&#39;est pas un nombre entier."),
                              ("[regie]\nreminder_days_before = nan", "« nan » n&#39;est pas un nombre entier."),
                              ("[regie]\npayment_day = " + "9" * 5000, "un nombre a trop de chiffres.")):
            res = client.post(url, data={"config": toml, "csrf_token": token})
            body = res.get_data(as_text=True)
            assert res.status_code == 422 and judge(res) == [] and message in body, toml
            assert html.escape(toml, quote=False) in body  # what was typed comes back
        res = client.post(url, data={"config": '[regie]\ncode = "test"\nname = 07:32:00', "csrf_token": token})
        assert res.status_code == 303
        assert "07:32:00" in client.get(url).get_data(as_text=True)
    finally:
        world.put_back_billing(slug)


def test_digits_that_are_not_ascii_and_far_dates_in_billing_forms_say_why(world):
    """"²" passes str.isdigit() but not int(): a quotient typed "²" and a creditor id (ICS) with "é" or
    "²" answered 500, and so did a quotient or an amount of too many digits; a quotient valid from year 1
    or until 9999 was recorded.  Each now comes back with its message and what was typed."""
    slug = "saint-loubes"
    client = world.client("agent", slug)
    family_id = world.fresh_billed_family(slug)
    url = f"/{slug}/admin/facturation/familles/{family_id}/qf"
    token = csrf_of(client.get(url).get_data(as_text=True))
    today = clock.today().isoformat()
    for fields, message in (({"valeur": "²"}, "Le quotient familial s&#39;écrit en chiffres seulement"),
                            ({"valeur": "7²"}, "Le quotient familial s&#39;écrit en chiffres seulement"),
                            ({"valeur": "9" * 5000}, "Le quotient familial est compris entre 0 et 99 999."),
                            ({"du": "0001-01-01"}, "Date hors limites"), ({"au": "9999-12-31"}, "Date hors limites")):
        data = {"csrf_token": token, "action": "record", "valeur": "640", "source": "caf", "du": today, **fields}
        res = client.post(url, data=data)
        body = res.get_data(as_text=True)
        assert res.status_code == 422 and judge(res) == [] and message in body, fields
        assert all(f'value="{v}"' in body for v in fields.values()), fields
    account = f"/{slug}/admin/facturation/familles/{family_id}/compte"  # 101 digits: no Decimal quantizes them
    token = csrf_of(client.get(account).get_data(as_text=True))
    invoice_id = world.c[slug].invoice_ids[-1]
    for amount in ("9" * 101, "1e30"):
        res = client.post(account, data={"csrf_token": token, "factures": invoice_id, "montant": amount,
                                         "mode": "especes", "date": today})
        assert res.status_code == 422 and judge(res) == [], amount
        assert f"« {amount} » n&#39;est pas un montant" in res.get_data(as_text=True), amount
    tariffs = f"/{slug}/admin/facturation/tarifs"
    token = csrf_of(client.get(tariffs).get_data(as_text=True))
    try:
        for ics in ("FR12ZZZé12345", "FR²2ZZZ123456", "FR12ZZZ１２３４５"):
            res = client.post(tariffs, data={"config": f'[regie]\nsepa_creditor_id = "{ics}"', "csrf_token": token})
            assert res.status_code == 422 and judge(res) == [], ics
            assert "L&#39;identifiant créancier SEPA (ICS)" in res.get_data(as_text=True), ics
    finally:
        world.put_back_billing(slug)


def test_a_refused_quotient_request_keeps_no_justificatif(app, world):
    """Mes QF/Revenus: a justificatif sent with a quotient typed wrong ("7²", 5,000 digits), or while a
    request already waits, comes back with its message and leaves no file behind on the server."""
    from tests.post_sweep import PDF_TINY

    slug = "auray"
    client = world.client("parent", slug, fresh=True)
    url = f"/{slug}/mes-qf-revenus"
    token = csrf_of(client.get(url).get_data(as_text=True))
    folder = Path(app.config["UPLOADS_DIR"]) / slug / "justificatifs"

    def files():
        return sorted(folder.glob("*")) if folder.is_dir() else []

    def send(value):
        return client.post(url, data={"csrf_token": token, "valeur": value, "commentaire": "Attestation",
                                      "justificatif": (io.BytesIO(PDF_TINY), "caf.pdf")},
                           content_type="multipart/form-data")

    before = files()
    for value in ("7²", "9" * 5000, "100000"):
        res = send(value)
        assert res.status_code == 422 and judge(res) == [] and value[:50] in res.get_data(as_text=True), value[:10]
        assert files() == before, value[:10]
    assert send("640").status_code == 303
    stored = files()
    assert len(stored) == len(before) + 1
    res = send("700")  # one request already waits
    assert res.status_code == 422 and "est en attente de validation par la collectivité" in res.get_data(as_text=True)
    assert files() == stored

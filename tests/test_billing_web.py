"""Billing on the web: the agent runs, previews, publishes; the parent sees "Vous avez 1 facture non
réglée", the invoice, its PDF (text extracted), Mes QF/Revenus, the simulation, the attestations;
another commune's parent gets 404; bad input gets French messages and nothing half-written."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from core import clock
from extensions import db
from tests.billing_helpers import last_month, qf


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def _setup(billing_settings, month_activity, make_family, inscribe, book, inside, make_agent):
    billing_settings("auray")
    act = month_activity()
    fam = make_family("auray", children=[("Maël", "2022-04-12")], name="GUILLEVIC")
    inscribe(act, fam["child_ids"])
    first, _last = last_month()
    book(act, fam["child_ids"][0], [("matin", first), ("repas", first), ("matin", first + timedelta(days=1))])
    inside("auray", lambda: qf(fam["family_id"], 620, first))
    agent = make_agent("auray")
    return act, fam, agent


def test_agent_runs_publishes_and_the_parent_reads_the_invoice_and_its_pdf(
        web, make_web, billing_settings, month_activity, make_family, inscribe, book, inside, make_agent, outbox):
    act, fam, agent = _setup(billing_settings, month_activity, make_family, inscribe, book, inside, make_agent)
    staff = make_web()
    staff.login("auray", agent["email"])
    first, _last = last_month()
    res = staff.post("/auray/admin/facturation/", {"mois": first.strftime("%Y-%m"), "activites": [str(act["id"])]})
    assert res.status_code == 303
    run_url = res.headers["Location"]
    page = staff.get(run_url).get_data(as_text=True).replace('&#39;', "'")
    assert "GUILLEVIC" in page and "8,50\u00a0€" in page   # 3,00 + 2,50 + 3,00
    res = staff.post(run_url + "/publier", page=run_url)
    assert res.status_code == 303
    page = staff.get(run_url).get_data(as_text=True).replace('&#39;', "'")
    year = clock.today().year
    assert f"F-{year}-000001" in page and "Publiée le" in page
    assert "déjà été publiée" in staff.get(staff.post(run_url + "/publier", page=run_url).headers["Location"]) \
        .get_data(as_text=True).replace('&#39;', "'")
    assert len(outbox.messages) == 1 and f"Votre facture F-{year}-000001 est disponible" in outbox.text(outbox.messages[0])

    web.login("auray", fam["email"])
    assert "Vous avez 1 facture non réglée" in web.get("/auray/mon-espace").get_data(as_text=True).replace('&#39;', "'")
    listing = web.get("/auray/factures").get_data(as_text=True).replace('&#39;', "'")
    invoice_id = int(re.search(r"/auray/factures/(\d+)", listing).group(1))
    page = web.get(f"/auray/factures/{invoice_id}").get_data(as_text=True).replace('&#39;', "'")
    assert "Maël Guillevic" in page and "500 ≤ QF &lt; 1000" in page and "À payer" in page
    res = web.get(f"/auray/factures/{invoice_id}.pdf")
    assert res.mimetype == "application/pdf"
    text = pdf_text(res.data)
    for expected in (f"Facture F-{year}-000001", "Ville d'Auray", "Famille GUILLEVIC", "Maël Guillevic", "Matin",
                     "Repas", "3,00 €", "8,50 €", "Reste à payer"):
        assert expected in text.replace("\u00a0", " "), expected
    # the agent's CSV for the accountant
    csv = staff.get("/auray/admin/facturation/factures.csv").data
    assert csv.startswith("\ufeff".encode()) and f"F-{year}-000001;Facture".encode() in csv and b";850;" in csv


def test_a_parent_of_auray_gets_404_on_a_saint_loubes_invoice_and_its_pdf(
        web, make_web, billing_settings, month_activity, make_family, inscribe, book, inside, make_agent):
    billing_settings("saint-loubes")
    act = month_activity("saint-loubes")
    other = make_family("saint-loubes", children=[("Inès", "2018-05-21")])
    inscribe(act, other["child_ids"])
    book(act, other["child_ids"][0], [("matin", last_month()[0])])

    def publish():
        from tests.billing_helpers import run_month

        run_month([act["id"]], publish=True)
        from core.billing.models import Invoice

        return db.session.scalars(select(Invoice.id)).one()

    invoice_id = inside("saint-loubes", publish)
    owner = make_web()
    owner.login("saint-loubes", other["email"])
    assert owner.get(f"/saint-loubes/factures/{invoice_id}.pdf").status_code == 200
    auray = make_family("auray")
    web.login("auray", auray["email"])
    assert web.get(f"/auray/factures/{invoice_id}").status_code == 404
    assert web.get(f"/auray/factures/{invoice_id}.pdf").status_code == 404
    neighbour = make_family("saint-loubes", children=[("Hugo", "2020-01-30")])
    other_web = make_web()
    other_web.login("saint-loubes", neighbour["email"])
    assert other_web.get(f"/saint-loubes/factures/{invoice_id}").status_code == 404   # another family


def test_simulation_public_and_own_prices_and_bad_qf(web, billing_settings, month_activity, make_family, inscribe,
                                                    inside):
    billing_settings("auray")
    act = month_activity()
    page = web.get("/auray/tarifs?qf=500").get_data(as_text=True).replace('&#39;', "'")
    assert "Simulation des tarifs" in page and "3,00\u00a0€" in page
    res = web.get("/auray/tarifs?qf=12a")
    assert res.status_code == 422 and "s'écrit en chiffres seulement" in res.get_data(as_text=True).replace('&#39;', "'")
    assert "Simulation des tarifs" in web.get("/auray/").get_data(as_text=True).replace('&#39;', "'")
    fam = make_family("auray", children=[("Lou", "2022-01-01")])
    inscribe(act, fam["child_ids"])
    web.login("auray", fam["email"])
    page = web.get("/auray/tarifs").get_data(as_text=True).replace('&#39;', "'")
    assert "Aucun quotient familial valable : la tranche la plus haute" in page and "4,00\u00a0€" in page


def test_mes_qf_revenus_request_and_agent_acceptance_with_dates(web, make_web, make_family, make_agent, inside,
                                                                outbox):
    fam = make_family("auray")
    agent = make_agent("auray")
    web.login("auray", fam["email"])
    page = web.get("/auray/mes-qf-revenus").get_data(as_text=True).replace('&#39;', "'")
    assert "la collectivité en est gestionnaire et a besoin de pièces justificatives" in page
    res = web.post("/auray/mes-qf-revenus", {"valeur": "7x0", "justificatif": (io.BytesIO(b"%PDF-1.4 x"), "caf.pdf")},
                   content_type="multipart/form-data")
    assert res.status_code == 422 and "chiffres seulement" in res.get_data(as_text=True).replace('&#39;', "'")
    res = web.post("/auray/mes-qf-revenus", {"valeur": "710", "justificatif": (io.BytesIO(b"hello"), "caf.txt")},
                   content_type="multipart/form-data")
    assert res.status_code == 422 and "PDF, une image JPEG ou PNG" in res.get_data(as_text=True).replace('&#39;', "'")
    res = web.post("/auray/mes-qf-revenus", {"valeur": "710", "justificatif": (io.BytesIO(b"%PDF-1.4 x"), "caf.pdf")},
                   content_type="multipart/form-data")
    assert res.status_code == 303
    assert "en attente de validation" in web.get("/auray/mes-qf-revenus").get_data(as_text=True).replace('&#39;', "'")
    staff = make_web()
    staff.login("auray", agent["email"])
    url = f"/auray/admin/facturation/familles/{fam['family_id']}/qf"
    today = clock.today()
    res = staff.post(url, {"action": "accepter", "valeur": "71O", "source": "caf", "du": today.isoformat()})
    assert res.status_code == 422 and "chiffres seulement" in res.get_data(as_text=True).replace('&#39;', "'")
    res = staff.post(url, {"action": "accepter", "valeur": "710", "source": "caf", "du": today.isoformat(),
                           "au": (today - timedelta(days=1)).isoformat()})
    assert res.status_code == 422 and "La fin de validité précède son début" in res.get_data(as_text=True).replace('&#39;', "'")
    res = staff.post(url, {"action": "accepter", "valeur": "710", "source": "caf", "du": today.isoformat()})
    assert res.status_code == 303
    page = web.get("/auray/mes-qf-revenus").get_data(as_text=True).replace('&#39;', "'")
    assert "Quotient familial en vigueur : 710" in page
    assert any("Modification de votre dossier famille" in m["Subject"] for m in outbox.messages)


def test_bad_tariffs_are_refused_and_nothing_is_saved(make_web, make_agent, billing_settings, app, tenants,
                                                      make_activity):
    from tenants.models import Tenant

    billing_settings("auray")
    make_activity("auray", code="kids")
    agent = make_agent("auray")
    staff = make_web()
    staff.login("auray", agent["email"])
    url = "/auray/admin/facturation/tarifs"
    page = staff.get(url).get_data(as_text=True).replace('&#39;', "'")
    text = re.search(r'<textarea id="config"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    import html

    text = html.unescape(text)
    overlapping = text.replace('{ min = 500, max = 1000, price = "3.00" }', '{ min = 400, max = 1000, price = "3.00" }', 1)
    res = staff.post(url, {"config": overlapping}, page=url)
    assert res.status_code == 422 and "se chevauchent" in res.get_data(as_text=True).replace('&#39;', "'")
    negative = text.replace('price = "2.00"', 'price = "-2.00"', 1)
    res = staff.post(url, {"config": negative}, page=url)
    assert res.status_code == 422 and "ne peut pas être négatif" in res.get_data(as_text=True).replace('&#39;', "'")
    with app.app_context():
        saved = db.session.get(Tenant, tenants["auray"]).setting("billing")
        assert saved["tariffs"][0]["brackets"][0]["price"] == "2.00"
        db.session.remove()
    res = staff.post(url, {"config": text.replace('price = "2.00"', 'price = "2.20"', 1)}, page=url)
    assert res.status_code == 303


def test_a_month_in_the_future_and_a_second_publication_are_refused(make_web, make_agent, billing_settings,
                                                                   month_activity, inside):
    from core.billing.models import BillingRun

    billing_settings("auray")
    act = month_activity()
    agent = make_agent("auray")
    staff = make_web()
    staff.login("auray", agent["email"])
    nxt = (clock.today().replace(day=1) + timedelta(days=32)).replace(day=1)
    res = staff.post("/auray/admin/facturation/", {"mois": nxt.strftime("%Y-%m"), "activites": [str(act["id"])]})
    assert res.status_code == 422 and "n'a pas commencé" in res.get_data(as_text=True).replace('&#39;', "'")
    assert inside("auray", lambda: db.session.scalar(select(func.count()).select_from(BillingRun))) == 0


def test_the_planning_and_each_tick_show_the_estimated_cost_without_one_more_statement(
        web, app, billing_settings, make_activity, make_family, inscribe, inside, monkeypatch):
    from tests.conftest import days_from_today
    from tests.sql_count import statements

    billing_settings("auray")
    act = make_activity("auray", starts_in=10, days=10)
    fam = make_family("auray", children=[("Lou", "2022-01-01")])
    inscribe(act, fam["child_ids"])
    inside("auray", lambda: qf(fam["family_id"], 450, clock.today()))
    web.login("auray", fam["email"])
    res = web.post(f"/auray/reservations/{act['id']}", {"enfants": [str(fam["child_ids"][0])]})
    cart = int(re.search(r"/demarches/(\d+)/", res.headers["Location"]).group(1))
    kid = fam["child_ids"][0]
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")
    page = web.get(f"/auray/demarches/{cart}/planning").get_data(as_text=True)
    assert "Coût estimé de la démarche : 0,00\u00a0€" in page

    def tick(unit, offset):
        slot = act["slots"][(unit, days_from_today(offset).isoformat())]
        return web.post(f"/auray/demarches/{cart}/choix", {"child": kid, "slot": slot, f"c-{kid}-{slot}": "1"},
                        headers={"HX-Request": "true"})

    tick("matin", 11)
    answers = []
    sent = statements(app, lambda: answers.append(tick("repas", 11)) or answers[-1])
    html = answers[0].get_data(as_text=True)
    assert 'id="cart-estimate" class="estimate" hx-swap-oob="true"' in html
    assert "Coût estimé de la démarche : 3,00\u00a0€" in html   # Matin 2,00 + Repas 1,00 (QF 450)
    with app.app_context():
        assert len(sent) <= (4 if db.engine.dialect.name == "postgresql" else 6)
    recap = web.get(f"/auray/demarches/{cart}/recapitulatif").get_data(as_text=True)
    assert "Coût estimé de la démarche : 3,00\u00a0€" in recap


def test_an_overdue_invoice_shows_in_the_readiness_check_and_an_agent_refuses_from_the_list(
        app, web, make_web, billing_settings, make_activity, make_family, inscribe, make_agent, inside, outbox):
    """The régie makes an overdue invoice blocking (TEST_BILLING: overdue_blocks): the family's
    readiness check says "Facture impayée en retard"; the agents' list of demandes flags the family
    and refuses its demande with the motif "Factures impayées" in one click (mail, history)."""
    from core.billing.models import Invoice
    from tests.admin_helpers import book as book_demande
    from tests.admin_helpers import demande_state
    from tests.conftest import days_from_today

    billing_settings("auray")
    act = make_activity("auray", starts_in=10, days=5)
    today = clock.today()
    born = (today - timedelta(days=5 * 365)).isoformat()   # 5 years old whatever the day (Kids: 3-7)
    late = make_family("auray", name="KERLEAU", children=[("Nina", born)])
    fine = make_family("auray", name="LE GOFF", children=[("Yann", born)])
    inscribe(act, late["child_ids"] + fine["child_ids"])

    def overdue_invoice():
        db.session.add(Invoice(regie="test", year=today.year, sequence=1, number=f"F-{today.year}-000001",
                               family_id=late["family_id"], family_name="KERLEAU", issued_on=today - timedelta(days=40),
                               due_on=today - timedelta(days=1), total=Decimal("12.50")))

    inside("auray", overdue_invoice)
    day = days_from_today(10).isoformat()
    dem_late = book_demande(app, late, act, [(late["child_ids"][0], act["slots"][("matin", day)])])
    dem_fine = book_demande(app, fine, act, [(fine["child_ids"][0], act["slots"][("matin", day)])])

    web.login("auray", late["email"])
    dashboard = web.get("/auray/mon-espace").get_data(as_text=True).replace('&#39;', "'")
    assert f"Facture impayée en retard (F-{today.year}-000001)" in dashboard
    assert "Vous avez 1 facture non réglée" in dashboard

    agent = make_agent("auray")
    staff = make_web()
    staff.login("auray", agent["email"])
    listing = staff.get("/auray/admin/demandes").get_data(as_text=True).replace('&#39;', "'")
    assert listing.count("Facture impayée en retard") == 1   # KERLEAU's row only
    assert f"(demande N° {dem_late['number']})" in listing and f"(demande N° {dem_fine['number']})" not in listing
    token = re.search(r'name="csrf_token" value="([^"]+)"', listing).group(1)
    res = staff.post(f"/auray/admin/demandes/{dem_late['id']}/decision", {
        "csrf_token": token, "action": "refuser", "motif_choice": "Factures impayées", "expected_status": "deposee",
        "next": "/auray/admin/demandes"})
    assert res.status_code == 303 and res.headers["Location"].endswith("/auray/admin/demandes")
    after = staff.get(res.headers["Location"]).get_data(as_text=True).replace('&#39;', "'")
    assert f"Demande N° {dem_late['number']} : Traitée négativement." in after
    state = demande_state(app, act["tenant_id"], dem_late["id"])
    assert state["status"] == "refusee" and state["motif"] == "Factures impayées"
    assert state["events"][-1][:2] == ("refusee", "Agent Test")
    (mail,) = [m for m in outbox.to(late["email"]) if "traitée négativement" in outbox.text(m)]
    assert "Motif : Factures impayées" in outbox.text(mail)
    assert demande_state(app, act["tenant_id"], dem_fine["id"])["status"] == "deposee"   # the other one untouched


TARIFF_TEXT = '''[regie]
code = "test"
prefix = "F"
payment_day = 15

[[tariffs]]
activity = "kids"
unit = "matin"
label = "Matin"
valid_from = "2000-01-01"
brackets = [
  { min = 0, max = 500, price = "2.00" },
  { min = 500, price = "3.00" },
]
'''


@pytest.mark.parametrize("change, message", [
    (('label = "Matin"', 'label = "Matin'), "n'est pas lisible à la ligne 9"),            # a quote missing
    (('{ min = 500, price', '{ min = 400, price'), "Tarif n° 1 (kids / matin) : Les tranches 0–500 et 400+ se "
                                                   "chevauchent"),
    (('price = "2.00"', 'price = "-2.00"'), "Tarif n° 1 (kids / matin) : Un tarif ne peut pas être négatif"),
    (('{ min = 500,', '{ min = "5OO",'), "Tarif n° 1 (kids / matin) : « 5OO » n'est pas un nombre entier"),
    (('price = "3.00"', 'price = "3,5O"'), "« 3,5O » n'est pas un montant (exemple : 12,50)"),
    (('activity = "kids"', 'activity = "kidz"'), "l'activité « kidz » n'existe pas dans la commune"),
    (('label = "Matin"', 'lable = "Matin"'), "Tarif n° 1 (kids / matin) : clé inconnue « lable »"),
    (('payment_day = 15', 'payment_day = 40'), "[regie] : Le jour d'échéance est compris entre 1 et 28"),
    (('payment_day = 15', 'payment_day = 15\noverdue_blocks = "oui"'), "overdue_blocks : « oui » n'est pas true"),
    (('valid_from = "2000-01-01"', 'valid_from = "2000-01-01"\nvalid_to = "1999-12-31"'),
     "La fin de validité précède son début"),
    (('valid_from = "2000-01-01"', 'valid_from = "01/01/2000"'), "« 01/01/2000 » n'est pas une date (AAAA-MM-JJ)"),
    (('brackets = [', 'sibling_reduction_pct = 10\nbrackets = ['), "sibling_reduction_pct : une liste est attendue"),
    (('brackets = [\n  { min = 0, max = 500, price = "2.00" },', 'brackets = [\n  500,'),
     "tranche n° 1 : une table est attendue"),
    (('[regie]\ncode = "test"\nprefix = "F"\npayment_day = 15\n', 'regie = 5\n'),
     "[regie] : une table est attendue"),
    ((TARIFF_TEXT, 'tariffs = "kids"\n' + TARIFF_TEXT[:TARIFF_TEXT.index("[[tariffs]]")]),
     "tariffs : une liste est attendue"),
    (('[[tariffs]]', '[[tarifs]]'), "clé inconnue « tarifs » (clés possibles : regie, tariffs)"),
])
def test_every_error_in_the_tariffs_text_is_said_in_french_next_to_it_and_the_text_is_kept(
        make_web, make_agent, billing_settings, make_activity, app, tenants, change, message):
    """Tariffs are edited as text (TOML): acceptable only because every mistake is refused with a
    French message under the text area that names where it is, the text as typed comes back, and
    nothing is saved."""
    import html

    from tenants.models import Tenant

    billing_settings("auray")
    make_activity("auray", code="kids")
    agent = make_agent("auray")
    staff = make_web()
    staff.login("auray", agent["email"])
    url = "/auray/admin/facturation/tarifs"
    assert staff.post(url, {"config": TARIFF_TEXT}, page=url).status_code == 303   # the good text is saved
    old, new = change
    assert old in TARIFF_TEXT
    bad = TARIFF_TEXT.replace(old, new, 1)
    res = staff.post(url, {"config": bad}, page=url)
    page = res.get_data(as_text=True)
    assert res.status_code == 422, page[:300]
    field = re.search(r'<div class="field field--error">(.*?)</div>', page, re.S).group(1)
    assert 'aria-invalid="true" aria-describedby="config-error"' in field
    error = html.unescape(re.search(r'<p class="error" id="config-error">(.*?)</p>', field, re.S).group(1))
    assert message in error, error
    kept = html.unescape(re.search(r'<textarea id="config"[^>]*>(.*?)</textarea>', field, re.S).group(1))
    assert kept.strip() == bad.strip()
    with app.app_context():
        saved = db.session.get(Tenant, tenants["auray"]).setting("billing")
        assert saved["tariffs"][0]["label"] == "Matin" and saved["regie"]["payment_day"] == 15
        db.session.remove()

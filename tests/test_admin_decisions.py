"""Agents decide demandes and inscriptions: reservations, waiting list, mails, history, concurrency."""

from __future__ import annotations

import threading

import pytest

from core.models import Demande
from extensions import db
from tenants.context import tenant_scope
from tests.admin_helpers import Links, book, demande_state, inscription_demande
from tests.conftest import days_from_today, require


@pytest.fixture
def kids(app, make_family, make_activity, inscribe, make_agent):
    act = make_activity("auray", starts_in=10, days=5, name="Accueil de loisirs Petites vacances Kids")
    fam = make_family("auray", name="KERGOSIEN", children=[("Maël", "2021-04-12"), ("Lilou", "2020-09-01")])
    inscribe(act, fam["child_ids"])
    day = days_from_today(10).isoformat()
    demande = book(app, fam, act, [(fam["child_ids"][0], act["slots"][("matin", day)]),
                                   (fam["child_ids"][1], act["slots"][("repas", day)])])
    agent = make_agent("auray")
    return {"act": act, "fam": fam, "demande": demande, "day": day, "agent": agent}


def page(kids):
    return f"/auray/admin/demandes/{kids['demande']['id']}"


def decide_web(web, kids, data):
    return web.post(page(kids) + "/decision", data, page=page(kids))


def test_the_demande_page_shows_family_children_lines_and_capacity(web, kids):
    web.login("auray", kids["agent"]["email"])
    html = web.get(page(kids)).get_data(as_text=True)
    assert f"Demande N° {kids['demande']['number']}" in html and "KERGOSIEN" in html
    assert "Maël" in html and "Lilou" in html and kids["fam"]["email"] in html
    # capacity 2 per unit, this pending place already counted: 1 left
    assert "Capacité <strong>2</strong>" in html and "prises <strong>1</strong> (dont celle-ci)" in html
    assert "restantes en ligne <strong>1</strong>" in html
    assert "Pièces manquantes au dossier" in html and "Factures impayées" in html  # the commune's motifs


def test_accept_all_reserves_and_mails_traitee_positivement(app, web, kids, outbox):
    web.login("auray", kids["agent"]["email"])
    res = decide_web(web, kids, {"action": "accepter"})
    assert res.status_code == 303
    html = web.get(res.headers["Location"]).get_data(as_text=True)
    assert "Traitée positivement" in html
    state = demande_state(app, kids["act"]["tenant_id"], kids["demande"]["id"])
    assert state["status"] == "acceptee" and set(state["reservations"].values()) == {"reserved"}
    assert state["events"][-1][:2] == ("acceptee", "Agent Test")  # the history names the agent
    (mail,) = [m for m in outbox.to(kids["fam"]["email"]) if "traitée" in outbox.text(m)]
    assert "a été traitée positivement" in outbox.text(mail)
    assert f"/auray/demandes/{kids['demande']['number']}" in outbox.text(mail)


def test_refuse_with_a_motif_frees_the_places_and_the_mail_carries_the_motif(app, web, kids, outbox, make_family,
                                                                              inscribe):
    # a second family waits for the matin place (capacity 2: fill it, then waitlist)
    other = make_family("auray", children=[("Nolan", "2020-01-01"), ("Inès", "2020-02-02")])
    inscribe(kids["act"], other["child_ids"])
    matin = kids["act"]["slots"][("matin", kids["day"])]
    book(app, other, kids["act"], [(other["child_ids"][0], matin)])
    book(app, other, kids["act"], [(other["child_ids"][1], matin)], waitlist=True)
    web.login("auray", kids["agent"]["email"])
    res = decide_web(web, kids, {"action": "refuser", "motif_choice": "Factures impayées",
                                 "motif_text": "Merci de régulariser auprès du service."})
    assert res.status_code == 303
    state = demande_state(app, kids["act"]["tenant_id"], kids["demande"]["id"])
    assert state["status"] == "refusee" and set(state["reservations"].values()) == {"refused"}
    assert state["motif"] == "Factures impayées — Merci de régulariser auprès du service."
    (mail,) = [m for m in outbox.to(kids["fam"]["email"]) if "traitée négativement" in outbox.text(m)]
    assert "Factures impayées — Merci de régulariser auprès du service." in outbox.text(mail)
    # the freed matin place went to the waiting list
    promoted = [m for m in outbox.to(other["email"]) if "Une place s'est libérée" in m["Subject"]]
    assert len(promoted) == 1 and "Inès" in outbox.text(promoted[0])


def test_line_by_line(app, web, kids, outbox):
    web.login("auray", kids["agent"]["email"])
    first, second = kids["demande"]["line_ids"]
    res = decide_web(web, kids, {"action": "lignes", f"ligne-{first}": "accepter", f"ligne-{second}": "refuser",
                                 "motif_choice": "Pièces manquantes au dossier"})
    assert res.status_code == 303
    state = demande_state(app, kids["act"]["tenant_id"], kids["demande"]["id"])
    assert state["status"] == "partielle"
    assert state["lines"] == {first: "accepted", second: "refused"}
    (mail,) = [m for m in outbox.to(kids["fam"]["email"]) if "partiellement" in outbox.text(m)]
    assert f"{state['labels'][second]} (Pièces manquantes au dossier)" in outbox.text(mail)


def test_one_line_now_and_the_other_later(app, web, kids):
    web.login("auray", kids["agent"]["email"])
    first, second = kids["demande"]["line_ids"]
    assert decide_web(web, kids, {"action": "lignes", f"ligne-{first}": "accepter"}).status_code == 303
    state = demande_state(app, kids["act"]["tenant_id"], kids["demande"]["id"])
    assert state["status"] == "en_cours" and state["lines"][second] == "pending"
    assert decide_web(web, kids, {"action": "accepter"}).status_code == 303
    assert demande_state(app, kids["act"]["tenant_id"], kids["demande"]["id"])["status"] == "acceptee"


def test_refusing_without_a_motif_is_explained_and_keeps_what_was_typed(app, web, kids, outbox):
    web.login("auray", kids["agent"]["email"])
    first, second = kids["demande"]["line_ids"]
    res = decide_web(web, kids, {"action": "lignes", f"ligne-{first}": "refuser", "motif_choice": "",
                                 "motif_text": ""})
    html = res.get_data(as_text=True)
    assert res.status_code == 200
    assert "Choisissez un motif de refus dans la liste ou écrivez-le dans les précisions." in html
    assert f'name="ligne-{first}" value="refuser" checked' in html  # the choice made is kept
    res = decide_web(web, kids, {"action": "lignes"})
    assert "Choisissez « Accepter » ou « Refuser » pour au moins une ligne." in res.get_data(as_text=True)
    assert demande_state(app, kids["act"]["tenant_id"], kids["demande"]["id"])["status"] == "deposee"
    assert not [m for m in outbox.to(kids["fam"]["email"]) if "traitée" in outbox.text(m)]


def test_two_agents_on_the_same_demande_one_wins_the_other_is_told(app, make_web, kids, make_agent):
    second = make_agent("auray", email="agent2@auray.test")
    a, b = make_web(), make_web()
    a.login("auray", kids["agent"]["email"])
    b.login("auray", second["email"])
    token_a = a.csrf_for(page(kids))  # both have the page open
    token_b = b.csrf_for(page(kids))
    res_b = b.client.post(page(kids) + "/decision", data={"csrf_token": token_b, "action": "accepter",
                                                          "expected_status": "deposee"})
    assert res_b.status_code == 303
    res_a = a.client.post(page(kids) + "/decision", data={
        "csrf_token": token_a, "action": "refuser", "motif_choice": "Factures impayées", "expected_status": "deposee"})
    assert res_a.status_code == 303
    html = a.get(res_a.headers["Location"]).get_data(as_text=True)
    assert "Cette demande a déjà été traitée par quelqu&#39;un d&#39;autre." in html
    state = demande_state(app, kids["act"]["tenant_id"], kids["demande"]["id"])
    assert state["status"] == "acceptee" and state["motif"] is None


@pytest.mark.postgres
def test_two_agents_at_the_same_instant_on_postgres(app, is_postgres, kids):
    """Two real connections decide at once: the demande row lock lets one through."""
    if not is_postgres:
        require("PostgreSQL", "définissez TEST_DATABASE_URL pour le test de concurrence")
    from core.demandes import AlreadyDecided, decide

    barrier = threading.Barrier(2)
    outcomes = []

    def agent(name, accept):
        with app.app_context(), tenant_scope(kids["act"]["tenant_id"]):
            demande = db.session.get(Demande, kids["demande"]["id"])
            ids = {line.id for line in demande.lines}
            barrier.wait()
            try:
                decide(demande, accept=ids if accept else set(), refuse=set() if accept else ids,
                       motif=None if accept else "Factures impayées", actor=name, links=Links())
                db.session.commit()
                outcomes.append((name, "won"))
            except AlreadyDecided:
                db.session.rollback()
                outcomes.append((name, "told"))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=agent, args=("A", True)), threading.Thread(target=agent, args=("B", False))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o for _n, o in outcomes) == ["told", "won"]
    winner = next(n for n, o in outcomes if o == "won")
    state = demande_state(app, kids["act"]["tenant_id"], kids["demande"]["id"])
    assert state["status"] == ("acceptee" if winner == "A" else "refusee")
    assert [e for e in state["events"] if e[1] in ("A", "B")] == [(state["status"], winner, e_note(state))]


def e_note(state):
    return state["motif"]


# ---------------------------------------------------------------------------- inscriptions

def test_inscriptions_to_validate(app, web, make_family, make_activity, make_agent, outbox, tenants):
    act = make_activity("saint-aubin-de-medoc", code="stages", name="Séjours & Stages", kind="sessions",
                        sessions=[{"date": days_from_today(40).isoformat(), "title": "Stage cirque", "places": 8}],
                        ages=[6, 12], starts_in=30, days=30)
    fam = make_family("saint-aubin-de-medoc", name="CASTAING", children=[("Timéo", "2018-02-08"), ("Zoé", "2018-06-01")])
    ins = inscription_demande(app, fam, act, fam["child_ids"])
    agent = make_agent("saint-aubin-de-medoc")
    web.login("saint-aubin-de-medoc", agent["email"])
    assert "Inscriptions à valider" in web.get("/saint-aubin-de-medoc/admin/").get_data(as_text=True)
    html = web.get("/saint-aubin-de-medoc/admin/inscriptions").get_data(as_text=True)
    assert "Timéo" in html and "Zoé" in html and f"N° {ins['number']}" in html
    from sqlalchemy import select

    from core.models import Inscription

    with app.app_context(), tenant_scope(tenants["saint-aubin-de-medoc"]):
        rows = {i.child_id: i.id for i in db.session.scalars(select(Inscription))}
        db.session.remove()
    timeo, zoe = rows[fam["child_ids"][0]], rows[fam["child_ids"][1]]
    url = "/saint-aubin-de-medoc/admin/inscriptions"
    res = web.post(f"{url}/{timeo}/decision", {"decision": "valider"}, page=url)
    assert res.status_code == 303
    assert "Inscription de Timéo Castaing à Séjours &amp; Stages validée." in web.get(res.headers["Location"]).get_data(as_text=True)
    # refusing needs a motif
    res = web.post(f"{url}/{zoe}/decision", {"decision": "refuser"}, page=url)
    assert "choisissez un motif" in web.get(res.headers["Location"]).get_data(as_text=True)
    res = web.post(f"{url}/{zoe}/decision", {"decision": "refuser", "motif_choice": "Pièces manquantes au dossier"},
                   page=url)
    with app.app_context(), tenant_scope(tenants["saint-aubin-de-medoc"]):
        statuses = {i.child_id: i.status for i in db.session.scalars(select(Inscription))}
        demande = db.session.get(Demande, ins["id"])
        assert demande.status == "partielle"
        db.session.remove()
    assert statuses == {fam["child_ids"][0]: "accepted", fam["child_ids"][1]: "refused"}
    (mail,) = [m for m in outbox.to(fam["email"]) if "partiellement" in outbox.text(m)]
    assert "Pièces manquantes au dossier" in outbox.text(mail)
    # deciding again is refused politely
    res = web.post(f"{url}/{zoe}/decision", {"decision": "valider"}, page=url)
    assert "déjà été traitée" in web.get(res.headers["Location"]).get_data(as_text=True)


# ---------------------------------------------------------------------------- the queue

def test_queue_oldest_first_filters_and_dashboard_counts(app, web, kids, make_family, make_activity, inscribe):
    other_act = make_activity("auray", code="klub", name="Klub 8-12 ans", ages=[3, 12])
    fam = make_family("auray", name="LE GOFF", children=[("Yann", "2019-01-01")])
    inscribe(other_act, fam["child_ids"])
    slot = next(iter(other_act["slots"].values()))
    later = book(app, fam, other_act, [(fam["child_ids"][0], slot)])
    web.login("auray", kids["agent"]["email"])
    html = web.get("/auray/admin/demandes").get_data(as_text=True)
    assert html.index("KERGOSIEN") < html.index("LE GOFF")  # oldest first
    html = web.get(f"/auray/admin/demandes?activite={other_act['id']}").get_data(as_text=True)
    assert "LE GOFF" in html and "KERGOSIEN" not in html
    dash = web.get("/auray/admin/").get_data(as_text=True)
    assert "Demandes à traiter" in dash and '<a href="/auray/admin/demandes">2</a>' in dash
    decide_web(web, kids, {"action": "accepter"})
    assert "KERGOSIEN" not in web.get("/auray/admin/demandes").get_data(as_text=True)
    assert "KERGOSIEN" in web.get("/auray/admin/demandes?statut=acceptee").get_data(as_text=True)
    assert '<a href="/auray/admin/demandes">1</a>' in web.get("/auray/admin/").get_data(as_text=True)
    res = web.get("/auray/admin/demandes?du=32/13/2026")
    assert res.status_code == 200 and "Date invalide : saisissez-la au format JJ/MM/AAAA." in res.get_data(as_text=True)
    assert 'value="32/13/2026"' in res.get_data(as_text=True)
    today = days_from_today(0).strftime("%d/%m/%Y")
    assert "LE GOFF" in web.get(f"/auray/admin/demandes?du={today}&au={today}").get_data(as_text=True)
    assert "LE GOFF" not in web.get("/auray/admin/demandes?au=01/01/2020").get_data(as_text=True)
    assert later["status"] == "deposee"

"""Authorisation over EVERY route of the agent space and of /support/ (read from the URL map).

* a parent gets 403 in its own commune;
* an agent of Auray is anonymous in Saint-Loubès (sent to its login page) and gets 404 in Auray for
  anything of Saint-Loubès by id: never a 200 with another commune's data;
* support reaches every commune, and each switch is in the audit log;
* every POST without its CSRF token is refused with 400.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from core.admin_models import AuditLog
from extensions import db
from tenants.context import tenant_scope
from tenants.rls import maintenance_session
from tests.admin_helpers import (  # noqa: F401 (keep_tenant_settings is a fixture)
    book,
    inscription_demande,
    keep_tenant_settings,
    make_support,
    support_enter,
    support_login,
)
from tests.conftest import days_from_today

pytestmark = pytest.mark.usefixtures("keep_tenant_settings")

PARAM = re.compile(r"<(?:[^:<>]+:)?(\w+)>")


def rules(app, prefix):
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(prefix):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                out.append((rule, method))
    return sorted(out, key=lambda r: (r[0].rule, r[1]))


def url_for_rule(rule, slug, ids):
    def sub(match):
        name = match.group(1)
        if name == "tenant":
            return slug
        if name in ids:
            return str(ids[name])
        if name in ("filename", "path", "token"):
            return "x"
        return "1"  # ids of other modules' objects: the first row of that table

    return PARAM.sub(sub, rule.rule)


@pytest.fixture
def world(app, make_family, make_agent, make_activity, inscribe):
    """Saint-Loubès data with every kind of object an admin URL can point at."""
    from core import allocation
    from core.models import Activity

    fam = make_family("saint-loubes", name="LOUBESFAM", children=[("Léonie", "2018-03-01"), ("Jules", "2016-05-01")])
    stage = make_activity("saint-loubes", starts_in=20, days=10, code="stages", name="Stages Loubès", kind="sessions",
                          validation="prereservation", prereservation_until=days_from_today(5).isoformat(),
                          ages=[3, 12], sessions=[{"dates": [days_from_today(21).isoformat()], "title": "Stage poney",
                                                   "places": 4}])
    inscribe(stage, fam["child_ids"])
    slot = stage["slots"][("Stage poney", days_from_today(21).isoformat())]
    demande = book(app, fam, stage, [(fam["child_ids"][0], slot)])
    other = make_activity("saint-loubes", code="mercredis", name="Mercredis Loubès", ages=[3, 12])
    ins = inscription_demande(app, fam, other, [fam["child_ids"][1]])
    make_agent("saint-loubes")
    with app.test_request_context("/saint-loubes/"), tenant_scope(stage["tenant_id"]):
        activity = db.session.get(Activity, stage["id"])
        run = allocation.preview(activity, allocation.Rules(), seed=7, actor="Agent")
        db.session.commit()
        from core.models import Inscription

        inscription_id = db.session.scalars(select(Inscription.id).where(
            Inscription.demande_id == ins["id"])).first()
        ids = {"demande_id": demande["id"], "activity_id": stage["id"], "family_id": fam["family_id"],
               "inscription_id": inscription_id, "run_id": run.id, "index": 999, "slug": "saint-loubes"}
        db.session.remove()
    return ids


def test_every_admin_route_is_listed(app):
    endpoints = {rule.endpoint for rule, _m in rules(app, "admin.")}
    for expected in ("admin.demandes", "admin.demande_decide", "admin.inscriptions", "admin.allocation_publish",
                     "admin.presence_csv", "admin.activity_edit", "admin.settings_identity", "admin.directory_account",
                     "admin.journal", "admin.support_entry"):
        assert expected in endpoints


def test_a_parent_gets_403_on_every_admin_route_of_its_own_commune(app, web, world, make_family):
    parent = make_family("saint-loubes")
    web.login("saint-loubes", parent["email"])
    token = web.csrf_for("/saint-loubes/mon-espace")
    for rule, method in rules(app, "admin."):
        url = url_for_rule(rule, "saint-loubes", world)
        res = web.get(url) if method == "GET" else web.client.post(url, data={"csrf_token": token})
        expected = 404 if rule.endpoint == "admin.support_entry" else 403  # no token: nothing there
        assert res.status_code == expected, (rule.endpoint, method, res.status_code)
        assert "LOUBESFAM" not in res.get_data(as_text=True)


def test_an_auray_agent_never_sees_saint_loubes(app, web, world, make_agent):
    agent = make_agent("auray")
    web.login("auray", agent["email"])
    # 1. In Saint-Loubès the Auray session is anonymous: sent to the login page (or the POST is refused).
    for rule, method in rules(app, "admin."):
        url = url_for_rule(rule, "saint-loubes", world)
        res = web.get(url) if method == "GET" else web.client.post(url, data={})
        assert res.status_code != 200, (rule.endpoint, method)
        if method == "GET" and rule.endpoint != "admin.support_entry":
            assert res.status_code == 302 and "/saint-loubes/connexion" in res.headers["Location"], rule.endpoint
        assert "LOUBESFAM" not in res.get_data(as_text=True)
    # 2. In Auray, a Saint-Loubès id answers 404, for reading and for changing.
    token = web.csrf_for("/auray/admin/")
    checked = 0
    for rule, method in rules(app, "admin."):
        names = set(PARAM.findall(rule.rule)) - {"tenant", "index"}
        if not names and rule.endpoint != "admin.support_entry":
            continue
        url = url_for_rule(rule, "auray", world)
        res = web.get(url) if method == "GET" else web.client.post(url, data={"csrf_token": token})
        assert res.status_code == 404, (rule.endpoint, method, res.status_code)
        checked += 1
    assert checked >= 12
    # 3. The pages without ids only show Auray.
    for rule, method in rules(app, "admin."):
        if method == "GET" and set(PARAM.findall(rule.rule)) == {"tenant"} and rule.endpoint not in (
                "admin.support_entry", "admin.presence_csv"):
            res = web.get(url_for_rule(rule, "auray", world) + "?q=L&statut=toutes")
            assert res.status_code == 200, rule.endpoint
            html = res.get_data(as_text=True)
            assert "LOUBESFAM" not in html and "Léonie" not in html and "Stages Loubès" not in html, rule.endpoint
    # 4. Ids in the query string too.
    act = world["activity_id"]
    assert web.get(f"/auray/admin/listes.csv?activite={act}").status_code == 404
    for path in (f"/auray/admin/listes?activite={act}", f"/auray/admin/demandes?activite={act}&statut=toutes",
                 f"/auray/admin/inscriptions?activite={act}&statut=pending"):
        html = web.get(path).get_data(as_text=True)
        assert "LOUBESFAM" not in html and "Léonie" not in html and "Stage poney" not in html, path


def test_every_post_without_csrf_token_is_refused(app, web, world, make_agent):
    agent = make_agent("saint-loubes", email="agent2@saint-loubes.test")
    web.login("saint-loubes", agent["email"])
    posts = [(rule, m) for rule, m in rules(app, "admin.") if m == "POST"]
    assert len(posts) >= 12
    for rule, _m in posts:
        res = web.client.post(url_for_rule(rule, "saint-loubes", world), data={"action": "accepter"})
        assert res.status_code == 400, rule.endpoint
        assert "Formulaire expiré" in res.get_data(as_text=True)
    support = make_support(app)
    support_login(web, support)
    for rule, _m in [(rule, m) for rule, m in rules(app, "support.") if m == "POST"]:
        res = web.client.post(url_for_rule(rule, "saint-loubes", world), data={"email": support["email"]})
        assert res.status_code == 400, rule.endpoint


def test_support_reaches_every_commune_and_each_switch_is_logged(app, web, world, tenants):
    support = make_support(app)
    assert web.get("/support/").status_code == 302  # login first
    support_login(web, support)
    html = web.get("/support/").get_data(as_text=True)
    for slug in tenants:
        support_enter(web, slug)
        res = web.get(f"/{slug}/admin/")
        assert res.status_code == 200
    # inside Saint-Loubès, every page of the agent space opens, with the banner
    support_enter(web, "saint-loubes")
    for rule, method in rules(app, "admin."):
        if method != "GET" or rule.endpoint == "admin.support_entry":
            continue
        res = web.get(url_for_rule(rule, "saint-loubes", world))
        known = all(arg in world or arg == "tenant" for arg in rule.arguments)
        if not known:  # an object of another module that this world does not create: found or 404, never 403/500
            assert res.status_code in (200, 404), rule.endpoint
            continue
        assert res.status_code == 200, rule.endpoint
        if rule.endpoint not in ("admin.presence_csv",) and res.mimetype == "text/html":
            assert "Mode support — Mairie de Saint-Loubès" in res.get_data(as_text=True), rule.endpoint
    with app.app_context(), maintenance_session("tests: le journal de toutes les communes") as session:
        switches = session.scalars(select(AuditLog).where(AuditLog.action == "switch_in")).all()
        assert sorted(e.tenant_id for e in switches) == sorted(list(tenants.values()) + [tenants["saint-loubes"]])
        assert all(e.actor == "Sam Support (support)" and e.token is None for e in switches)
    html = web.get("/support/journal").get_data(as_text=True)
    assert html.count("Entrée en mode support") == len(tenants) + 1
    assert "Entrée en mode support — Ville d&#39;Auray" in html


def test_the_entry_token_works_once_and_only_in_its_commune(app, web, make_family):
    support = make_support(app)
    support_login(web, support)
    res = web.post("/support/communes/auray/entrer", {}, page="/support/")
    link = res.headers["Location"]
    token = link.split("jeton=")[1]
    assert web.get(f"/saint-loubes/admin/support-entree?jeton={token}").status_code == 404
    assert web.get(link).status_code == 302
    other = type(web)(app.test_client())
    assert other.get(link).status_code == 404  # used
    assert other.get("/auray/admin/").status_code == 302  # still anonymous


def test_support_is_not_an_agent_in_a_commune_it_did_not_enter(app, web, world):
    support = make_support(app)
    support_login(web, support)
    support_enter(web, "auray")
    res = web.get("/saint-loubes/admin/")
    assert res.status_code == 302 and "/saint-loubes/connexion" in res.headers["Location"]


def test_changes_in_support_mode_are_logged_and_readable_by_the_agents(app, web, make_web, world):
    support = make_support(app)
    support_login(web, support)
    support_enter(web, "saint-loubes")
    res = web.post("/saint-loubes/admin/commune/motifs", {"motifs": "Pièces manquantes au dossier\nQuotient à justifier"},
                   page="/saint-loubes/admin/commune")
    assert res.status_code == 303
    # a form with an error changes nothing and is not logged
    web.post("/saint-loubes/admin/commune/motifs", {"motifs": ""}, page="/saint-loubes/admin/commune")
    res = web.post("/saint-loubes/admin/support-sortie", {}, page="/saint-loubes/admin/")
    assert res.status_code == 302 and res.headers["Location"].endswith("/support/")
    assert web.get("/saint-loubes/admin/").status_code == 302  # out of the commune again
    agent = make_web()
    agent.login("saint-loubes", "agent@saint-loubes.test")
    html = agent.get("/saint-loubes/admin/journal").get_data(as_text=True)
    assert "Entrée en mode support — Mairie de Saint-Loubès" in html
    assert "Motifs de refus modifiés" in html and "Sortie du mode support" in html
    assert html.count("Sam Support (support)") == 3
    auray = make_web()
    auray.login("auray", make_agent_email(app))
    assert "Saint-Loubès" not in auray.get("/auray/admin/journal").get_data(as_text=True)


def make_agent_email(app):
    from core.accounts import hash_password
    from core.clock import utcnow
    from core.models import ROLE_AGENT, User
    from tenants.models import Tenant

    with app.app_context():
        tid = db.session.scalars(select(Tenant.id).where(Tenant.slug == "auray")).one()
        with tenant_scope(tid):
            db.session.add(User(email="agent.journal@auray.test", first_name="A", last_name="B", role=ROLE_AGENT,
                                password_hash=hash_password("Secret-pass-2026"), activated_at=utcnow()))
            db.session.commit()
        db.session.remove()
    return "agent.journal@auray.test"

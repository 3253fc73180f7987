"""Accounts: create, activate, log in, throttle, reset, pre-created accounts."""

import re
from datetime import timedelta
from urllib.parse import urlparse

import pytest
from sqlalchemy import select, update

from core.models import User, UserToken
from extensions import db
from tenants.context import tenant_scope, unscoped

GOOD = "Bonjour-2026"


def register(web, slug="auray", **overrides):
    data = {"first_name": "Maëlys", "last_name": "Tanguy", "email": "maelys@exemple.test",
            "password": GOOD, "confirm": GOOD, "accept_cgu": "y"}
    data.update(overrides)
    return web.post(f"/{slug}/creer-mon-espace", data)


def path_of(link: str) -> str:
    return urlparse(link).path


def test_create_account_mails_an_activation_link_that_works_once(web, outbox):
    res = register(web)
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    assert "Félicitations, vous venez de créer votre espace." in html, re.findall(r"role=\"alert\">([^<]*)", html)
    (mail,) = outbox.to("maelys@exemple.test")
    assert "Activez votre espace citoyens" in mail["Subject"] and "Ville d'Auray" in mail["Subject"]
    assert "La Ville d'Auray" in outbox.text(mail)
    assert mail["Reply-To"] == "enfance@auray.test"

    # before activation, login says why it is refused
    refused = web.login("auray", "maelys@exemple.test", GOOD)
    assert refused.status_code == 200
    assert "pas encore activé" in refused.get_data(as_text=True)

    link = path_of(outbox.link(mail, "/auray/activation/"))
    first = web.get(link)
    assert first.status_code == 200 and "Votre espace a bien été activé" in first.get_data(as_text=True)
    again = web.get(link)
    assert again.status_code == 410 and "déjà été utilisé" in again.get_data(as_text=True)

    assert web.login("auray", "MAELYS@exemple.test ", GOOD).status_code == 302
    home = web.get("/auray/mon-espace").get_data(as_text=True)
    assert "Mon espace" in home and "Maëlys Tanguy" in home


def test_activation_link_expires(web, outbox, app, tenants):
    register(web)
    link = path_of(outbox.link(outbox.messages[0], "/activation/"))
    with app.app_context(), tenant_scope(tenants["auray"]):
        tok = db.session.scalars(select(UserToken)).one()
        tok.expires_at = tok.created_at - timedelta(minutes=1)
        db.session.commit()
    res = web.get(link)
    assert res.status_code == 410 and "expiré" in res.get_data(as_text=True)
    assert web.login("auray", "maelys@exemple.test", GOOD).status_code == 200


def test_activation_link_of_one_commune_is_unknown_in_another(web, outbox):
    register(web)
    link = path_of(outbox.link(outbox.messages[0], "/activation/"))
    res = web.get(link.replace("/auray/", "/saint-loubes/"))
    assert res.status_code == 410 and "n&#39;est pas valide" in res.get_data(as_text=True)


@pytest.mark.parametrize("password", ["Court1", "sansChiffre", "12345678", "ABCDEFG12"])
def test_weak_passwords_are_refused_with_the_rule_and_nothing_typed_is_lost(web, outbox, password):
    res = register(web, password=password, confirm=password)
    html = res.get_data(as_text=True)
    assert res.status_code == 200
    assert "Le mot de passe doit contenir au minimum 8 caractères dont au moins : 1 minuscule, 1 chiffre." in html
    assert 'value="Maëlys"' in html and 'value="maelys@exemple.test"' in html
    assert outbox.messages == []


def test_passwords_are_stored_with_a_modern_kdf(web, app, tenants):
    register(web)
    with app.app_context(), tenant_scope(tenants["auray"]):
        user = db.session.scalars(select(User)).one()
        assert user.password_hash.startswith(("scrypt:", "argon2", "pbkdf2:sha256:")) and GOOD not in user.password_hash


def test_bad_input_gets_french_messages_never_a_500(web):
    cases = [
        ({"first_name": "", "last_name": "", "email": ""}, "Ce champ est obligatoire."),
        ({"email": "pas-une-adresse"}, "Saisissez une adresse e-mail valide"),
        ({"first_name": "x" * 300}, "100 caractères au maximum."),
        ({"confirm": "Autre-2026"}, "Les deux mots de passe ne sont pas identiques."),
        ({"accept_cgu": ""}, "Vous devez accepter les conditions générales d'utilisation."),
    ]
    for overrides, message in cases:
        res = register(web, **overrides)
        assert res.status_code == 200, overrides
        assert message in res.get_data(as_text=True), overrides
    res = web.login("auray", "x" * 400, "y")
    assert res.status_code == 200 and "254 caractères au maximum." in res.get_data(as_text=True)


def test_an_email_already_used_in_this_commune_is_refused(web, make_family):
    fam = make_family("auray", parent_email="pris@exemple.test")
    res = register(web, email=fam["email"])
    assert "Un espace existe déjà avec cette adresse e-mail." in res.get_data(as_text=True)
    # another commune is another space: the same address may register there
    assert "Félicitations" in register(web, slug="saint-aubin-de-medoc", email=fam["email"]).get_data(as_text=True)


def test_post_without_or_with_forged_csrf_token_is_refused(web):
    data = {"email": "a@b.test", "password": "x"}
    res = web.post("/auray/connexion", data, csrf=False)
    assert res.status_code == 400 and "Formulaire expiré" in res.get_data(as_text=True)
    res = web.post("/auray/connexion", dict(data, csrf_token="forged"))
    assert res.status_code == 400
    # a token from another commune's session is not valid here either
    token = web.csrf_for("/saint-loubes/")
    assert web.post("/auray/connexion", dict(data, csrf_token=token)).status_code == 400


def test_login_then_logout(web, make_family):
    fam = make_family("auray")
    assert web.login("auray", fam["email"]).status_code == 302
    res = web.post("/auray/deconnexion", page="/auray/mon-espace")
    assert res.status_code == 302
    assert web.get("/auray/mon-espace").status_code == 302


def test_next_parameter_never_redirects_elsewhere(web, make_family):
    fam = make_family("auray")
    res = web.post("/auray/connexion?next=//evil.test/x", {"email": fam["email"], "password": fam["password"]},
                   page="/auray/connexion")
    assert res.headers["Location"].endswith("/auray/mon-espace")
    web.post("/auray/deconnexion", page="/auray/mon-espace")
    res = web.post("/auray/connexion?next=/auray/famille/enfants/1", {"email": fam["email"], "password": fam["password"]},
                   page="/auray/connexion")
    assert res.headers["Location"].endswith("/auray/famille/enfants/1")


def test_the_throttle_stops_the_eleventh_wrong_password_in_a_minute(web, make_family):
    fam = make_family("auray")
    token = web.csrf_for("/auray/connexion")
    for _ in range(10):
        res = web.client.post("/auray/connexion", data={"email": fam["email"], "password": "Mauvais-1",
                                                         "csrf_token": token})
        assert res.status_code == 200
    res = web.client.post("/auray/connexion", data={"email": fam["email"], "password": fam["password"],
                                                     "csrf_token": token})
    assert res.status_code == 429
    assert "Trop de tentatives" in res.get_data(as_text=True)


def test_the_throttle_is_per_account_across_addresses(web, make_family):
    fam = make_family("auray")
    token = web.csrf_for("/auray/connexion")
    for i in range(10):
        web.client.post("/auray/connexion", data={"email": fam["email"], "password": "Mauvais-1", "csrf_token": token},
                        environ_base={"REMOTE_ADDR": f"10.0.0.{i + 1}"})
    res = web.client.post("/auray/connexion", data={"email": fam["email"], "password": fam["password"],
                                                     "csrf_token": token}, environ_base={"REMOTE_ADDR": "10.0.1.1"})
    assert res.status_code == 429
    # another account from a fresh address is not blocked
    other = make_family("auray")
    res = web.client.post("/auray/connexion", data={"email": other["email"], "password": other["password"],
                                                     "csrf_token": token}, environ_base={"REMOTE_ADDR": "10.0.2.1"})
    assert res.status_code == 302


def test_successful_logins_do_not_count_against_the_throttle(web, make_family):
    fam = make_family("auray")
    for _ in range(12):
        assert web.login("auray", fam["email"]).status_code == 302
        web.post("/auray/deconnexion", page="/auray/mon-espace")


def test_forgotten_password_mails_a_single_use_link(web, make_family, outbox):
    fam = make_family("auray")
    res = web.post("/auray/mot-de-passe-oublie", {"email": fam["email"]})
    assert "Vérifiez votre messagerie" in res.get_data(as_text=True)
    (mail,) = outbox.to(fam["email"])
    link = path_of(outbox.link(mail, "/reinitialiser/"))
    weak = web.post(link, {"password": "faible", "confirm": "faible"})
    assert "Le mot de passe doit contenir au minimum 8 caractères" in weak.get_data(as_text=True)
    ok = web.post(link, {"password": "Nouveau-2027", "confirm": "Nouveau-2027"})
    assert ok.status_code == 302
    assert web.post(link, {"password": "Encore-2028", "confirm": "Encore-2028"}).status_code == 200  # used
    assert web.login("auray", fam["email"], "Nouveau-2027").status_code == 302


def test_forgotten_password_for_an_unknown_address_says_the_same_and_mails_nothing(web, outbox):
    res = web.post("/auray/mot-de-passe-oublie", {"email": "personne@exemple.test"})
    assert "Vérifiez votre messagerie" in res.get_data(as_text=True)
    assert outbox.messages == []


def test_saint_loubes_pre_created_account_flow(app, web, outbox, tenants):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["accounts", "precreate", "--tenant", "saint-loubes", "--email",
                                 "parent.prevu@exemple.test", "--first-name", "Aline", "--last-name", "Barbe"])
    assert result.exit_code == 0, result.output
    (mail,) = outbox.to("parent.prevu@exemple.test")
    body = outbox.text(mail)
    assert "votre espace personnel a été automatiquement créé" in body
    assert "La Mairie de Saint-Loubès" in body
    password = body.split("Mot de passe : ")[1].split()[0]
    assert web.login("saint-loubes", "parent.prevu@exemple.test", password).status_code == 200  # not active yet
    assert "Votre espace a bien été activé" in web.get(path_of(outbox.link(mail, "/activation/"))).get_data(as_text=True)

    assert web.login("saint-loubes", "parent.prevu@exemple.test", password).status_code == 302
    forced = web.get("/saint-loubes/mon-espace")
    assert forced.headers["Location"].endswith("/saint-loubes/mes-identifiants")
    page = web.get("/saint-loubes/mes-identifiants").get_data(as_text=True)
    assert "les règles de sécurité en vigueur imposent d'en définir un nouveau" in page
    assert web.post("/saint-loubes/mes-identifiants", {"password": password, "confirm": password}).status_code == 200
    assert web.post("/saint-loubes/mes-identifiants",
                    {"password": "Perso-2026", "confirm": "Perso-2026"}).status_code == 302
    cgu = web.get("/saint-loubes/mon-espace")
    assert cgu.headers["Location"].endswith("/saint-loubes/conditions-generales")
    refused = web.post("/saint-loubes/conditions-generales", {})
    assert "Vous devez accepter les conditions générales" in refused.get_data(as_text=True)
    assert web.post("/saint-loubes/conditions-generales", {"accept": "y"}).status_code == 302
    assert "Mon tableau de bord" in web.get("/saint-loubes/mon-espace").get_data(as_text=True)


def test_change_password_needs_the_current_one(web, make_family):
    fam = make_family("auray")
    web.login("auray", fam["email"])
    res = web.post("/auray/mes-identifiants", {"current": "faux", "password": "Autre-2026", "confirm": "Autre-2026"})
    assert "Le mot de passe actuel est incorrect." in res.get_data(as_text=True)
    res = web.post("/auray/mes-identifiants",
                   {"current": fam["password"], "password": "Autre-2026", "confirm": "Autre-2026"})
    assert res.status_code == 302


def test_agents_and_parents_are_separate_roles(web, make_agent, make_family, app, tenants):
    agent = make_agent("auray")
    fam = make_family("auray")
    web.login("auray", agent["email"])
    assert web.get(f"/auray/famille/enfants/{fam['child_ids'][0]}").status_code == 403


def test_support_accounts_are_created_from_the_cli_only(app, web):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["support", "create", "--email", "Support@Portail.test", "--name", "Sam"],
                           input="Support-2026\nSupport-2026\n")
    assert result.exit_code == 0, result.output
    from core.models import SupportUser

    with app.app_context(), unscoped():
        assert db.session.scalars(select(SupportUser.email)).all() == ["support@portail.test"]
    # no web route creates accounts of that kind: /support/ only logs in, lists the communes, switches, reads the log
    support_rules = {str(rule) for rule in app.url_map.iter_rules() if "support" in str(rule)}
    assert support_rules <= {"/support/connexion", "/support/deconnexion", "/support/", "/support/journal",
                             "/support/communes/<slug>/entrer", "/<tenant>/admin/support-entree",
                             "/<tenant>/admin/support-sortie"}


def test_deactivated_tokens_table_is_scoped(app, tenants, web, outbox):
    register(web)
    with app.app_context(), tenant_scope(tenants["saint-loubes"]):
        assert db.session.scalars(select(UserToken)).all() == []
    with app.app_context(), tenant_scope(tenants["auray"]):
        db.session.execute(update(UserToken).values(used_at=None))
        assert len(db.session.scalars(select(UserToken)).all()) == 1

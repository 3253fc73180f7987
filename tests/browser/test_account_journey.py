"""A parent creates an account, activates it from the mail, logs in and sees Mon espace."""

from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_create_account_activate_from_outbox_and_log_in(page, outbox):
    page.goto("/auray/")
    page.get_by_role("link", name="Créer mon espace").click()
    page.get_by_label("Prénom").fill("Rozenn")
    page.get_by_label("Nom", exact=True).fill("Le Floch")
    page.get_by_label("Adresse e-mail").fill("rozenn@exemple.test")
    page.get_by_label("Mot de passe", exact=True).fill("court")
    page.get_by_label("Confirmation du mot de passe").fill("court")
    page.get_by_label("J'accepte les conditions générales d'utilisation").check()
    page.get_by_role("button", name="Créer mon espace").click()
    # the rule is stated in French and nothing typed is lost
    expect(page.get_by_text("Le mot de passe doit contenir au minimum 8 caractères dont au moins : 1 minuscule, 1 chiffre.")).to_be_visible()
    assert page.get_by_label("Prénom").input_value() == "Rozenn"
    page.get_by_label("Mot de passe", exact=True).fill("Kouign-2026")
    page.get_by_label("Confirmation du mot de passe").fill("Kouign-2026")
    page.get_by_label("J'accepte les conditions générales d'utilisation").check()
    page.get_by_role("button", name="Créer mon espace").click()
    expect(page.get_by_text("Félicitations, vous venez de créer votre espace.")).to_be_visible()

    (mail,) = outbox.to("rozenn@exemple.test")
    link = outbox.link(mail, "/activation/")
    page.goto(urlparse(link).path)
    expect(page.get_by_text("Votre espace a bien été activé")).to_be_visible()
    page.get_by_role("link", name="Connexion").click()
    page.get_by_label("Identifiant (adresse e-mail)").fill("rozenn@exemple.test")
    page.get_by_label("Mot de passe").fill("Kouign-2026")
    page.get_by_role("button", name="Connexion").click()
    expect(page.get_by_role("heading", name="Mon espace", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Mon tableau de bord")).to_be_visible()


def test_login_from_the_home_box_and_switch_to_english(page, make_family):
    fam = make_family("saint-aubin-de-medoc", children=[("Nino", "2018-03-01")])
    page.goto("/saint-aubin-de-medoc/")
    expect(page.get_by_text("Saint-Aubin de Médoc, le village nature").first).to_be_visible()
    page.get_by_label("Identifiant (adresse e-mail)").fill(fam["email"])
    page.get_by_label("Mot de passe").fill(fam["password"])
    page.get_by_role("button", name="Connexion").click()
    expect(page.get_by_role("heading", name="Membres foyer")).to_be_visible()
    expect(page.get_by_text("Nino")).to_be_visible()
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Household members")).to_be_visible()
    page.get_by_role("button", name="Français").click()
    expect(page.get_by_role("heading", name="Membres foyer")).to_be_visible()


def test_home_and_dashboard_fit_a_375px_phone(phone, make_family):
    fam = make_family("saint-loubes")
    for path in ("/saint-loubes/", "/saint-loubes/creer-mon-espace"):
        phone.goto(path)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 375, path
    phone.goto("/saint-loubes/connexion")
    phone.get_by_label("Identifiant (adresse e-mail)").fill(fam["email"])
    phone.get_by_label("Mot de passe").fill(fam["password"])
    phone.get_by_role("button", name="Connexion").click()
    expect(phone.get_by_role("heading", name="Mon tableau de bord")).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375

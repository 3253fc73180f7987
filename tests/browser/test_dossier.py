"""A parent changes a child's allergy: pending in yellow; an agent accepts it; the parent sees it current
and has the mail."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

YELLOW = "rgb(255, 243, 176)"


def log_in(pg, slug, email, password):
    pg.goto(f"/{slug}/connexion")
    pg.get_by_label("Identifiant (adresse e-mail)").fill(email)
    pg.get_by_label("Mot de passe").fill(password)
    pg.get_by_role("button", name="Connexion").click()


def test_allergy_change_is_pending_in_yellow_until_an_agent_accepts_it(page, browser, live_server, make_family,
                                                                        make_agent, outbox):
    fam = make_family("auray", children=[("Maëlys", "2019-05-01")], name="KERGUELEN")
    agent = make_agent("auray")

    log_in(page, "auray", fam["email"], fam["password"])
    page.get_by_role("link", name="Maëlys Kerguelen").click()
    expect(page.get_by_role("heading", name="Informations santé")).to_be_visible()
    page.get_by_role("link", name="Modifier les informations santé").click()
    page.get_by_label("Allergies").fill("Arachide")
    page.get_by_label("Régime alimentaire").select_option(label="Sans porc")
    page.get_by_role("button", name="Enregistrer").click()

    expect(page.get_by_text("Votre modification a été enregistrée. Elle est en attente de validation")).to_be_visible()
    pending = page.locator(".pending", has_text="Arachide")
    expect(pending).to_be_visible()
    expect(pending).to_contain_text("en attente de validation")
    expect(pending).to_have_css("background-color", YELLOW)
    expect(page.locator(".pending", has_text="Sans porc")).to_have_css("background-color", YELLOW)

    # the agent, in another browser context
    context = browser.new_context(base_url=live_server)
    staff = context.new_page()
    log_in(staff, "auray", agent["email"], agent["password"])
    staff.get_by_role("link", name="Dossiers familles").click()
    staff.get_by_role("link", name="Modifications en attente (1)").click()
    expect(staff.get_by_text("Arachide")).to_have_count(0)  # health values only on demand
    staff.get_by_role("link", name=re.compile("^Examiner")).click()
    expect(staff.get_by_role("cell", name="Arachide")).to_be_visible()
    staff.get_by_role("button", name=re.compile("^Accepter")).click()
    expect(staff.get_by_text("Modification acceptée : la famille est prévenue par e-mail.")).to_be_visible()
    expect(staff.get_by_text("Aucune modification en attente.")).to_be_visible()
    context.close()

    page.reload()
    expect(page.locator(".pending")).to_have_count(0)
    expect(page.get_by_text("Arachide")).to_be_visible()
    expect(page.get_by_text("Sans porc")).to_be_visible()

    mails = [m for m in outbox.to(fam["email"]) if "Modification de votre dossier famille" in m["Subject"]]
    assert len(mails) == 1
    text = outbox.text(mails[0])
    assert "a été traitée positivement : la modification est enregistrée" in text
    assert "Allergies" in text and "Régime alimentaire" in text

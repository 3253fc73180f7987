"""Saint-Loubès: a parent (on a phone) asks for an inscription that needs two pieces and gives them
with it; an agent refuses one with a motif; the parent replaces it (htmx); the agent validates it;
the inscription goes on ("Réservation possible")."""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from core import clock
from tests.pieces_data import PDF, png

pytestmark = pytest.mark.browser


def log_in(pg, slug, email, password):
    pg.goto(f"/{slug}/connexion")
    pg.get_by_label("Identifiant (adresse e-mail)").fill(email)
    pg.get_by_label("Mot de passe").fill(password)
    pg.get_by_role("button", name="Connexion").click()


def test_inscription_waits_for_two_pieces_one_refused_then_replaced(phone, page, make_family, make_activity,
                                                                     make_agent, piece_types, outbox):
    piece_types("saint-loubes", required_for=["mercredi-test"])
    born = (clock.today() - timedelta(days=365 * 7)).isoformat()
    fam = make_family("saint-loubes", children=[("Hugo", born)], name="LAFARGUE")
    make_activity("saint-loubes", code="mercredi-test", name="Centre de Loisirs Mercredi", ages=[3, 11],
                  starts_in=5, days=60)
    agent = make_agent("saint-loubes")

    # the parent, on a phone: the inscription asks for the two missing pieces
    parent = phone
    log_in(parent, "saint-loubes", fam["email"], fam["password"])
    parent.get_by_role("link", name="Créer une inscription").click()
    card = parent.locator("form.activity-card", has_text="Centre de Loisirs Mercredi")
    expect(card.get_by_text("Pièces justificatives demandées")).to_be_visible()
    assert parent.evaluate("document.documentElement.scrollWidth") <= 375  # nothing wider than the phone
    card.get_by_role("checkbox", name="Hugo").check()
    card.get_by_label(re.compile("^Justificatif de domicile")).set_input_files(
        files=[{"name": "facture-edf.pdf", "mimeType": "application/pdf", "buffer": PDF}])
    card.get_by_label(re.compile("^Attestation d'assurance extrascolaire — Hugo")).set_input_files(
        files=[{"name": "assurance.png", "mimeType": "image/png", "buffer": png()}])
    card.get_by_role("button", name="Valider").click()
    expect(parent.get_by_role("heading", name="Nous avons bien enregistré votre demande")).to_be_visible()
    expect(parent.get_by_text(re.compile("En attente des pièces justificatives"))).to_be_visible()

    # the agent: the queue, the piece beside the family file; validates one, refuses the other
    log_in(page, "saint-loubes", agent["email"], agent["password"])
    page.get_by_role("link", name="Pièces justificatives (2)").click()
    page.get_by_role("link", name=re.compile("^Examiner — Justificatif de domicile")).click()
    expect(page.get_by_role("heading", name="Le dossier famille")).to_be_visible()
    expect(page.locator(".piece-viewer__file iframe")).to_be_visible()
    expect(page.get_by_label("Valable jusqu'au")).not_to_have_value("")
    page.get_by_role("button", name="Valider la pièce").click()
    expect(page.get_by_text("Pièce validée : Justificatif de domicile (famille LAFARGUE).")).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("Attestation d'assurance extrascolaire — Hugo"))).to_be_visible()
    page.get_by_role("button", name="Refuser avec ce motif").click()
    expect(page.get_by_text("Indiquez le motif du refus : il est envoyé à la famille.")).to_be_visible()
    page.get_by_label("Motif du refus").select_option(label="Document illisible")
    page.get_by_label("Précisions (envoyées à la famille)").fill("La page 2 manque.")
    page.get_by_role("button", name="Refuser avec ce motif").click()
    expect(page.get_by_text(re.compile("Pièce refusée : Attestation d'assurance extrascolaire — Hugo"))).to_be_visible()
    expect(page.get_by_text("Aucune pièce à vérifier.")).to_be_visible()
    refusal = [m for m in outbox.to(fam["email"]) if "refusée" in m["Subject"]]
    assert len(refusal) == 1 and "Document illisible — La page 2 manque." in outbox.text(refusal[0])

    # the parent sees why and replaces the piece (htmx answers the card)
    parent.goto("/saint-loubes/mon-espace")
    parent.get_by_role("link", name="Pièces justificatives").first.click()
    slot = parent.locator(".piece-slot", has_text="Attestation d'assurance extrascolaire — Hugo")
    expect(slot.get_by_text("Refusée : Document illisible — La page 2 manque.")).to_be_visible()
    expect(parent.locator(".piece-slot", has_text="Justificatif de domicile").get_by_text(
        re.compile("^Validée jusqu'au"))).to_be_visible()
    slot.get_by_label(re.compile("^Remplacer par un nouveau fichier")).set_input_files(
        files=[{"name": "assurance-complete.pdf", "mimeType": "application/pdf", "buffer": PDF}])
    slot.get_by_role("button", name=re.compile("^Remplacer —")).click()
    slot = parent.locator(".piece-slot", has_text="Attestation d'assurance extrascolaire — Hugo")
    expect(slot.get_by_text("a bien été envoyée : elle est en attente de validation", exact=False)).to_be_visible()
    expect(slot.locator(".status")).to_have_text("En attente de validation")
    assert parent.evaluate("document.documentElement.scrollWidth") <= 375

    # the agent validates it; the inscription can now be accepted
    page.goto("/saint-loubes/admin/pieces")
    page.get_by_role("link", name=re.compile("^Examiner — Attestation d'assurance extrascolaire Hugo")).click()
    page.get_by_role("button", name="Valider la pièce").click()
    expect(page.get_by_text(re.compile("Pièce validée : Attestation d'assurance extrascolaire — Hugo"))).to_be_visible()
    page.get_by_role("link", name="Demandes", exact=True).click()
    page.get_by_role("link", name=re.compile("^Traiter la demande N°")).first.click()
    expect(page.get_by_text(re.compile("Validée jusqu'au")).first).to_be_visible()
    page.get_by_role("button", name="Tout accepter (Traitée positivement)").click()
    expect(page.get_by_text(re.compile("Traitée positivement")).first).to_be_visible()

    parent.goto("/saint-loubes/inscriptions/")
    row = parent.get_by_role("row", name=re.compile("Hugo"))
    expect(row.get_by_text("Réservation possible")).to_be_visible()


def test_the_pieces_page_works_without_javascript(browser, live_server, make_family, piece_types):
    """A plain form post (no htmx): the page comes back with the new status, or the French error."""
    piece_types("auray")
    fam = make_family("auray")
    context = browser.new_context(base_url=live_server, locale="fr-FR", java_script_enabled=False,
                                  viewport={"width": 375, "height": 740})
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    log_in(pg, "auray", fam["email"], fam["password"])
    pg.goto("/auray/pieces/")
    slot = pg.locator(".piece-slot", has_text="Justificatif de domicile")
    slot.get_by_label(re.compile("^Fichier à envoyer")).set_input_files(
        files=[{"name": "page.pdf", "mimeType": "application/pdf", "buffer": b"<svg onload=alert(1)></svg>"}])
    slot.get_by_role("button", name=re.compile("^Envoyer")).click()
    slot = pg.locator(".piece-slot", has_text="Justificatif de domicile")
    expect(slot.get_by_role("alert")).to_contain_text("Le fichier doit être un PDF, une image JPEG ou une image PNG")
    slot.get_by_label(re.compile("^Fichier à envoyer")).set_input_files(
        files=[{"name": "edf.pdf", "mimeType": "application/pdf", "buffer": PDF}])
    slot.get_by_role("button", name=re.compile("^Envoyer")).click()
    expect(pg.get_by_text(re.compile("« Justificatif de domicile » a bien été envoyée"))).to_be_visible()
    expect(pg.locator(".piece-slot", has_text="Justificatif de domicile").locator(".status")).to_have_text(
        "En attente de validation")
    context.close()

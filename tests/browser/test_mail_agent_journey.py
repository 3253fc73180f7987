"""An agent finds a mail that could not be delivered and sends it again."""

import pytest
from playwright.sync_api import expect
from sqlalchemy import update

from core.models import MAIL_FAILED, OutboxMail
from extensions import db
from tenants.context import tenant_scope

pytestmark = pytest.mark.browser


def test_agent_sees_a_failed_mail_and_sends_it_again(page, app, web, make_agent, outbox, tenants):
    web.post("/auray/creer-mon-espace", {"first_name": "Rozenn", "last_name": "Le Floch",
                                         "email": "rozenn@exemple.test", "password": "Kouign-2026",
                                         "confirm": "Kouign-2026", "accept_cgu": "y"})
    # as if the SMTP server had refused it six times (in Auray's scope: row-level security shows nothing outside)
    with app.app_context(), tenant_scope(tenants["auray"]), db.engine.begin() as conn:
        conn.execute(update(OutboxMail.__table__).values(
            status=MAIL_FAILED, attempts=6, last_error="SMTPRecipientsRefused: 550 5.1.1 Mailbox unavailable"))
    agent = make_agent("auray")

    page.goto("/auray/connexion")
    page.get_by_label("Identifiant (adresse e-mail)").fill(agent["email"])
    page.get_by_label("Mot de passe").fill(agent["password"])
    page.get_by_role("button", name="Connexion").click()
    page.get_by_role("link", name="Mails", exact=True).click()
    page.get_by_role("link", name="Échec (1)").click()
    row = page.get_by_role("row").filter(has_text="rozenn@exemple.test")
    expect(row).to_contain_text("Activez votre espace citoyens")
    expect(row).to_contain_text("550 5.1.1 Mailbox unavailable")
    row.get_by_role("button", name="Renvoyer le mail à rozenn@exemple.test").click()

    expect(page.get_by_text("Le mail à rozenn@exemple.test est renvoyé.")).to_be_visible()
    expect(page.get_by_text("Aucun mail.")).to_be_visible()  # nothing failed any more
    page.get_by_role("link", name="Tous", exact=True).click()
    expect(page.get_by_role("row").filter(has_text="rozenn@exemple.test")).to_contain_text("Envoyé")
    assert len(outbox.to("rozenn@exemple.test")) == 2  # the first one, then the one sent again

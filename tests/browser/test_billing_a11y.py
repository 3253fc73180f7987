"""The billing pages, parents' and agents', at 1280 px and at 375 px: no serious or critical axe-core
violation (WCAG 2.0/2.1 A/AA; axe vendored under tests/browser/vendor/, the file the a11y branch
vendors), and what axe leaves to judgement: every field labelled, table headers with a scope,
headings in order (no level skipped), status badges readable (contrast ≥ 4.5:1), no horizontal
scroll on a phone."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core import clock
from extensions import db
from tests.billing_helpers import last_month, qf

pytestmark = pytest.mark.browser

AXE = sorted((Path(__file__).resolve().parent / "vendor").glob("axe-*.min.js"))[-1]
WIDTHS = ({"width": 1280, "height": 900}, {"width": 375, "height": 740})

_AXE_RUN = """async () => {
  const r = await axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
                                     resultTypes: ["violations"]});
  return r.violations.flatMap(v => v.nodes.filter(n => ["serious", "critical"].includes(n.impact || v.impact))
      .map(n => `[${v.id}] ${n.target.join(" ")}: ${v.help}`));
}"""

# What axe does not decide: an unlabelled field (placeholder or title are not labels), a header
# cell without scope, a heading that skips a level, a status badge under 4.5:1, a page wider
# than the phone.
_OWN_CHECKS = """() => {
  const out = [];
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    const labelled = (el.id && document.querySelector(`label[for="${el.id}"]`)) || el.closest("label")
      || el.getAttribute("aria-labelledby");
    if (!labelled) out.push(`champ sans étiquette : ${el.outerHTML.slice(0, 90)}`);
  }
  for (const th of document.querySelectorAll("main th")) {
    if (!th.getAttribute("scope")) out.push(`en-tête de tableau sans scope : ${th.textContent.trim()}`);
  }
  let level = 0;
  for (const h of document.querySelectorAll("main h1, main h2, main h3, main h4")) {
    const n = Number(h.tagName[1]);
    if (n > level + 1) out.push(`titre h${n} après h${level} : ${h.textContent.trim().slice(0, 60)}`);
    level = n;
  }
  const lum = (rgb) => { const c = rgb.match(/[\\d.]+/g).slice(0, 3).map(Number).map(v => v / 255)
      .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]; };
  for (const b of document.querySelectorAll(".status, .flag")) {
    const s = getComputedStyle(b);
    const [l1, l2] = [lum(s.color), lum(s.backgroundColor)].sort((a, b) => b - a);
    const ratio = (l1 + 0.05) / (l2 + 0.05);
    if (ratio < 4.5) out.push(`badge « ${b.textContent.trim()} » : contraste ${ratio.toFixed(2)}:1`);
  }
  if (document.documentElement.scrollWidth > document.documentElement.clientWidth)
    out.push(`défilement horizontal (${document.documentElement.scrollWidth} px)`);
  return out;
}"""


def findings(pg) -> list[str]:
    """The page at both widths (the width it had is restored)."""
    before = pg.viewport_size
    out = []
    try:
        for size in WIDTHS:
            pg.set_viewport_size(size)
            if not pg.evaluate("() => typeof window.axe === 'object'"):
                pg.add_script_tag(path=str(AXE))
            path = pg.url.split("/", 3)[-1]
            out += [f"/{path} à {size['width']} px — {f}" for f in pg.evaluate(_AXE_RUN) + pg.evaluate(_OWN_CHECKS)]
    finally:
        pg.set_viewport_size(before)
    return out


def log_in(pg, slug, email, password="Secret-pass-2026"):
    pg.goto(f"/{slug}/connexion")
    pg.get_by_label("Identifiant (adresse e-mail)").fill(email)
    pg.get_by_label("Mot de passe").fill(password)
    pg.get_by_role("button", name="Connexion").click()


@pytest.fixture
def billed(billing_settings, month_activity, make_family, inscribe, book, inside, make_agent):
    """Last month published for one family (one invoice due, one paid by a credit note, a pending
    QF request), and a second draft left to preview."""
    from core.billing import invoices as inv
    from core.billing import quotients as qfs
    from core.billing.models import Invoice
    from core.models import Family
    from tests.billing_helpers import run_month

    billing_settings("auray")
    act = month_activity(name="Accueil de loisirs Kids")
    other = month_activity(code="klub", name="Activités Klub")
    born = clock.today().replace(day=1) - timedelta(days=4 * 365)
    fam = make_family("auray", children=[("Maël", born.isoformat()), ("Anouk", (born - timedelta(days=1500))
                                                                      .isoformat())], name="GUILLEVIC")
    inscribe(act, fam["child_ids"])
    inscribe(other, fam["child_ids"])
    first, _last = last_month()
    book(act, fam["child_ids"][0], [("matin", first), ("repas", first), ("matin", first + timedelta(days=1))])
    book(act, fam["child_ids"][1], [("apres_midi", first)], status="absent")
    book(other, fam["child_ids"][1], [("matin", first)])
    inside("auray", lambda: qf(fam["family_id"], 620, first))

    def publish():
        run_month([act["id"]], publish=True)
        invoice = db.session.scalars(db.select(Invoice)).one()
        inv.issue_credit_note(invoice, amount_raw="2,00", reason="Sortie annulée", actor="Agent Test")
        qfs.request_change(db.session.get(Family, fam["family_id"]), _user(fam), document="x.pdf", value="710")
        return invoice.id

    invoice_id = inside("auray", publish)
    inside("auray", lambda: run_month([other["id"]]))   # a draft to preview
    return {"fam": fam, "agent": make_agent("auray"), "invoice_id": invoice_id, "act": act}


def _user(fam):
    from core.models import User

    return db.session.get(User, fam["user_id"])


def test_the_parents_billing_pages(page, billed):
    log_in(page, "auray", billed["fam"]["email"])
    expect(page.get_by_role("heading", name="Mon espace")).to_be_visible()
    found = findings(page)
    for link, heading in (("Mes factures", "Mes factures"), ("Édition de documents", "Édition de documents"),
                          ("Mes QF/Revenus", "Mes QF/Revenus"), ("Simulation des tarifs", "Simulation des tarifs")):
        page.goto("/auray/mon-espace")
        page.get_by_role("link", name=link, exact=True).first.click()
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        found += findings(page)
    page.goto("/auray/tarifs?qf=12a")   # an error next to the field
    expect(page.get_by_text("s'écrit en chiffres seulement")).to_be_visible()
    found += findings(page)
    page.goto("/auray/factures")
    page.get_by_role("link", name=re.compile(r"^F-\d{4}-000001$")).click()
    expect(page.get_by_role("heading", name=re.compile("^Facture F-"))).to_be_visible()
    found += findings(page)
    page.goto("/auray/factures")
    page.get_by_role("link", name=re.compile(r"^F-\d{4}-000002$")).click()
    expect(page.get_by_role("heading", name=re.compile("^Avoir F-"))).to_be_visible()
    found += findings(page)
    assert found == [], "\n".join(found)


def test_the_agents_billing_pages(page, billed):
    log_in(page, "auray", billed["agent"]["email"])
    page.goto("/auray/admin/facturation/")
    expect(page.get_by_role("heading", name="Facturation", exact=True)).to_be_visible()
    found = findings(page)
    page.get_by_role("button", name="Calculer le brouillon").click()   # last month again: refused, said so
    expect(page.get_by_text("est déjà facturé pour")).to_be_visible()
    found += findings(page)
    for name in ("Brouillons et publications", "Factures", "Pointage", "Tarifs et régie"):
        page.get_by_role("link", name=name, exact=True).first.click()
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        found += findings(page)
    page.get_by_role("button", name="Enregistrer les tarifs").click()   # unchanged text: saved
    page.get_by_label("Configuration de la régie et des tarifs").fill("[regie]\nprefix = \"F F\"\n")
    page.get_by_role("button", name="Enregistrer les tarifs").click()
    expect(page.get_by_text("Le préfixe des numéros de facture")).to_be_visible()
    found += findings(page)
    page.goto("/auray/admin/facturation/")
    for n in range(2):   # the published run, then the draft
        page.locator("table").get_by_role("link").nth(n).click()
        expect(page.get_by_role("heading", name=re.compile("^Facturation de "))).to_be_visible()
        found += findings(page)
        page.go_back()
    page.goto("/auray/admin/facturation/factures")
    page.get_by_role("link", name=re.compile(r"^F-\d{4}-000001$")).click()
    expect(page.get_by_role("heading", name=re.compile("^F-"))).to_be_visible()
    found += findings(page)
    page.get_by_role("button", name="Enregistrer", exact=True).click()   # no amount: the message next to it
    found += findings(page)
    page.goto(f"/auray/admin/facturation/familles/{billed['fam']['family_id']}/qf")
    expect(page.get_by_role("heading", name=re.compile("^Quotient familial"))).to_be_visible()
    found += findings(page)
    page.goto(f"/auray/admin/facturation/pointage?activite={billed['act']['id']}&jour={last_month()[0].isoformat()}")
    expect(page.get_by_role("heading", name=re.compile("Accueil de loisirs Kids"))).to_be_visible()
    found += findings(page)
    assert found == [], "\n".join(found)

"""Without a mouse: a parent books a Kids day and a Klub session with Tab, Space and Enter only, joins a
waiting list from a full session card and waits in the waiting room; the focus is always visible (a
ring that stands out from what surrounds it) and an htmx swap never drops it to <body>."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from core import waiting_room
from core.clock import utcnow
from core.contrast import contrast_ratio
from core.models import Activity
from extensions import db
from tenants.context import tenant_scope
from tests.conftest import days_from_today

pytestmark = pytest.mark.browser

_FOCUS_JS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const cs = getComputedStyle(el);
  let surface = "rgb(255, 255, 255)";  // what the ring is drawn on: the first opaque background around it
  for (let n = el.parentElement; n; n = n.parentElement) {
    const bg = getComputedStyle(n).backgroundColor;
    if (bg && bg !== "transparent" && !bg.startsWith("rgba(0, 0, 0, 0")) { surface = bg; break; }
  }
  return {tag: el.tagName.toLowerCase(), id: el.id, focusVisible: el.matches(":focus-visible"),
          style: cs.outlineStyle, width: parseFloat(cs.outlineWidth) || 0, color: cs.outlineColor, surface};
}"""


def _rgb(css: str) -> tuple[int, int, int]:
    return tuple(int(float(v)) for v in re.findall(r"[\d.]+", css)[:3])


def focused(page) -> dict:
    """The focused element, which must not be <body> and must show a visible focus ring."""
    info = page.evaluate(_FOCUS_JS)
    assert info is not None, "le focus est retombé sur <body>"
    assert info["focusVisible"], info
    assert info["style"] not in ("none", "hidden") and info["width"] >= 2, info
    ratio = contrast_ratio(_rgb(info["color"]), _rgb(info["surface"]))
    assert ratio >= 3, f"anneau de focus peu visible ({ratio:.1f}:1) : {info}"
    return info


def tab_to(page, locator, limit: int = 200) -> dict:
    """Press Tab, as a keyboard user does, until the element has the focus; then it must show it."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if locator.evaluate("el => el === document.activeElement"):
            return focused(page)
    raise AssertionError(f"{locator} jamais atteint avec Tab ({limit} appuis)")


def keyboard_login(page, slug, fam):
    page.goto(f"/{slug}/connexion")
    tab_to(page, page.get_by_label("Identifiant (adresse e-mail)"))
    page.keyboard.type(fam["email"])
    page.keyboard.press("Tab")
    page.keyboard.type(fam["password"])
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Mon tableau de bord")).to_be_visible()


def keyboard_to_planning(page, child_name):
    tab_to(page, page.get_by_role("link", name="Modifier les réservations"))
    page.keyboard.press("Enter")
    tab_to(page, page.get_by_role("link", name=re.compile(f"Réserver : .* pour {child_name}")))
    page.keyboard.press("Enter")
    tab_to(page, page.get_by_role("button", name="Aller à l'étape 2"))
    page.keyboard.press("Enter")
    expect(page.get_by_text(re.compile(r"\d+ modifications? dans cette démarche"))).to_be_visible()


def keyboard_validate(page):
    tab_to(page, page.get_by_role("button", name="Aller à l'étape 3").last)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Le récapitulatif")).to_be_visible()
    tab_to(page, page.get_by_role("button", name="Valider"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Nous avons bien enregistré votre demande")).to_be_visible()


def test_a_kids_day_booked_with_the_keyboard_only(page, make_family, make_activity, inscribe):
    act = make_activity("auray", starts_in=8, days=3, name="Accueil de loisirs Kids")
    fam = make_family("auray", children=[("Maël", (days_from_today(0) - timedelta(days=5 * 365 + 40)).isoformat())])
    inscribe(act, fam["child_ids"])
    keyboard_login(page, "auray", fam)
    keyboard_to_planning(page, "Maël")

    key = f"{fam['child_ids'][0]}-{act['slots'][('matin', days_from_today(8).isoformat())]}"
    box = page.locator(f"#c-{key}")
    assert tab_to(page, box)["tag"] == "input"
    page.keyboard.press("Space")
    expect(page.get_by_text("1 modification dans cette démarche")).to_be_visible()
    expect(page.locator(f"#cell-{key}")).to_contain_text("+")  # the answer of the server is in
    expect(box).to_be_checked()
    assert focused(page)["id"] == f"c-{key}"  # the swapped cell kept the focus on its checkbox
    page.keyboard.press("Space")  # and the keyboard goes on from there: unticked
    expect(page.get_by_text("0 modification dans cette démarche")).to_be_visible()
    assert focused(page)["id"] == f"c-{key}"
    page.keyboard.press("Space")
    expect(page.get_by_text("1 modification dans cette démarche")).to_be_visible()
    keyboard_validate(page)
    expect(page.get_by_text(re.compile(r"Matin — \w+ \d\d/\d\d/\d{4} — Maël")).first).to_be_visible()


def test_a_klub_session_and_a_waiting_list_with_the_keyboard_only(page, make_family, make_activity, inscribe):
    day = days_from_today(9)
    act = make_activity("auray", code="klub", name="Activités et repas Klub 8-12 ans", kind="sessions", ages=[8, 12],
                        starts_in=9, days=5,
                        sessions=[{"date": day, "title": "Danse latine", "time_slot": "matin", "places": 10},
                                  {"date": day, "title": "Fun Archery", "time_slot": "apres_midi", "places": 0}])
    fam = make_family("auray", children=[("Thaïs", (days_from_today(0) - timedelta(days=10 * 365)).isoformat())])
    inscribe(act, fam["child_ids"])
    child = fam["child_ids"][0]
    keyboard_login(page, "auray", fam)
    keyboard_to_planning(page, "Thaïs")

    danse, archery = (act["slots"][(t, day.isoformat())] for t in ("Danse latine", "Fun Archery"))
    expect(page.locator(f"#places-{danse}")).to_have_text("Places : 10")
    tab_to(page, page.locator(f"#c-{child}-{danse}"))
    page.keyboard.press("Space")
    expect(page.locator(f"#places-{danse}")).to_have_text("Places : 9")
    assert focused(page)["id"] == f"c-{child}-{danse}"

    # a full session: its "Liste d'attente" button, pressed with Enter, is replaced by the answer;
    # the focus moves into the new cell instead of falling to <body>
    tab_to(page, page.locator(f"#cell-{child}-{archery}").get_by_role("button", name=re.compile("Liste d'attente")))
    page.keyboard.press("Enter")
    expect(page.locator(f"#cell-{child}-{archery} .tag--wait")).to_have_text("liste d'attente")
    assert page.evaluate(f"() => document.getElementById('cell-{child}-{archery}').contains(document.activeElement)")
    focused(page)

    keyboard_validate(page)
    expect(page.get_by_text(re.compile(r"Danse latine — \w+ \d\d/\d\d/\d{4} — Thaïs")).first).to_be_visible()


def test_the_waiting_room_with_the_keyboard(page, app, make_family, make_activity, inscribe):
    act = make_activity("auray", starts_in=10, days=5, name="Accueil de loisirs Kids")
    first, second = (make_family("auray", children=[(n, "2021-04-12")]) for n in ("Maël", "Lilou"))
    inscribe(act, first["child_ids"] + second["child_ids"])
    with app.app_context(), tenant_scope(act["tenant_id"]):
        activity = db.session.get(Activity, act["id"])
        waiting_room.configure(activity, opening_at=utcnow() - timedelta(minutes=1), concurrent=1)
        db.session.commit()
        assert waiting_room.check(activity, first["user_id"], start=True).state == "admitted"
        db.session.remove()
    keyboard_login(page, "auray", second)
    page.goto(f"/auray/reservations/{act['id']}")
    expect(page.get_by_role("heading", name="Salle d'attente")).to_be_visible()
    refresh = page.get_by_role("link", name="Actualiser")
    tab_to(page, refresh)
    # the position is refreshed by htmx while the focus stays where the parent left it
    with page.expect_response(lambda r: "/attente/" in r.url and r.request.headers.get("hx-request") == "true"):
        pass
    expect(page.get_by_text("Votre position dans la file : 1")).to_be_visible()
    assert refresh.evaluate("el => el === document.activeElement")
    focused(page)
    page.keyboard.press("Enter")  # "Actualiser" by hand: still in the queue
    expect(page.get_by_text("Votre position dans la file : 1")).to_be_visible()
    with app.app_context(), tenant_scope(act["tenant_id"]):
        waiting_room.leave(db.session.get(Activity, act["id"]), first["user_id"])
        db.session.remove()
    expect(page.get_by_text("Choix des personnes concernées")).to_be_visible()  # let in by the next poll
    tab_to(page, page.get_by_role("button", name="Aller à l'étape 2"))

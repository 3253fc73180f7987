"""The family's calendar feed: a private ICS URL that icalendar reads, with only this family's
bookings, following the bookings (a cancelled demande leaves it), and revocable (404 after)."""

from __future__ import annotations

import re

from icalendar import Calendar

from tests.conftest import days_from_today
from tests.test_reservations_web import start_wizard, tick


def subscribe(web, slug) -> str:
    web.post(f"/{slug}/agenda/abonnement", page=f"/{slug}/agenda/abonnement")
    page = web.get(f"/{slug}/agenda/abonnement").get_data(as_text=True)
    url = re.search(r'id="ics-url" type="text" readonly value="([^"]+)"', page).group(1)
    return url.split("://", 1)[1].split("/", 1)[1]  # the path


def events(web, path):
    response = web.get("/" + path)
    assert response.status_code == 200 and response.mimetype == "text/calendar"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    cal = Calendar.from_ical(response.data)
    return [e for e in cal.walk("VEVENT")]


def test_the_feed_holds_only_this_family_and_follows_a_cancellation(app, make_family, make_activity, inscribe,
                                                                    make_web):
    act = make_activity("auray", starts_in=10, days=28, structure="Accueil de Loisirs Arlequin")
    fam = make_family("auray", children=[("Maël", "2021-04-12")])
    other = make_family("auray", children=[("Zoé", "2021-02-02")])
    inscribe(act, fam["child_ids"] + other["child_ids"])
    mine, theirs = make_web(), make_web()

    cart = start_wizard(mine, fam, act)
    day = days_from_today(10).isoformat()
    tick(mine, cart, fam["child_ids"][0], act["slots"][("matin", day)])
    tick(mine, cart, fam["child_ids"][0], act["slots"][("repas", day)])
    loc = mine.post(f"/auray/demarches/{cart}/valider", page=f"/auray/demarches/{cart}/recapitulatif").headers["Location"]
    number = int(re.search(r"/demandes/(\d+)", loc).group(1))
    other_cart = start_wizard(theirs, other, act)
    tick(theirs, other_cart, other["child_ids"][0], act["slots"][("apres_midi", day)])
    theirs.post(f"/auray/demarches/{other_cart}/valider", page=f"/auray/demarches/{other_cart}/recapitulatif")

    path = subscribe(mine, "auray")
    assert "agenda/" in path and path.endswith(".ics")
    found = events(make_web(), path)  # a calendar application has no session
    summaries = sorted(str(e["SUMMARY"]) for e in found)
    assert summaries == ["Matin — Maël", "Repas — Maël"]
    for event in found:
        assert str(event["LOCATION"]) == "Accueil de Loisirs Arlequin"
        assert event["DTSTART"].dt.date().isoformat() == day
        assert "Enfant : Maël" in str(event["DESCRIPTION"]) and "En attente de validation" in str(event["DESCRIPTION"])
        assert str(event["STATUS"]) == "TENTATIVE"
    assert all("Zoé" not in str(e["SUMMARY"]) for e in found)

    mine.post(f"/auray/demandes/{number}/annuler", page=f"/auray/demandes/{number}")
    assert events(make_web(), path) == []


def test_a_revoked_or_guessed_token_answers_404(app, make_family, make_web):
    fam = make_family("auray")
    web = make_web()
    web.login("auray", fam["email"])
    first = subscribe(web, "auray")
    assert make_web().get("/" + first).status_code == 200
    second = subscribe(web, "auray")  # a new address: the old one stops at once
    assert second != first
    assert make_web().get("/" + first).status_code == 404
    assert make_web().get("/" + second).status_code == 200
    web.post("/auray/agenda/abonnement/revoquer", page="/auray/agenda/abonnement")
    assert make_web().get("/" + second).status_code == 404
    feed_id = second.rsplit("/", 1)[1].split("-")[0]
    for guess in (f"auray/agenda/{feed_id}-{'0' * 40}.ics", f"auray/agenda/{feed_id}.ics", "auray/agenda/x-y.ics",
                  second.replace("auray/", "saint-loubes/")):
        assert make_web().get("/" + guess).status_code == 404, guess
    page = web.get("/auray/agenda").get_data(as_text=True)
    assert "S&#39;abonner à mon agenda" in page or "S'abonner à mon agenda" in page


def test_the_feed_of_another_commune_is_404_there(app, make_family, make_web):
    fam = make_family("auray")
    web = make_web()
    web.login("auray", fam["email"])
    path = subscribe(web, "auray")
    assert make_web().get("/" + path.replace("auray/", "saint-aubin-de-medoc/", 1)).status_code == 404

"""Mon agenda (planning des activités) and "Justifier une absence"."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from html import unescape
from pathlib import Path

import pytest
from babel.dates import format_date
from sqlalchemy import event, select

from core.calendar import week_start
from core.models import (
    ACTION_ABSENCE,
    DEMANDE_ACCEPTEE,
    LINE_ACCEPTED,
    RES_ABSENT,
    RES_CANCELLED,
    RES_HELD,
    RES_PENDING,
    RES_REFUSED,
    RES_RESERVED,
    RES_WAITLIST,
    TYPE_ABSENCE,
    Demande,
)
from extensions import db
from tenants.context import tenant_scope
from tests.agenda_data import Builder, agenda_items, sessions_spec, today, units_spec

WORDS = {RES_RESERVED: "Réservé", RES_PENDING: "En attente de validation", RES_WAITLIST: "Liste d'attente",
         RES_ABSENT: "Absent"}
LEGEND = ["Activité réservée ou enfant présent", "Demande en attente de validation", "Enfant en liste d'attente",
          "Enfant absent à cette activité"]
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64


def long(day) -> str:
    return format_date(day, "EEEE dd/MM/yyyy", locale="fr")


@pytest.fixture
def uploads(app, tmp_path, monkeypatch) -> Path:
    root = tmp_path / "uploads"
    monkeypatch.setitem(app.config, "UPLOADS_DIR", str(root))
    return root


@pytest.fixture
def world(app, tenants, make_family):
    """The Martin family (Noé, Lou) with bookings in every status around D = today + 8."""
    fam = make_family("auray", children=[("Lou", "2018-05-01"), ("Noé", "2016-03-10")])
    other = make_family("auray", children=[("Zoé", "2018-01-01")], name="AUTRE")
    lou, noe = fam["child_ids"][1], fam["child_ids"][0]  # children come ordered by birth date
    b = Builder(app, tenants["auray"])
    d = today() + timedelta(days=8)
    days_act = b.activity(units_spec())
    stages = b.activity(sessions_spec([
        {"dates": [d + timedelta(days=i) for i in (2, 3, 4)], "title": "Stage de roller", "time_slot": "journee",
         "start_time": "08:00", "end_time": "18:00", "places": 8},
        {"date": d + timedelta(days=1), "title": "Danse latine", "time_slot": "matin", "start_time": "09:30",
         "end_time": "12:00", "places": 5},
    ]))
    for child in (lou, noe):
        b.inscribe(child, days_act)
        b.inscribe(child, stages)
    b.inscribe(other["child_ids"][0], days_act)
    cantine = b.activity(units_spec(code="cantine", name="Restauration scolaire", start=d, end=d))
    b.inscribe(other["child_ids"][0], cantine)  # not this family's: never in its filters
    res = {
        "matin": b.book(lou, fam["family_id"], b.slot(days_act, d, unit="matin")),
        "repas": b.book(lou, fam["family_id"], b.slot(days_act, d, unit="repas"), RES_PENDING),
        "wait": b.book(noe, fam["family_id"], b.slot(days_act, d, unit="apres_midi"), RES_WAITLIST),
        "absent": b.book(lou, fam["family_id"], b.slot(days_act, d + timedelta(days=1), unit="apres_midi"),
                         RES_ABSENT),
        "danse": b.book(lou, fam["family_id"], b.slot(stages, d + timedelta(days=1), title="Danse latine")),
        "stage": b.book(noe, fam["family_id"], b.slot(stages, d + timedelta(days=2), title="Stage de roller")),
        "held": b.book(lou, fam["family_id"], b.slot(days_act, d + timedelta(days=5), unit="matin"), RES_HELD),
        "cancelled": b.book(noe, fam["family_id"], b.slot(days_act, d, unit="repas"), RES_CANCELLED),
        "refused": b.book(lou, fam["family_id"], b.slot(days_act, d + timedelta(days=1), unit="repas"), RES_REFUSED),
        "other": b.book(other["child_ids"][0], other["family_id"], b.slot(days_act, d, unit="matin")),
    }
    stage_days = [d + timedelta(days=i) for i in (2, 3, 4)]
    shown = [  # (day, child, activity, label, status)
        (d, "Lou", "Accueil de loisirs Les Lutins", "Matin", RES_RESERVED),
        (d, "Lou", "Accueil de loisirs Les Lutins", "Repas", RES_PENDING),
        (d, "Noé", "Accueil de loisirs Les Lutins", "Après-midi", RES_WAITLIST),
        (d + timedelta(days=1), "Lou", "Accueil de loisirs Les Lutins", "Après-midi", RES_ABSENT),
        (d + timedelta(days=1), "Lou", "Séjours & Stages Test", "Danse latine", RES_RESERVED),
    ] + [(day, "Noé", "Séjours & Stages Test", "Stage de roller", RES_RESERVED) for day in stage_days]
    return {"fam": fam, "other": other, "lou": lou, "noe": noe, "d": d, "res": res, "builder": b,
            "days_act": days_act, "stages": stages, "shown": shown}


def _seen(html):
    out = set()
    for item in agenda_items(html):
        activity, label, day, child, word = [p.strip() for p in item["title"].split(" — ")]
        label = re.sub(r" \(.*\)$", "", label)
        out.add((day, child, activity, label, item["status"]))
        assert WORDS[item["status"]] in item["text"] and child in item["text"] and activity in item["text"]
        assert word == WORDS[item["status"]]
    return out


def _expected(world, first, last):
    return {(long(day), child, act, label, st) for day, child, act, label, st in world["shown"] if first <= day <= last}


def _login(web, fam):
    web.login(fam["slug"], fam["email"])


def test_day_view_shows_each_booking_with_its_word_colour_and_the_legend(web, world):
    _login(web, world["fam"])
    d = world["d"]
    html = web.get(f"/auray/agenda?vue=jour&date={d.isoformat()}").get_data(as_text=True)
    assert _seen(html) == _expected(world, d, d)
    assert "Zoé" not in html  # another family's child, same commune, same day
    for word in LEGEND:
        assert word in html
    for status in WORDS:
        assert f"ag-item--{status}" in html  # the legend shows each colour
    items = agenda_items(html)
    assert [i["title"].split(" — ")[1] for i in items] == ["Matin", "Repas", "Après-midi"]  # in the day's order
    matin = next(i for i in items if "Matin" in i["text"])
    assert matin["status"] == RES_RESERVED and f"/auray/absences/{world['res']['matin']}" in matin["links"]
    pending = next(i for i in items if "Repas" in i["text"])
    assert pending["links"] == []  # an absence is only declared on a booked (reserved) day
    assert long(d) in matin["title"] and "Accueil de loisirs Les Lutins" in matin["title"]


def test_week_views_show_a_stage_on_each_of_its_days_and_the_5_day_week_stops_on_friday(web, world):
    _login(web, world["fam"])
    d = world["d"]
    start = week_start(d)
    html = web.get(f"/auray/agenda?vue=semaine&date={d.isoformat()}").get_data(as_text=True)
    assert _seen(html) == _expected(world, start, start + timedelta(days=6))
    assert len(re.findall(r'<li class="ag-day[ "]', html)) == 7
    for i in range(7):
        assert long(start + timedelta(days=i)).capitalize() in html

    html5 = web.get(f"/auray/agenda?vue=semaine5&date={d.isoformat()}").get_data(as_text=True)
    assert _seen(html5) == _expected(world, start, start + timedelta(days=4))
    assert len(re.findall(r'<li class="ag-day[ "]', html5)) == 5
    assert long(start + timedelta(days=5)).capitalize() not in html5

    # Stage de roller appears on each of its three dates (whichever weeks they fall in).
    stage_days = [day for day, _c, _a, label, _s in world["shown"] if label == "Stage de roller"]
    seen_days = set()
    for day in stage_days:
        page = web.get(f"/auray/agenda?vue=jour&date={day.isoformat()}").get_data(as_text=True)
        roller = [i for i in agenda_items(page) if "Stage de roller" in i["text"]]
        assert len(roller) == 1 and "08:00 – 18:00" in roller[0]["text"]
        seen_days.add(day)
    assert len(seen_days) == 3


def test_month_view_shows_the_month_and_hides_held_cancelled_refused(web, world):
    _login(web, world["fam"])
    d = world["d"]
    html = web.get(f"/auray/agenda?vue=mois&date={d.isoformat()}").get_data(as_text=True)
    first = d.replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    assert _seen(html) == _expected(world, first, last)
    title = format_date(d, "MMMM yyyy", locale="fr").capitalize()
    assert title in html
    # the held, cancelled and refused bookings never show: only 4 statuses exist on the page
    assert {i["status"] for i in agenda_items(html)} <= set(WORDS)
    if world["d"] + timedelta(days=5) <= last:
        held_day = long(d + timedelta(days=5))
        assert not [i for i in agenda_items(html) if held_day in i["title"] and "Matin" in i["title"]]


def test_filters_by_child_and_activity(web, world):
    _login(web, world["fam"])
    d = world["d"]
    base = f"/auray/agenda?vue=mois&date={d.isoformat()}&filtre=1"
    html = web.get(f"{base}&enfant={world['lou']}&activite={world['days_act']}&activite={world['stages']}"
                   ).get_data(as_text=True)
    children = {c for _d, c, _a, _l, _s in _seen(html)}
    assert children == {"Lou"}
    assert "Restauration scolaire" not in html  # only the activities the children are inscribed in
    assert f'name="enfant" value="{world["lou"]}" checked' in html
    assert f'name="enfant" value="{world["noe"]}">' in html  # shown unchecked: the "hidden" symbol

    html = web.get(f"{base}&enfant={world['lou']}&enfant={world['noe']}&activite={world['stages']}"
                   ).get_data(as_text=True)
    assert {a for _d, _c, a, _l, _s in _seen(html)} == {"Séjours & Stages Test"}

    html = web.get(base).get_data(as_text=True)  # everything unticked
    assert agenda_items(html) == []
    assert "Aucune activité réservée sur cette période" in html
    # navigation keeps the filters
    html = web.get(f"{base}&enfant={world['lou']}&activite={world['stages']}").get_data(as_text=True)
    nxt = re.search(r'href="([^"]+)"[^>]*aria-label="Mois suivant"', html).group(1)
    assert f"enfant={world['lou']}" in nxt and "filtre=1" in nxt and "activite=" in nxt


def test_navigation_and_bad_parameters(web, world):
    _login(web, world["fam"])
    d = world["d"]
    html = web.get(f"/auray/agenda?vue=semaine&date={d.isoformat()}").get_data(as_text=True)
    prev = re.search(r'href="([^"]+)"[^>]*aria-label="Semaine précédente"', html).group(1)
    nxt = re.search(r'href="([^"]+)"[^>]*aria-label="Semaine suivante"', html).group(1)
    assert f"date={(week_start(d) - timedelta(days=7)).isoformat()}" in prev
    assert f"date={(week_start(d) + timedelta(days=7)).isoformat()}" in nxt
    html = web.get(f"/auray/agenda?vue=mois&date={d.isoformat()}").get_data(as_text=True)
    prev = re.search(r'href="([^"]+)"[^>]*aria-label="Mois précédent"', html).group(1)
    prev_month = (d.replace(day=1) - timedelta(days=1)).replace(day=1)
    assert f"date={prev_month.isoformat()}" in prev
    html = web.get(f"/auray/agenda?vue=jour&date={d.isoformat()}").get_data(as_text=True)
    nxt = re.search(r'href="([^"]+)"[^>]*aria-label="Jour suivant"', html).group(1)
    assert f"date={(d + timedelta(days=1)).isoformat()}" in nxt
    for query in ("vue=xyz&date=2026-13-45", "date=9999-12-31&vue=mois", "date=0001-01-01", "enfant=abc&filtre=1",
                  "vue=mois&date=" + "9" * 300):
        assert web.get(f"/auray/agenda?{query}").status_code == 200, query
    # default: the 7-day week of today
    html = web.get("/auray/agenda").get_data(as_text=True)
    assert 'aria-current="page">Semaine de 7 jours' in html


def test_agenda_needs_a_parent_of_this_commune(web, world, make_agent):
    assert web.get("/auray/agenda").status_code == 302
    agent = make_agent("auray")
    web.login("auray", agent["email"])
    assert web.get("/auray/agenda").status_code == 403


def _count_queries(app, web, url) -> int:
    statements = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", listener)
    try:
        assert web.get(url).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    return len(statements)


def test_queries_do_not_grow_with_days_or_children(app, tenants, make_family, make_web):
    b = Builder(app, tenants["auray"])
    activity = b.activity(units_spec())
    stages = b.activity(sessions_spec([{"dates": [today() + timedelta(days=i) for i in (1, 2, 3)],
                                        "title": "Stage", "time_slot": "journee", "places": 30}]))
    first = today().replace(day=1)
    month_days = [first + timedelta(days=i) for i in range(31) if (first + timedelta(days=i)).month == first.month]
    counts, shown = {}, {}
    for n in (1, 3):
        fam = make_family("auray", children=[(f"Enfant{i}", "2018-01-0" + str(i + 1)) for i in range(n)])
        for child in fam["child_ids"]:
            b.inscribe(child, activity)
            b.inscribe(child, stages)
            b.book(child, fam["family_id"], b.slot(stages, today() + timedelta(days=1), title="Stage"))
        b.book_days(fam["child_ids"], fam["family_id"], activity, month_days)
        web = make_web()
        web.login("auray", fam["email"])
        for view in ("semaine", "mois", "jour"):
            url = f"/auray/agenda?vue={view}&date={today().isoformat()}"
            shown[(n, view)] = len(agenda_items(web.get(url).get_data(as_text=True)))
            counts[(n, view)] = _count_queries(app, web, url)
    stage_days = sum(1 for i in (1, 2, 3) if (today() + timedelta(days=i)).month == first.month)
    for n in (1, 3):  # the items are really there, many more in a month than in a day
        assert shown[(n, "jour")] == 3 * n
        assert shown[(n, "mois")] == n * (3 * len(month_days) + stage_days)
    assert len(set(counts.values())) == 1, counts
    assert max(counts.values()) <= 12, counts


# ====================================================================== absences

def _absence(web, res_id, data, **kw):
    return web.post(f"/auray/absences/{res_id}", data, content_type="multipart/form-data", **kw)


def _demandes(app, tenant_id):
    with app.app_context(), tenant_scope(tenant_id):
        rows = db.session.scalars(select(Demande)).all()
        out = [{"type": d.type, "status": d.status, "family_id": d.family_id, "number": d.number,
                "lines": [(line.action, line.status, line.reservation_id, line.motif) for line in d.lines],
                "events": len(d.events)} for d in rows]
        db.session.remove()
    return out


def test_absences_list_shows_booked_days_with_a_button(web, world):
    b, fam = world["builder"], world["fam"]
    past = b.book(world["lou"], fam["family_id"], b.slot(world["days_act"], today() - timedelta(days=3), unit="matin"))
    old = b.book(world["lou"], fam["family_id"], b.slot(world["days_act"], today() - timedelta(days=60), unit="matin"))
    _login(web, fam)
    html = web.get("/auray/absences").get_data(as_text=True)
    for key in ("matin", "danse", "stage"):
        assert f'href="/auray/absences/{world["res"][key]}"' in html
    for key in ("repas", "wait", "absent", "held", "cancelled", "refused", "other"):
        assert f'href="/auray/absences/{world["res"][key]}"' not in html
    assert "Prochaines journées réservées" in html and html.count("Justifier une absence<span") == 4
    assert f'href="/auray/absences/{past}"' in html and "Journées passées (30 derniers jours)" in html
    assert f'href="/auray/absences/{old}"' not in html
    stage = world["d"] + timedelta(days=2)
    assert f"du {long(stage)} au {long(stage + timedelta(days=2))}" in html
    # the agenda leads there
    assert 'href="/auray/absences"' in web.get("/auray/agenda").get_data(as_text=True)


def test_justify_an_absence_with_a_pdf(app, web, world, uploads, tenants):
    _login(web, world["fam"])
    rid = world["res"]["matin"]
    before = world["builder"].reservation(rid)
    page = web.get(f"/auray/absences/{rid}").get_data(as_text=True)
    assert "Lou" in page and "Matin" in page and long(world["d"]) in page and "Réservé" in page
    res = _absence(web, rid, {"motif": "maladie", "details": "Varicelle",
                              "document": (io.BytesIO(PDF), "certificat.PDF", "application/octet-stream")})
    assert res.status_code == 302
    after = world["builder"].reservation(rid)
    assert after["status"] == RES_ABSENT and after["motif"] == "Maladie : Varicelle"
    assert after["taken"] == before["taken"]  # the place is kept
    stored = uploads / after["document"]
    assert after["document"].startswith("auray/absences/") and stored.read_bytes() == PDF
    assert "certificat" not in after["document"] and stored.suffix == ".pdf"
    (demande,) = _demandes(app, tenants["auray"])
    assert demande["type"] == TYPE_ABSENCE and demande["status"] == DEMANDE_ACCEPTEE
    assert demande["family_id"] == world["fam"]["family_id"] and demande["events"] >= 1
    assert demande["lines"] == [(ACTION_ABSENCE, LINE_ACCEPTED, rid, "Maladie : Varicelle")]

    html = web.get(res.headers["Location"]).get_data(as_text=True)
    assert f"Nous avons bien enregistré l'absence de Lou (demande N° {demande['number']})" in unescape(html)
    matin = next(i for i in agenda_items(html) if "Matin" in i["text"] and long(world["d"]) in i["title"])
    assert matin["status"] == RES_ABSENT and "Absent" in matin["text"] and matin["links"] == []

    # the family downloads its own document; a second submission changes nothing
    got = web.get(f"/auray/absences/{rid}/justificatif")
    assert got.status_code == 200 and got.data == PDF and got.mimetype == "application/pdf"
    assert "attachment" in got.headers["Content-Disposition"]
    again = _absence(web, rid, {"motif": "famille"}, page=f"/auray/absences/{rid}")
    assert again.status_code == 409 and "Une absence a déjà été déclarée" in again.get_data(as_text=True)
    assert len(_demandes(app, tenants["auray"])) == 1
    assert world["builder"].reservation(rid)["motif"] == "Maladie : Varicelle"


@pytest.mark.parametrize("content,suffix", [(PNG, ".png"), (JPEG, ".jpg")])
def test_png_and_jpeg_are_accepted_by_their_content(web, world, uploads, content, suffix):
    _login(web, world["fam"])
    rid = world["res"]["danse"]
    res = _absence(web, rid, {"motif": "rendez-vous", "document": (io.BytesIO(content), "scan.pdf", "application/pdf")})
    assert res.status_code == 302
    after = world["builder"].reservation(rid)
    assert after["status"] == RES_ABSENT and (uploads / after["document"]).suffix == suffix


def test_a_text_file_renamed_pdf_is_refused_and_the_motif_kept(app, web, world, uploads, tenants):
    _login(web, world["fam"])
    rid = world["res"]["matin"]
    res = _absence(web, rid, {"motif": "autre", "details": "Sortie scolaire",
                              "document": (io.BytesIO(b"je suis un faux PDF\n" * 20), "certificat.pdf",
                                           "application/pdf")})
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    err = re.search(r'<p class="error" id="document-err" role="alert">([^<]+)</p>', html)
    assert err and "n'est pas un PDF, ni une image JPEG ou PNG" in unescape(err.group(1))
    assert '<option selected value="autre">' in html and "Sortie scolaire" in html
    assert world["builder"].reservation(rid)["status"] == RES_RESERVED
    assert _demandes(app, tenants["auray"]) == []
    assert not uploads.exists() or not any(uploads.rglob("*.*"))


def test_a_6_mb_file_is_refused(app, web, world, uploads, tenants):
    _login(web, world["fam"])
    rid = world["res"]["matin"]
    big = PDF + b"0" * (6 * 1024 * 1024)
    res = _absence(web, rid, {"motif": "maladie", "document": (io.BytesIO(big), "gros.pdf", "application/pdf")})
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    assert "Le fichier dépasse la taille maximale de 5 Mo" in html
    assert '<option selected value="maladie">' in html
    assert world["builder"].reservation(rid)["status"] == RES_RESERVED
    assert _demandes(app, tenants["auray"]) == []


def test_motif_is_required_and_other_needs_details(web, world, uploads):
    _login(web, world["fam"])
    rid = world["res"]["matin"]
    html = unescape(_absence(web, rid, {"motif": ""}).get_data(as_text=True))
    assert "Choisissez le motif de l'absence." in html
    html = _absence(web, rid, {"motif": "pas-dans-la-liste"}).get_data(as_text=True)
    assert 'id="motif-err"' in html
    html = unescape(_absence(web, rid, {"motif": "autre", "details": "  "}).get_data(as_text=True))
    assert "Précisez le motif de l'absence." in html
    assert world["builder"].reservation(rid)["status"] == RES_RESERVED
    res = _absence(web, rid, {"motif": "autre", "details": "Mariage"})  # no document: fine
    assert res.status_code == 302
    after = world["builder"].reservation(rid)
    assert after["status"] == RES_ABSENT and after["motif"] == "Autre motif : Mariage" and after["document"] is None


def test_a_reservation_not_reserved_gets_a_french_message(app, web, world, uploads, tenants):
    _login(web, world["fam"])
    for key in ("repas", "wait", "held", "cancelled"):
        rid = world["res"][key]
        html = web.get(f"/auray/absences/{rid}").get_data(as_text=True)
        assert "Une absence ne peut être déclarée que sur une journée réservée" in html
        assert 'name="motif"' not in html
        res = _absence(web, rid, {"motif": "maladie"}, page="/auray/absences")
        assert res.status_code == 409
        assert world["builder"].reservation(rid)["status"] != RES_ABSENT
    assert _demandes(app, tenants["auray"]) == []


def test_foreign_reservations_answer_404(app, web, world, uploads, tenants, make_family, make_web):
    # Another family of the same commune
    _login(web, world["fam"])
    other = world["res"]["other"]
    assert web.get(f"/auray/absences/{other}").status_code == 404
    assert _absence(web, other, {"motif": "maladie"}, page="/auray/absences").status_code == 404
    assert web.get("/auray/absences/999999").status_code == 404
    assert world["builder"].reservation(other)["status"] == RES_RESERVED

    # The family justifies with a document; nobody else can fetch it
    rid = world["res"]["matin"]
    assert _absence(web, rid, {"motif": "maladie", "document": (io.BytesIO(PDF), "c.pdf")}).status_code == 302
    assert web.get(f"/auray/absences/{rid}/justificatif").status_code == 200
    neighbour = make_web()
    neighbour.login("auray", world["other"]["email"])
    assert neighbour.get(f"/auray/absences/{rid}/justificatif").status_code == 404
    assert neighbour.get(f"/auray/absences/{rid}").status_code == 404
    assert f'/auray/absences/{rid}"' not in neighbour.get("/auray/absences").get_data(as_text=True)

    # A family of another commune, with the same ids
    elsewhere = make_family("saint-loubes", children=[("Jules", "2017-02-02")])
    stranger = make_web()
    stranger.login("saint-loubes", elsewhere["email"])
    for path in (f"/saint-loubes/absences/{rid}", f"/saint-loubes/absences/{rid}/justificatif",
                 f"/saint-loubes/absences/{other}"):
        assert stranger.get(path).status_code == 404, path
    # and Auray's pages do not know this account
    assert stranger.get(f"/auray/absences/{rid}/justificatif").status_code == 302
    assert len(_demandes(app, tenants["auray"])) == 1
    with app.app_context(), tenant_scope(tenants["saint-loubes"]):
        assert db.session.scalars(select(Demande)).all() == []


def test_post_without_csrf_is_refused(web, world, uploads):
    _login(web, world["fam"])
    rid = world["res"]["matin"]
    res = web.post(f"/auray/absences/{rid}", {"motif": "maladie"}, csrf=False)
    assert res.status_code == 400
    assert world["builder"].reservation(rid)["status"] == RES_RESERVED


def test_the_5_day_week_of_a_weekend_is_the_coming_one():
    from datetime import date

    from core.agenda import VIEW_DAY, VIEW_WEEK, VIEW_WEEK5, default_day

    saturday, sunday, friday = date(2026, 12, 5), date(2026, 12, 6), date(2026, 12, 4)
    assert default_day(VIEW_WEEK5, saturday) == default_day(VIEW_WEEK5, sunday) == date(2026, 12, 7)
    assert default_day(VIEW_WEEK5, friday) == friday
    assert default_day(VIEW_WEEK, saturday) == default_day(VIEW_DAY, saturday) == saturday

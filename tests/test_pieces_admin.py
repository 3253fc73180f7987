"""Agents and pièces justificatives: the queue, the decision form's French errors, another
commune's pieces (404), the types and retention they edit."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from core import clock
from core.documents.models import PIECE_PENDING, PIECE_VALIDATED, Piece, PieceType
from extensions import db
from tenants.context import tenant_scope
from tests.pieces_data import PDF
from tests.test_pieces import pieces, upload


def text(response):
    return response.get_data(as_text=True).replace("&#39;", "'")


def setup(make_family, make_agent, piece_types, web, make_web, slug="auray"):
    types = piece_types(slug)
    fam = make_family(slug)
    web.login(slug, fam["email"])
    upload(web, slug, types["domicile"], PDF)
    agent = make_agent(slug)
    staff = make_web()
    staff.login(slug, agent["email"])
    return types, fam, staff


def test_the_decision_form_answers_in_french_next_to_the_field(app, make_family, make_agent, piece_types, web,
                                                               make_web):
    types, fam, staff = setup(make_family, make_agent, piece_types, web, make_web)
    piece = pieces(app, fam["tenant_id"])[0]
    queue = text(staff.get("/auray/admin/pieces"))
    assert "Justificatif de domicile" in queue and "Examiner" in queue
    url = f"/auray/admin/pieces/{piece['id']}"
    review = text(staff.get(url))
    assert "Le dossier famille" in review and "Valable jusqu'au" in review
    past = (clock.today() - timedelta(days=1)).isoformat()
    answer = staff.post(f"{url}/decision", {"action": "valider", "valid_until": past}, page=url)
    assert answer.status_code == 422 and "La date de fin de validité ne peut pas être passée." in text(answer)
    answer = staff.post(f"{url}/decision", {"action": "valider", "valid_until": ""}, page=url)
    assert answer.status_code == 422 and "Indiquez la date de fin de validité." in text(answer)
    answer = staff.post(f"{url}/decision", {"action": "refuser", "motif_text": "  "}, page=url)
    assert answer.status_code == 422 and "Indiquez le motif du refus" in text(answer)
    assert pieces(app, fam["tenant_id"])[0]["status"] == PIECE_PENDING
    end = (clock.today() + timedelta(days=80)).isoformat()
    answer = staff.post(f"{url}/decision", {"action": "valider", "valid_until": end}, page=url)
    assert answer.status_code == 303
    row = pieces(app, fam["tenant_id"])[0]
    assert row["status"] == PIECE_VALIDATED and row["valid_until"].isoformat() == end
    again = staff.post(f"{url}/decision", {"action": "refuser", "motif_text": "Trop tard"}, page=url)
    assert again.status_code == 303
    assert "Cette pièce a déjà été traitée par quelqu'un d'autre." in text(staff.get(again.headers["Location"]))
    assert staff.get(f"{url}/fichier").status_code == 200
    family_page = text(staff.get(f"/auray/admin/familles/{fam['family_id']}/pieces"))
    assert "Validée jusqu'au" in family_page
    assert "Agent Test — Justificatif de domicile" in family_page  # the agent's read of the file is listed


def test_a_piece_of_another_commune_answers_404_to_agents_and_parents_get_403(app, make_family, make_agent,
                                                                              piece_types, web, make_web):
    types, fam, staff = setup(make_family, make_agent, piece_types, web, make_web)
    piece = pieces(app, fam["tenant_id"])[0]
    piece_types("saint-loubes")
    other_agent = make_agent("saint-loubes")
    foreign = make_web()
    foreign.login("saint-loubes", other_agent["email"])
    for path in (f"/saint-loubes/admin/pieces/{piece['id']}", f"/saint-loubes/admin/pieces/{piece['id']}/fichier",
                 f"/saint-loubes/admin/familles/{fam['family_id']}/pieces"):
        assert foreign.get(path).status_code == 404, path
    assert web.get("/auray/admin/pieces").status_code == 403
    assert web.get(f"/auray/admin/pieces/{piece['id']}/fichier").status_code == 403


def test_agents_edit_the_types_and_the_retention(app, make_family, make_agent, make_activity, piece_types, web,
                                                 make_web):
    types, fam, staff = setup(make_family, make_agent, piece_types, web, make_web)
    make_activity("auray", code="klub-test", name="Klub test")
    page = text(staff.get("/auray/admin/pieces/types"))
    assert "Justificatif de domicile" in page and "Jugement de garde" in page
    form = {"code": "pai", "label": "PAI", "label_en": "Care plan", "concerns": "child", "validity": "months",
            "months": "", "required_for": ["klub-test"], "active": "y"}
    bad = staff.post("/auray/admin/pieces/types/nouveau", form, page="/auray/admin/pieces/types/nouveau")
    assert bad.status_code == 422 and "Indiquez le nombre de mois." in text(bad)
    form["months"] = "12"
    assert staff.post("/auray/admin/pieces/types/nouveau", form,
                      page="/auray/admin/pieces/types/nouveau").status_code == 303
    clash = dict(form, label="Autre")
    assert "Ce code est déjà utilisé" in text(staff.post("/auray/admin/pieces/types/nouveau", clash,
                                                         page="/auray/admin/pieces/types/nouveau"))
    with app.app_context(), tenant_scope(fam["tenant_id"]):
        row = db.session.scalars(select(PieceType).where(PieceType.code == "pai")).one()
        assert (row.concerns, row.validity_months, row.required_for) == ("child", 12, ["klub-test"])
    retention = staff.post("/auray/admin/pieces/types", {"days_after_expiry": "0", "days_after_refusal": "30",
                                                         "announce_days": "15"}, page="/auray/admin/pieces/types")
    assert retention.status_code == 422 and "Saisissez un nombre entre 1 et 3650." in text(retention)
    assert staff.post("/auray/admin/pieces/types", {"days_after_expiry": "365", "days_after_refusal": "30",
                                                    "announce_days": "15"},
                      page="/auray/admin/pieces/types").status_code == 303
    from tenants.models import Tenant

    with app.app_context():
        tenant = db.session.get(Tenant, fam["tenant_id"])
        assert tenant.settings["pieces"] == {"days_after_expiry": 365, "days_after_refusal": 30, "announce_days": 15}


def test_the_commune_folders_pieces_toml_load(app, tenants):
    from core.documents.config import load_folder_pieces
    from tenants.models import Tenant
    from tenants.registry import discover

    for folder in discover(app.config["TENANTS_DIR"]):
        with app.app_context(), tenant_scope(tenants[folder.slug]):
            rows = load_folder_pieces(db.session.get(Tenant, tenants[folder.slug]), folder.path)
            assert {r.code for r in rows} >= {"domicile", "assurance", "vaccinations", "quotient", "pai", "garde"}
            db.session.rollback()


def test_a_piece_row_belongs_to_its_commune(app, make_family, piece_types, web):
    types = piece_types("auray")
    fam = make_family("auray")
    web.login("auray", fam["email"])
    upload(web, "auray", types["domicile"], PDF)
    with app.app_context(), tenant_scope(fam["tenant_id"] + 1 if fam["tenant_id"] == 1 else 1):
        assert db.session.scalars(select(Piece)).all() == []

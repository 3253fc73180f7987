"""Pièces justificatives: given once and reused, blocking the inscription until validated (and again
once expired), files checked by their content and served only to their family and commune."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from sqlalchemy import select

from core import clock
from core.documents.models import PIECE_PENDING, PIECE_REFUSED, PIECE_VALIDATED, Piece
from core.documents.storage import get_storage
from core.models import INSCRIPTION_ACCEPTED, INSCRIPTION_PENDING, Demande, Inscription, OutboxMail
from extensions import db
from tenants.context import tenant_scope
from tests.pieces_data import HTML, PDF, SVG, png


def upload(web, slug, type_id, data, *, child_id=None, filename="piece.pdf", htmx=False):
    form = {"type": str(type_id), "fichier": (io.BytesIO(data), filename)}
    if child_id:
        form["enfant"] = str(child_id)
    headers = {"HX-Request": "true"} if htmx else {}
    return web.post(f"/{slug}/pieces/envoyer", form, page=f"/{slug}/pieces/", content_type="multipart/form-data",
                    headers=headers)


def pieces(app, tenant_id, **where):
    with app.app_context(), tenant_scope(tenant_id):
        rows = db.session.scalars(select(Piece).filter_by(**where).order_by(Piece.id)).all()
        out = [{"id": p.id, "status": p.status, "key": p.storage_key, "type_id": p.type_id, "child_id": p.child_id,
                "valid_until": p.valid_until, "motif": p.motif} for p in rows]
        db.session.remove()
    return out


def decide(app, tenant_id, piece_id, *, valid_until="default", motif=None):
    """An agent's decision through the service (the web form is tested separately)."""
    from core.documents import services
    from core.models import User

    with app.app_context(), tenant_scope(tenant_id):
        piece = db.session.get(Piece, piece_id)
        agent = User(first_name="Claire", last_name="Agent")
        if motif:
            services.refuse(piece, agent=agent, motif=motif)
        else:
            end = services.proposed_end(piece) if valid_until == "default" else valid_until
            services.validate(piece, agent=agent, valid_until=end)
        db.session.commit()
        db.session.remove()


def set_validated(app, tenant_id, piece_id, valid_until):
    with app.app_context(), tenant_scope(tenant_id):
        piece = db.session.get(Piece, piece_id)
        piece.status = PIECE_VALIDATED
        piece.valid_until = valid_until
        piece.decided_at = clock.utcnow()
        piece.decided_by = "Agent"
        db.session.commit()
        db.session.remove()


def inscription_status(app, tenant_id, child_id, activity_id):
    with app.app_context(), tenant_scope(tenant_id):
        ins = db.session.scalars(select(Inscription).where(Inscription.child_id == child_id,
                                                           Inscription.activity_id == activity_id)).first()
        status = ins.status if ins else None
        db.session.remove()
    return status


def ask_inscription(web, slug, activity_id, child_ids):
    return web.post(f"/{slug}/inscriptions/nouvelle", {"activite": str(activity_id),
                                                       "enfants": [str(c) for c in child_ids]},
                    page=f"/{slug}/inscriptions/nouvelle", content_type="multipart/form-data")


@pytest.fixture
def family_with_activity(make_family, make_activity, piece_types, web):
    """A Saint-Loubès family with one child and an activity validated at once that needs two pieces."""
    types = piece_types("saint-loubes", required_for=["kids", "kids2"])
    fam = make_family("saint-loubes", children=[("Hugo", (clock.today() - timedelta(days=365 * 6)).isoformat())])
    act = make_activity("saint-loubes", inscription_validation="immediate", ages=[3, 11])
    web.login("saint-loubes", fam["email"])
    return fam, act, types


def test_a_required_piece_blocks_the_inscription_until_validated_and_not_before(app, family_with_activity, web):
    fam, act, types = family_with_activity
    tid, child = fam["tenant_id"], fam["child_ids"][0]

    page = web.get("/saint-loubes/inscriptions/nouvelle").get_data(as_text=True).replace("&#39;", "'")
    assert "Justificatif de domicile" in page and "Attestation d'assurance extrascolaire" in page
    assert "À fournir" in page

    assert upload(web, "saint-loubes", types["domicile"], PDF).status_code == 303
    assert upload(web, "saint-loubes", types["assurance"], png(), child_id=child, filename="a.png").status_code == 303
    response = ask_inscription(web, "saint-loubes", act["id"], [child])
    assert response.status_code == 303
    # immediate for this activity, but it waits for its pieces
    assert inscription_status(app, tid, child, act["id"]) == INSCRIPTION_PENDING
    show = web.get(response.headers["Location"]).get_data(as_text=True).replace("&#39;", "'")
    assert "En attente des pièces justificatives" in show

    domicile, assurance = pieces(app, tid)
    decide(app, tid, domicile["id"])
    assert inscription_status(app, tid, child, act["id"]) == INSCRIPTION_PENDING  # one validated is not enough
    decide(app, tid, assurance["id"])
    assert inscription_status(app, tid, child, act["id"]) == INSCRIPTION_ACCEPTED
    with app.app_context(), tenant_scope(tid):
        demande = db.session.scalars(select(Demande)).one()
        assert demande.status == "acceptee" and demande.decided_by == "Traitement automatique"
        assert db.session.scalars(select(OutboxMail).where(OutboxMail.template == "demande_decided")).first()


def test_an_agent_cannot_accept_while_a_piece_is_missing(app, make_family, make_activity, make_agent, piece_types,
                                                          web, make_web):
    types = piece_types("auray", required_for=["kids"])
    fam = make_family("auray", children=[("Maël", (clock.today() - timedelta(days=365 * 5)).isoformat())])
    act = make_activity("auray")  # inscription validated by the commune
    web.login("auray", fam["email"])
    ask_inscription(web, "auray", act["id"], fam["child_ids"])
    agent = make_agent("auray")
    staff = make_web()
    staff.login("auray", agent["email"])
    with app.app_context(), tenant_scope(fam["tenant_id"]):
        demande_id = db.session.scalars(select(Demande.id)).one()
    page = staff.get(f"/auray/admin/demandes/{demande_id}").get_data(as_text=True).replace("&#39;", "'")
    assert "Pièces justificatives" in page and "Justificatif de domicile" in page
    answer = staff.post(f"/auray/admin/demandes/{demande_id}/decision", {"action": "accepter"},
                        page=f"/auray/admin/demandes/{demande_id}")
    assert answer.status_code == 409
    assert "Pièces manquantes au dossier" in answer.get_data(as_text=True).replace("&#39;", "'")
    assert inscription_status(app, fam["tenant_id"], fam["child_ids"][0], act["id"]) == INSCRIPTION_PENDING

    upload(web, "auray", types["domicile"], PDF)
    upload(web, "auray", types["assurance"], PDF, child_id=fam["child_ids"][0])
    for p in pieces(app, fam["tenant_id"]):
        decide(app, fam["tenant_id"], p["id"])
    answer = staff.post(f"/auray/admin/demandes/{demande_id}/decision", {"action": "accepter"},
                        page=f"/auray/admin/demandes/{demande_id}")
    assert answer.status_code == 303
    assert inscription_status(app, fam["tenant_id"], fam["child_ids"][0], act["id"]) == INSCRIPTION_ACCEPTED


def test_an_expired_piece_blocks_again(app, family_with_activity, web):
    fam, act, types = family_with_activity
    tid, child = fam["tenant_id"], fam["child_ids"][0]
    upload(web, "saint-loubes", types["domicile"], PDF)
    upload(web, "saint-loubes", types["assurance"], PDF, child_id=child)
    domicile, assurance = pieces(app, tid)
    set_validated(app, tid, assurance["id"], clock.today() + timedelta(days=200))
    set_validated(app, tid, domicile["id"], clock.today() - timedelta(days=1))  # validated, now past its end

    page = web.get("/saint-loubes/pieces/").get_data(as_text=True).replace("&#39;", "'")
    assert "Expirée depuis le" in page
    ask_inscription(web, "saint-loubes", act["id"], [child])
    assert inscription_status(app, tid, child, act["id"]) == INSCRIPTION_PENDING
    dashboard = web.get("/saint-loubes/mon-espace").get_data(as_text=True).replace("&#39;", "'")
    assert "Pièce justificative expirée : Justificatif de domicile" in dashboard

    upload(web, "saint-loubes", types["domicile"], PDF)  # the family replaces it; the agent validates
    new = [p for p in pieces(app, tid) if p["status"] == PIECE_PENDING][0]
    decide(app, tid, new["id"])
    assert inscription_status(app, tid, child, act["id"]) == INSCRIPTION_ACCEPTED
    assert len(pieces(app, tid, type_id=types["domicile"])) == 1  # the expired one is gone


def test_the_same_pieces_serve_two_inscriptions(app, family_with_activity, make_activity, web):
    fam, act, types = family_with_activity
    tid, child = fam["tenant_id"], fam["child_ids"][0]
    second = make_activity("saint-loubes", code="kids2", name="Mercredis", inscription_validation="immediate",
                           ages=[3, 11])
    upload(web, "saint-loubes", types["domicile"], PDF)
    upload(web, "saint-loubes", types["assurance"], PDF, child_id=child)
    for p in pieces(app, tid):
        decide(app, tid, p["id"])
    page = web.get("/saint-loubes/inscriptions/nouvelle").get_data(as_text=True).replace("&#39;", "'")
    assert "Validée jusqu'au" in page
    ask_inscription(web, "saint-loubes", act["id"], [child])
    ask_inscription(web, "saint-loubes", second["id"], [child])
    assert inscription_status(app, tid, child, act["id"]) == INSCRIPTION_ACCEPTED
    assert inscription_status(app, tid, child, second["id"]) == INSCRIPTION_ACCEPTED
    assert len(pieces(app, tid)) == 2  # nothing asked twice


@pytest.mark.parametrize("data,name", [(HTML, "facture.pdf"), (SVG, "facture.pdf"), (HTML, "photo.png"),
                                       (b"%PDF-1.4\n<html><script>alert(1)</script>", "tronque.pdf"),
                                       (b"GIF89a\x01\x00", "image.jpg")])
def test_html_or_svg_renamed_pdf_is_refused(app, make_family, piece_types, web, data, name):
    types = piece_types("auray")
    fam = make_family("auray")
    web.login("auray", fam["email"])
    response = upload(web, "auray", types["domicile"], data, filename=name)
    assert response.status_code == 422
    text = response.get_data(as_text=True).replace("&#39;", "'")
    assert ("Le fichier doit être un PDF, une image JPEG ou une image PNG" in text
            or "Le fichier PDF est incomplet ou endommagé" in text)
    assert pieces(app, fam["tenant_id"]) == []
    assert not list((get_storage_root(app)).rglob("*.*"))


def get_storage_root(app):
    from pathlib import Path

    return Path(app.config["PIECES_STORAGE_DIR"])


def test_htmx_upload_answers_the_card_with_its_new_status(app, make_family, piece_types, web):
    types = piece_types("auray")
    fam = make_family("auray")
    web.login("auray", fam["email"])
    response = upload(web, "auray", types["domicile"], PDF, htmx=True)
    assert response.status_code == 200
    html = response.get_data(as_text=True).replace("&#39;", "'")
    assert html.lstrip().startswith("{#") is False and 'class="card piece-slot"' in html
    assert "En attente de validation" in html and "<html" not in html
    bad = upload(web, "auray", types["domicile"], SVG, htmx=True)
    assert bad.status_code == 200 and "Le fichier doit être un PDF" in bad.get_data(as_text=True).replace("&#39;", "'")


class CountingStream(io.RawIOBase):
    """A 30 MB request body produced on demand, counting what the server reads of it."""

    def __init__(self, size):
        self.size = size
        self.pos = 0
        self.read_bytes = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.pos

    def seek(self, offset, whence=0):
        self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
        return self.pos

    def readinto(self, buffer):
        n = max(0, min(len(buffer), self.size - self.pos))
        buffer[:n] = b"0" * n
        self.pos += n
        self.read_bytes += n
        return n


@pytest.mark.parametrize("megabytes", [30, 12])
def test_a_30_mb_file_is_refused_without_reading_it(app, make_family, piece_types, web, megabytes):
    """30 MB is over every limit; 12 MB only over the pieces' 10 MB, refused all the same before reading."""
    piece_types("auray")
    fam = make_family("auray")
    web.login("auray", fam["email"])
    web.get("/auray/pieces/")
    size = megabytes * 1024 * 1024
    stream = CountingStream(size)
    response = web.client.post("/auray/pieces/envoyer", input_stream=stream,
                               content_type="multipart/form-data; boundary=xyz",
                               content_length=size)
    assert response.status_code == 413
    assert "Le fichier dépasse la taille maximale de 10 Mo." in response.get_data(as_text=True).replace("&#39;", "'")
    assert stream.read_bytes < 1024 * 1024
    assert pieces(app, fam["tenant_id"]) == []


def test_a_file_over_the_limit_without_a_length_is_cut_while_streaming(app, ctx, tenants):
    from core.documents.content import ContentError, check_upload

    class Endless(io.RawIOBase):
        read_bytes = 0

        def readable(self):
            return True

        def readinto(self, buffer):
            buffer[:len(buffer)] = b"%" * len(buffer)
            self.read_bytes += len(buffer)
            return len(buffer)

    stream = Endless()
    with pytest.raises(ContentError) as err:
        check_upload(stream, max_bytes=1024 * 1024)
    assert err.value.code == "size" and stream.read_bytes <= 1024 * 1024 + 64 * 1024


def test_a_file_of_another_family_or_commune_answers_404(app, make_family, make_agent, piece_types, make_web):
    types = piece_types("auray")
    piece_types("saint-loubes")
    owner, other = make_family("auray"), make_family("auray")
    foreign = make_family("saint-loubes")
    w_owner, w_other, w_foreign = make_web(), make_web(), make_web()
    w_owner.login("auray", owner["email"])
    upload(w_owner, "auray", types["domicile"], PDF)
    piece = pieces(app, owner["tenant_id"])[0]
    url = f"/auray/pieces/{piece['id']}/fichier"
    mine = w_owner.get(url)
    assert mine.status_code == 200 and mine.data == PDF
    assert mine.headers["X-Content-Type-Options"] == "nosniff"
    assert mine.headers["Content-Disposition"].startswith("attachment")

    w_other.login("auray", other["email"])
    assert w_other.get(url).status_code == 404
    w_foreign.login("saint-loubes", foreign["email"])
    assert w_foreign.get(f"/saint-loubes/pieces/{piece['id']}/fichier").status_code == 404
    agent_sl = make_agent("saint-loubes")
    w_agent = make_web()
    w_agent.login("saint-loubes", agent_sl["email"])
    assert w_agent.get(f"/saint-loubes/admin/pieces/{piece['id']}").status_code == 404
    assert w_agent.get(f"/saint-loubes/admin/pieces/{piece['id']}/fichier").status_code == 404
    # guessed paths: the storage key, the folder, the instance
    key = piece["key"]
    for guess in (f"/auray/pieces/{key}", f"/auray/pieces/fichier/{key}", f"/static/../instance/pieces/{key}",
                  f"/instance/pieces/{key}", f"/pieces/{key}", f"/auray/static/{key}", f"/static/{key}"):
        assert w_other.get(guess).status_code == 404, guess
        assert w_owner.get(guess).status_code == 404, guess


def test_refusal_is_mailed_with_its_motif_and_the_family_replaces_the_piece(app, make_family, piece_types, web,
                                                                           outbox):
    types = piece_types("auray")
    fam = make_family("auray")
    web.login("auray", fam["email"])
    upload(web, "auray", types["domicile"], PDF)
    first = pieces(app, fam["tenant_id"])[0]
    decide(app, fam["tenant_id"], first["id"], motif="Document illisible")
    page = web.get("/auray/pieces/").get_data(as_text=True).replace("&#39;", "'")
    assert "Refusée : Document illisible" in page
    mails = outbox.to(fam["email"])
    assert len(mails) == 1 and "Document illisible" in outbox.text(mails[0])
    assert "Justificatif de domicile" in outbox.text(mails[0])
    upload(web, "auray", types["domicile"], png(), filename="scan.png")
    rows = pieces(app, fam["tenant_id"])
    assert [r["status"] for r in rows] == [PIECE_PENDING]
    assert not get_storage().exists(first["key"]) if False else True
    with app.app_context():
        assert not get_storage().exists(first["key"])
        assert get_storage().exists(rows[0]["key"])


def test_retention_deletes_the_file_from_the_storage(app, make_family, piece_types, web):
    from jobs.pieces import sweep_now

    types = piece_types("auray")
    fam = make_family("auray")
    web.login("auray", fam["email"])
    upload(web, "auray", types["domicile"], PDF)
    upload(web, "auray", types["garde"], PDF)
    old, kept = pieces(app, fam["tenant_id"])
    set_validated(app, fam["tenant_id"], old["id"], clock.today() - timedelta(days=91))
    set_validated(app, fam["tenant_id"], kept["id"], clock.today() - timedelta(days=89))
    with app.app_context():
        assert get_storage().exists(old["key"])
    with app.app_context():
        done = sweep_now()
    assert done["purged"] == 1
    with app.app_context():
        assert not get_storage().exists(old["key"])
        assert get_storage().exists(kept["key"])
    assert [p["id"] for p in pieces(app, fam["tenant_id"])] == [kept["id"]]


def test_the_deletion_request_deletes_the_pieces_and_the_export_lists_them(app, make_family, piece_types, web):
    types = piece_types("auray")
    fam = make_family("auray")
    web.login("auray", fam["email"])
    upload(web, "auray", types["domicile"], PDF, filename="edf-mars.pdf")
    export = web.get("/auray/famille/mes-donnees.json")
    assert export.status_code == 200
    data = export.get_json()
    assert [p["filename"] for p in data["pieces"]] == ["edf-mars.pdf"]
    assert data["pieces"][0]["status"] == "pending" and "storage_key" not in data["pieces"][0]
    key = pieces(app, fam["tenant_id"])[0]["key"]
    response = web.post("/auray/famille/supprimer-mon-compte", {"reason": "Déménagement", "confirm": "y", "password": fam["password"]},
                        page="/auray/famille/supprimer-mon-compte")
    assert response.status_code == 200 and "Demande de suppression enregistrée" in response.get_data(as_text=True)
    assert pieces(app, fam["tenant_id"]) == []
    with app.app_context():
        assert not get_storage().exists(key)


def test_expiry_is_announced_once_by_mail_and_on_the_dashboard(app, make_family, piece_types, web, outbox):
    from jobs.pieces import sweep_now

    types = piece_types("auray")
    fam = make_family("auray")
    web.login("auray", fam["email"])
    upload(web, "auray", types["domicile"], PDF)
    piece = pieces(app, fam["tenant_id"])[0]
    set_validated(app, fam["tenant_id"], piece["id"], clock.today() + timedelta(days=20))
    with app.app_context():
        assert sweep_now()["announced"] == 1
        assert sweep_now()["announced"] == 0
    mails = [m for m in outbox.to(fam["email"]) if "expire" in m["Subject"]]
    assert len(mails) == 1
    assert "Justificatif de domicile" in outbox.text(mails[0])
    dashboard = web.get("/auray/mon-espace").get_data(as_text=True).replace("&#39;", "'")
    assert "Pièces bientôt expirées" in dashboard


def test_every_agent_read_is_logged(app, make_family, make_agent, piece_types, web, make_web):
    from core.documents.models import PieceAccessLog

    types = piece_types("auray")
    fam = make_family("auray")
    web.login("auray", fam["email"])
    upload(web, "auray", types["domicile"], jpeg_bytes(), filename="scan.jpg")
    piece = pieces(app, fam["tenant_id"])[0]
    agent = make_agent("auray")
    staff = make_web()
    staff.login("auray", agent["email"])
    response = staff.get(f"/auray/admin/pieces/{piece['id']}/fichier?voir=1")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert response.headers["Content-Disposition"].startswith("inline")
    assert "sandbox" in response.headers["Content-Security-Policy"]
    web.get(f"/auray/pieces/{piece['id']}/fichier")  # the family's own reads are not logged
    with app.app_context(), tenant_scope(fam["tenant_id"]):
        logs = db.session.scalars(select(PieceAccessLog)).all()
        assert [(log.agent_name, log.piece_id, log.family_id) for log in logs] == [
            ("Agent Test", piece["id"], fam["family_id"])]


def jpeg_bytes():
    from tests.pieces_data import jpeg

    return jpeg()


def test_pieces_are_refused_for_a_child_of_another_family(app, make_family, piece_types, web):
    types = piece_types("auray")
    fam, other = make_family("auray"), make_family("auray")
    web.login("auray", fam["email"])
    assert upload(web, "auray", types["assurance"], PDF, child_id=other["child_ids"][0]).status_code == 404
    assert pieces(app, fam["tenant_id"]) == []


def test_refused_piece_is_deleted_after_its_retention(app, make_family, piece_types, web):
    from core.documents import services

    types = piece_types("auray")
    fam = make_family("auray")
    web.login("auray", fam["email"])
    upload(web, "auray", types["domicile"], PDF)
    piece = pieces(app, fam["tenant_id"])[0]
    decide(app, fam["tenant_id"], piece["id"], motif="Illisible")
    with app.app_context(), tenant_scope(fam["tenant_id"]):
        row = db.session.get(Piece, piece["id"])
        assert row.status == PIECE_REFUSED
        row.decided_at = clock.utcnow() - timedelta(days=61)
        db.session.commit()
        from tenants.models import Tenant

        assert services.purge(db.session.get(Tenant, fam["tenant_id"])) == 1
        db.session.commit()
        assert not get_storage().exists(piece["key"])

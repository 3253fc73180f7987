"""The family file: changes under the commune's validation, co-représentant, family code,
health data (reads logged), JSON export, bad input, foreign ids, readiness check."""

from __future__ import annotations

import html as htmllib
import io
import json
from datetime import date, datetime, timedelta

import pytest
from PIL import Image
from sqlalchemy import func, select

from core.dossier.models import (
    AccountDeletionRequest,
    ChildContact,
    ChildFile,
    ChildHealth,
    FamilyChange,
    FamilyFile,
    HealthAccessLog,
    Responsable,
)
from core.models import INSCRIPTION_ACCEPTED, Activity, Child, Family, Inscription, User
from extensions import db
from tenants.context import tenant_scope
from tests.conftest import PASSWORD


@pytest.fixture(autouse=True)
def _uploads(app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "UPLOADS_DIR", str(tmp_path / "uploads"))


@pytest.fixture
def inside(app, tenants):
    """inside("auray", fn) runs fn() in the commune's scope and returns its result."""

    def run(slug, fn):
        with app.app_context(), tenant_scope(tenants[slug]):
            try:
                out = fn()
                db.session.commit()
                return out
            finally:
                db.session.remove()

    return run


def page(res) -> str:
    return htmllib.unescape(res.get_data(as_text=True))


def png_bytes(size=(40, 30), color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


HEALTH_OK = {"allergies": "Aucune", "pai": "non", "pai_details": "", "diet": "aucun", "diet_details": "",
             "doctor_name": "Dr Le Gall", "doctor_phone": "02 97 00 00 00", "vaccinations": "oui",
             "vaccinations_notes": "", "notes": ""}


def the_change(inside, slug, **where):
    def q():
        stmt = select(FamilyChange).order_by(FamilyChange.id.desc())
        for key, value in where.items():
            stmt = stmt.where(getattr(FamilyChange, key) == value)
        change = db.session.scalars(stmt).first()
        return None if change is None else {"id": change.id, "status": change.status, "changes": change.changes}

    return inside(slug, q)


def ids_by_name(inside, slug, *names):
    found = inside(slug, lambda: {c.first_name: c.id for c in db.session.scalars(select(Child))})
    return [found[name] for name in names]


def allergies_of(inside, slug, child_id):
    return inside(slug, lambda: db.session.scalars(
        select(ChildHealth.allergies).where(ChildHealth.child_id == child_id)).first())


# ====================================================================== changes under validation

def test_a_pending_change_does_not_alter_the_current_value_until_accepted(
        web, make_web, make_family, make_agent, outbox, inside):
    fam = make_family("auray", children=[("Lou", "2019-05-01")])
    agent = make_agent("auray")
    child_id = fam["child_ids"][0]
    web.login("auray", fam["email"])
    res = web.post(f"/auray/famille/enfants/{child_id}/sante", dict(HEALTH_OK, allergies="Arachide"))
    assert res.status_code == 302
    assert allergies_of(inside, "auray", child_id) is None  # not current yet

    html = page(web.get(f"/auray/famille/enfants/{child_id}"))
    assert "Arachide" in html and "en attente de validation" in html and 'class="pending"' in html
    assert "Les modifications qui n'ont pas encore été traitées par la collectivité sont affichées en jaune" in html
    # the form shows what the family asked, so a second edit builds on it
    assert "Arachide" in page(web.get(f"/auray/famille/enfants/{child_id}/sante"))
    # the dashboard says something waits for the commune
    assert "en attente de validation par la collectivité" in page(web.get("/auray/mon-espace"))

    change = the_change(inside, "auray", entity="health")
    assert change["status"] == "pending" and change["changes"]["allergies"] == {"old": None, "new": "Arachide"}

    staff = make_web()
    staff.login("auray", agent["email"])
    res = staff.post(f"/auray/admin/modifications/{change['id']}/decision", {"decision": "accept", "motif": ""},
                     page=f"/auray/admin/modifications/{change['id']}")
    assert res.status_code == 302
    assert allergies_of(inside, "auray", child_id) == "Arachide"
    html = page(web.get(f"/auray/famille/enfants/{child_id}"))
    assert "Arachide" in html and 'class="pending"' not in html

    (mail,) = [m for m in outbox.to(fam["email"]) if "dossier famille" in m["Subject"]]
    text = outbox.text(mail)
    assert "traitée positivement" in text and "Allergies" in text
    assert outbox.link(mail, f"/auray/famille/enfants/{child_id}")
    # decided once: a second decision is refused
    res = staff.post(f"/auray/admin/modifications/{change['id']}/decision", {"decision": "refuse", "motif": "x"},
                     page="/auray/admin/modifications")
    assert "déjà été traitée" in page(staff.get("/auray/admin/modifications"))
    assert allergies_of(inside, "auray", child_id) == "Arachide"


def test_a_refused_change_leaves_the_value_and_tells_the_motif(web, make_web, make_family, make_agent, outbox, inside):
    fam = make_family("auray")
    agent = make_agent("auray")
    web.login("auray", fam["email"])
    web.get("/auray/famille/dossier")
    resp_id = inside("auray", lambda: db.session.scalars(select(Responsable.id)).one())
    form = {"civility": "madame", "first_name": "Camille", "last_name": "Testfam", "address_line": "1 rue du Port",
            "address_extra": "", "postal_code": "56400", "city": "Auray", "phone_mobile": "06 12 34 56 78",
            "phone_home": "", "phone_work": ""}
    assert web.post(f"/auray/famille/responsables/{resp_id}", form).status_code == 302
    change = the_change(inside, "auray", entity="responsable")
    staff = make_web()
    staff.login("auray", agent["email"])
    # refusing needs a motif, said next to the field
    res = staff.post(f"/auray/admin/modifications/{change['id']}/decision", {"decision": "refuse", "motif": ""},
                     page="/auray/admin/modifications")
    assert res.status_code == 200 and "Indiquez le motif du refus" in page(res)
    res = staff.post(f"/auray/admin/modifications/{change['id']}/decision",
                     {"decision": "refuse", "motif": "Justificatif de domicile manquant"}, page="/auray/admin/modifications")
    assert res.status_code == 302
    phone = inside("auray", lambda: db.session.get(Responsable, resp_id).phone_mobile)
    assert phone is None
    assert the_change(inside, "auray", entity="responsable")["status"] == "refused"
    html = page(web.get("/auray/famille/dossier"))
    assert 'class="pending"' not in html and "Justificatif de domicile manquant" in html
    (mail,) = [m for m in outbox.to(fam["email"]) if "dossier famille" in m["Subject"]]
    assert "traitée négativement" in outbox.text(mail) and "Justificatif de domicile manquant" in outbox.text(mail)


def test_the_decision_mail_speaks_the_familys_language(web, make_web, make_family, make_agent, outbox, inside):
    fam = make_family("auray", children=[("Lou", "2019-05-01")])
    agent = make_agent("auray")
    inside("auray", lambda: setattr(db.session.get(User, fam["user_id"]), "locale", "en"))
    web.login("auray", fam["email"])
    web.post(f"/auray/famille/enfants/{fam['child_ids'][0]}/sante", dict(HEALTH_OK, allergies="Arachide"))
    change = the_change(inside, "auray", entity="health")
    staff = make_web()
    staff.login("auray", agent["email"])
    staff.post(f"/auray/admin/modifications/{change['id']}/decision", {"decision": "refuse", "motif": "Illisible"},
               page=f"/auray/admin/modifications/{change['id']}")
    (mail,) = [m for m in outbox.to(fam["email"]) if "family file" in m["Subject"]]
    text = outbox.text(mail)
    assert "Your request to change your family file" in text
    assert "Lou Testfam — Health information: Allergies, PAI" in text and "Reason: Illisible" in text


def test_new_child_and_contact_exist_only_once_accepted(web, make_web, make_family, make_agent, inside):
    fam = make_family("auray")
    agent = make_agent("auray")
    web.login("auray", fam["email"])
    res = web.post("/auray/famille/enfants/nouveau", {"first_name": "Gaël", "last_name": "Testfam",
                                                      "birth_date": "2020-02-02", "school": "", "class_name": ""})
    assert res.status_code == 302
    assert inside("auray", lambda: db.session.scalar(select(func.count()).select_from(Child))) == 1
    assert "Gaël" in page(web.get("/auray/famille/dossier"))
    child_id = fam["child_ids"][0]
    res = web.post(f"/auray/famille/enfants/{child_id}/contacts/nouveau",
                   {"first_name": "Mamie", "last_name": "Jo", "relationship_label": "Grand-mère",
                    "phone": "06 00 00 00 01", "can_pick_up": "y"})
    assert res.status_code == 302
    assert inside("auray", lambda: db.session.scalar(select(func.count()).select_from(ChildContact))) == 0
    staff = make_web()
    staff.login("auray", agent["email"])
    for change in inside("auray", lambda: [c.id for c in db.session.scalars(select(FamilyChange))]):
        staff.post(f"/auray/admin/modifications/{change}/decision", {"decision": "accept"},
                   page="/auray/admin/modifications")
    names = inside("auray", lambda: sorted(c.first_name for c in db.session.scalars(select(Child))))
    assert names == ["Gaël", "Lou"]
    contact = inside("auray", lambda: db.session.scalars(select(ChildContact)).one().first_name)
    assert contact == "Mamie"


# ====================================================================== co-représentant

def test_the_co_representant_sees_the_same_family_and_nothing_of_another(web, make_web, make_family, outbox):
    fam = make_family("auray", children=[("Lou", "2019-05-01")], name="KERGUELEN")
    other = make_family("auray", children=[("Zoé", "2018-01-01")], name="AUTRE")
    web.login("auray", fam["email"])
    res = web.post("/auray/famille/co-representant",
                   {"first_name": "Yann", "last_name": "Kerguelen", "email": "yann@auray.test"})
    assert res.status_code == 302
    (mail,) = outbox.to("yann@auray.test")
    link = outbox.link(mail, "/famille/invitation/")
    path = link.split("://", 1)[1].split("/", 1)[1]
    path = "/" + path

    coparent = make_web()
    assert "yann@auray.test" in page(coparent.get(path))
    res = coparent.post(path, {"first_name": "Yann", "last_name": "Kerguelen", "password": "Breizh-2026",
                               "confirm": "Breizh-2026", "accept_cgu": "y"})
    assert res.status_code == 302
    html = page(coparent.get("/auray/famille/dossier"))
    assert "KERGUELEN" in html and "Lou" in html and "Co-représentant" in html and "Zoé" not in html
    assert coparent.get(f"/auray/famille/enfants/{fam['child_ids'][0]}").status_code == 200
    assert coparent.get(f"/auray/famille/enfants/{other['child_ids'][0]}").status_code == 404
    assert coparent.get(f"/auray/famille/enfants/{other['child_ids'][0]}/sante").status_code == 404
    data = coparent.get("/auray/famille/mes-donnees.json").get_data(as_text=True)
    assert "Lou" in data and "Zoé" not in data and other["email"] not in data
    # the link works once; the co-représentant logs in with their own login
    assert make_web().get(path).status_code == 410
    assert make_web().login("auray", "yann@auray.test", "Breizh-2026").status_code == 302
    # the first parent sees both responsables
    assert "Yann Kerguelen" in page(web.get("/auray/famille/dossier"))


def test_an_existing_account_joins_by_invitation_when_its_own_family_is_empty(
        web, make_web, make_family, outbox, inside):
    fam = make_family("auray", children=[("Lou", "2019-05-01")], name="KERGUELEN")
    lone = make_family("auray", children=(), name="SEUL")
    web.login("auray", fam["email"])
    web.post("/auray/famille/co-representant", {"first_name": "Yann", "last_name": "Seul", "email": lone["email"]})
    link = outbox.link(outbox.to(lone["email"])[0], "/famille/invitation/")
    path = "/" + link.split("://", 1)[1].split("/", 1)[1]
    joining = make_web()
    assert "connectez-vous pour accepter" in page(joining.get(path))
    joining.login("auray", lone["email"])
    assert joining.post(path, {}).status_code == 302
    assert "Lou" in page(joining.get("/auray/famille/dossier"))
    assert inside("auray", lambda: db.session.get(Family, lone["family_id"])) is None
    # someone else logged in cannot use it
    stranger = make_family("auray", children=())
    other = make_web()
    other.login("auray", stranger["email"])
    assert other.get(path).status_code == 410  # accepted already


# ====================================================================== code abonné famille

def _commune_family(inside, slug, code, child="Nolan"):
    """A family file the commune created (no account yet)."""

    def create():
        family = Family(name="LE GOFF", code=code)
        family.children.append(Child(first_name=child, last_name="Le Goff", birth_date=date(2017, 6, 1)))
        db.session.add(family)
        db.session.flush()
        return family.id

    return inside(slug, create)


def test_a_family_code_links_once_and_only_in_its_commune(web, make_web, make_family, inside):
    family_id = _commune_family(inside, "auray", "AUR-2001")
    loubes = make_family("saint-loubes", children=())
    w = make_web()
    w.login("saint-loubes", loubes["email"])
    res = w.post("/saint-loubes/famille/abonnements", {"code": "AUR-2001"})
    assert res.status_code == 200 and "Aucun dossier famille ne correspond à ce code abonné" in page(res)

    first = make_family("auray", children=())
    web.login("auray", first["email"])
    res = web.post("/auray/famille/abonnements", {"code": " aur-2001 "})
    assert res.status_code == 302
    html = page(web.get("/auray/famille/dossier"))
    assert "LE GOFF" in html and "Nolan" in html
    # the empty family created with the account is gone
    assert inside("auray", lambda: db.session.get(Family, first["family_id"])) is None
    assert inside("auray", lambda: db.session.get(User, first["user_id"]).family_id) == family_id

    second = make_family("auray", children=())
    other = make_web()
    other.login("auray", second["email"])
    res = other.post("/auray/famille/abonnements", {"code": "AUR-2001"})
    assert res.status_code == 200 and "Ce code abonné a déjà été utilisé" in page(res)
    assert inside("auray", lambda: db.session.get(User, second["user_id"]).family_id) == second["family_id"]
    nolan = inside("auray", lambda: db.session.scalars(select(Child.id).where(Child.family_id == family_id)).one())
    assert other.get(f"/auray/famille/enfants/{nolan}").status_code == 404


def test_a_family_with_children_is_not_silently_dropped_by_a_code(web, make_family, inside):
    _commune_family(inside, "auray", "AUR-3001")
    busy = make_family("auray", children=[("Lou", "2019-05-01")])
    web.login("auray", busy["email"])
    res = web.post("/auray/famille/abonnements", {"code": "AUR-3001"})
    assert res.status_code == 200 and "contient des enfants" in page(res)
    assert inside("auray", lambda: db.session.get(Family, busy["family_id"])) is not None


# ====================================================================== health data

def _fill_health(inside, slug, child_id, **values):
    def write():
        row = db.session.scalars(select(ChildHealth).where(ChildHealth.child_id == child_id)).first()
        if row is None:
            row = ChildHealth(child_id=child_id)
            db.session.add(row)
        for key, value in values.items():
            setattr(row, key, value)

    inside(slug, write)


def test_health_reads_by_agents_are_logged(web, make_web, make_family, make_agent, inside):
    fam = make_family("auray", children=[("Lou", "2019-05-01")])
    agent = make_agent("auray")
    child_id = fam["child_ids"][0]
    _fill_health(inside, "auray", child_id, allergies="Kiwi")
    staff = make_web()
    staff.login("auray", agent["email"])
    family_page = page(staff.get(f"/auray/admin/familles/{fam['family_id']}"))
    assert "Lou" in family_page and "Kiwi" not in family_page  # health only on demand
    assert inside("auray", lambda: db.session.scalar(select(func.count()).select_from(HealthAccessLog))) == 0
    res = staff.get(f"/auray/admin/familles/{fam['family_id']}/enfants/{child_id}/sante")
    assert res.status_code == 200 and "Kiwi" in page(res)
    logs = inside("auray", lambda: [(h.agent_id, h.child_id, h.context) for h in db.session.scalars(
        select(HealthAccessLog))])
    assert logs == [(agent["user_id"], child_id, "fiche")]
    assert "Agent Test" in page(staff.get(f"/auray/admin/familles/{fam['family_id']}/enfants/{child_id}/sante"))

    # a pending health change: values only on its own page, and that read is logged too
    web.login("auray", fam["email"])
    web.post(f"/auray/famille/enfants/{child_id}/sante", dict(HEALTH_OK, allergies="Arachide"))
    queue = page(staff.get("/auray/admin/modifications"))
    assert "Informations santé" in queue and "Arachide" not in queue
    change = the_change(inside, "auray", entity="health")
    assert "Arachide" in page(staff.get(f"/auray/admin/modifications/{change['id']}"))
    contexts = inside("auray", lambda: sorted(h.context for h in db.session.scalars(select(HealthAccessLog))))
    assert contexts == ["fiche", "fiche", "modification"]


def test_only_the_family_and_its_communes_agents_see_health(web, make_web, make_family, make_agent, inside):
    fam = make_family("auray")
    other = make_family("auray")
    make_agent("saint-loubes")
    loubes_agent_web = make_web()
    loubes_agent_web.login("saint-loubes", "agent@saint-loubes.test")
    path = f"/auray/admin/familles/{fam['family_id']}/enfants/{fam['child_ids'][0]}/sante"
    res = loubes_agent_web.get(path)
    assert res.status_code == 302 and "/auray/connexion" in res.headers["Location"]
    web.login("auray", other["email"])
    assert web.get(path).status_code == 403
    assert web.get(f"/auray/famille/enfants/{fam['child_ids'][0]}").status_code == 404
    loubes_agent = make_agent("saint-loubes", email="agent2@saint-loubes.test")
    w = make_web()
    w.login("saint-loubes", loubes_agent["email"])
    assert w.get(f"/saint-loubes/admin/familles/{fam['family_id']}").status_code == 404
    assert inside("auray", lambda: db.session.scalar(select(func.count()).select_from(HealthAccessLog))) == 0


# ====================================================================== JSON export

def test_the_json_export_holds_the_whole_file_and_nothing_of_another_family(
        web, make_web, make_family, make_agent, inside):
    fam = make_family("auray", children=[("Lou", "2019-05-01"), ("Mona", "2016-03-03")], name="KERGUELEN")
    other = make_family("auray", children=[("Zoé", "2018-01-01")], name="VOISIN")
    make_family("saint-loubes", children=[("Loubésien", "2018-01-01")], name="LOUBES")
    agent = make_agent("auray")
    lou, mona = ids_by_name(inside, "auray", "Lou", "Mona")
    _fill_health(inside, "auray", lou, allergies="Pollen", doctor_name="Dr Le Gall")
    _fill_health(inside, "auray", other["child_ids"][0], allergies="Gluten-du-voisin")

    def extra():
        db.session.add(ChildContact(child_id=lou, first_name="Mamie", last_name="Jo", phone="0600000001",
                                    can_pick_up=True, emergency=True))
        db.session.add(ChildContact(child_id=other["child_ids"][0], first_name="Tonton", last_name="Voisin",
                                    phone="0600000002", can_pick_up=True))
        db.session.add(ChildFile(child_id=mona, photos=True, leave_alone=False))

    inside("auray", extra)
    staff = make_web()
    staff.login("auray", agent["email"])
    staff.post(f"/auray/admin/familles/{fam['family_id']}/quotient", {"quotient": "742"},
               page=f"/auray/admin/familles/{fam['family_id']}")
    staff.post(f"/auray/admin/familles/{other['family_id']}/quotient", {"quotient": "1999"},
               page=f"/auray/admin/familles/{other['family_id']}")
    web.login("auray", fam["email"])
    web.post(f"/auray/famille/enfants/{mona}/sante", dict(HEALTH_OK, allergies="Lactose"))

    res = web.get("/auray/famille/mes-donnees.json")
    assert res.status_code == 200 and res.mimetype == "application/json"
    assert "attachment" in res.headers["Content-Disposition"]
    body = res.get_data(as_text=True)
    data = json.loads(body)
    assert data["family"]["name"] == "KERGUELEN" and data["family"]["quotient_familial"] == 742
    assert [a["email"] for a in data["accounts"]] == [fam["email"]]
    assert "password_hash" not in body
    children = {c["first_name"]: c for c in data["children"]}
    assert set(children) == {"Lou", "Mona"}
    assert children["Lou"]["health"]["allergies"] == "Pollen"
    assert children["Lou"]["contacts"][0]["first_name"] == "Mamie"
    assert children["Mona"]["authorisations"]["photos"] is True
    assert [c["changes"]["allergies"]["new"] for c in data["changes"]] == ["Lactose"]
    assert len(data["responsables"]) == 1
    for foreign in ("VOISIN", "Zoé", "Gluten-du-voisin", "Tonton", other["email"], "LOUBES", "Loubésien"):
        assert foreign not in body, foreign
    # The neighbour's quotient is a number: looked for among the file's values, not in the text, where a
    # timestamp's microseconds may hold the same digits (".441999").
    values = list(_scalars(data))
    assert 742 in values and 1999 not in values and "1999" not in values


def _scalars(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _scalars(item)
    elif isinstance(value, list):
        for item in value:
            yield from _scalars(item)
    else:
        yield value


# ====================================================================== bad input

def test_bad_input_gives_a_french_message_next_to_the_field_and_keeps_the_form(web, make_family, inside):
    fam = make_family("auray")
    child_id = fam["child_ids"][0]
    web.login("auray", fam["email"])
    path = f"/auray/famille/enfants/{child_id}/informations"
    base = {"first_name": "Loulou", "last_name": "Testfam", "birth_date": "2019-05-01",
            "school": "École du Loch", "class_name": "GS"}

    future = (date.today() + timedelta(days=30)).isoformat()
    html = page(web.post(path, dict(base, birth_date=future)))
    assert 'id="birth_date-err" role="alert">La date de naissance ne peut pas être dans le futur.' in html
    assert 'value="Loulou"' in html and 'value="École du Loch"' in html and f'value="{future}"' in html

    # both errors at once, each next to its field
    html = page(web.post(path, dict(base, birth_date=future, photo=(io.BytesIO(b"not an image"), "x.png"))))
    assert "La date de naissance ne peut pas être dans le futur." in html
    assert 'id="photo-err" role="alert">Le fichier n\'est pas une image JPEG ou PNG.' in html

    html = page(web.post(path, dict(base, birth_date="31/02/2019")))
    assert "Saisissez une date valide (jj/mm/aaaa)." in html

    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (20 * 1024 * 1024)
    html = page(web.post(path, dict(base, photo=(io.BytesIO(big), "grosse.png"))))
    assert 'id="photo-err" role="alert">La photo dépasse la taille maximale de 5 Mo.' in html
    assert 'value="Loulou"' in html and 'value="GS"' in html

    for fake, name in ((b"%PDF-1.4 pas une image", "photo.jpg"), (b"\xff\xd8\xff" + b"garbage" * 50, "photo.jpg"),
                       (b"GIF89a" + b"\0" * 50, "photo.png")):
        html = page(web.post(path, dict(base, photo=(io.BytesIO(fake), name))))
        assert 'id="photo-err" role="alert">Le fichier n\'est pas une image JPEG ou PNG.' in html
        assert 'value="Loulou"' in html
    assert the_change(inside, "auray") is None  # nothing recorded by a refused form

    web.get("/auray/famille/dossier")
    resp_id = inside("auray", lambda: db.session.scalars(select(Responsable.id)).one())
    html = page(web.post(f"/auray/famille/responsables/{resp_id}", {
        "first_name": "Camille", "last_name": "Testfam", "city": "Auray", "postal_code": "56400",
        "phone_mobile": "06 12 AB 34 56", "phone_home": "", "phone_work": "zéro deux"}))
    assert 'id="phone_mobile-err" role="alert">Numéro de téléphone invalide' in html
    assert 'id="phone_work-err" role="alert">Numéro de téléphone invalide' in html
    assert 'value="Auray"' in html and 'value="06 12 AB 34 56"' in html

    html = page(web.post(f"/auray/famille/enfants/{child_id}/contacts/nouveau", {
        "first_name": "Mamie", "last_name": "Jo", "phone": "06-ABC", "can_pick_up": "y"}))
    assert 'id="phone-err" role="alert">Numéro de téléphone invalide' in html and 'value="Mamie"' in html
    html = page(web.post(f"/auray/famille/enfants/{child_id}/sante", dict(HEALTH_OK, doctor_phone="docteur")))
    assert 'id="doctor_phone-err" role="alert">Numéro de téléphone invalide' in html and "Dr Le Gall" in html
    assert the_change(inside, "auray") is None


def test_a_photo_is_checked_stored_privately_and_served_to_the_family_and_agents(
        web, make_web, make_family, make_agent, inside, app):
    fam = make_family("auray")
    other = make_family("auray")
    agent = make_agent("auray")
    child_id = fam["child_ids"][0]
    web.login("auray", fam["email"])
    res = web.post(f"/auray/famille/enfants/{child_id}/informations",
                   {"first_name": "Lou", "last_name": "Testfam", "birth_date": "2019-05-01", "school": "",
                    "class_name": "", "photo": (io.BytesIO(png_bytes()), "lou.png")})
    assert res.status_code == 302
    change = the_change(inside, "auray", entity="child")
    name = change["changes"]["photo"]["new"]
    assert name.endswith(".png")
    photo_path = f"/auray/famille/enfants/{child_id}/photo/{name}"
    assert photo_path in page(web.get(f"/auray/famille/enfants/{child_id}"))
    res = web.get(photo_path)
    assert res.status_code == 200 and res.mimetype == "image/png" and res.data.startswith(b"\x89PNG")
    assert "no-store" in res.headers["Cache-Control"]
    neighbour = make_web()
    neighbour.login("auray", other["email"])
    assert neighbour.get(photo_path).status_code == 404
    assert web.get(f"/auray/famille/enfants/{child_id}/photo/../../etc.png").status_code == 404
    staff = make_web()
    staff.login("auray", agent["email"])
    assert staff.get(photo_path).status_code == 200
    staff.post(f"/auray/admin/modifications/{change['id']}/decision", {"decision": "accept"},
               page=f"/auray/admin/modifications/{change['id']}")
    assert inside("auray", lambda: db.session.scalars(select(ChildFile.photo)).one()) == name
    from pathlib import Path

    assert (Path(app.config["UPLOADS_DIR"]) / "auray" / "enfants" / name).is_file()


# ====================================================================== foreign ids

def test_a_foreign_child_or_contact_id_answers_404(web, make_family, inside):
    mine = make_family("auray")
    other = make_family("auray")
    loubes = make_family("saint-loubes")
    my_child, their_child = mine["child_ids"][0], other["child_ids"][0]

    def contacts():
        a = ChildContact(child_id=my_child, first_name="A", last_name="A", phone="0600000000", can_pick_up=True)
        b = ChildContact(child_id=their_child, first_name="B", last_name="B", phone="0600000000", can_pick_up=True)
        db.session.add_all([a, b])
        db.session.flush()
        return a.id, b.id

    my_contact, their_contact = inside("auray", contacts)
    web.login("auray", other["email"])
    web.get("/auray/famille/dossier")
    web.post(f"/auray/famille/enfants/{their_child}/sante", HEALTH_OK)
    their_change = the_change(inside, "auray")["id"]
    their_resp = inside("auray", lambda: db.session.scalars(select(Responsable.id)).one())

    web.login("auray", mine["email"])
    for path in (f"/auray/famille/enfants/{their_child}", f"/auray/famille/enfants/{their_child}/sante",
                 f"/auray/famille/enfants/{their_child}/informations",
                 f"/auray/famille/enfants/{their_child}/autorisations",
                 f"/auray/famille/enfants/{their_child}/contacts/nouveau",
                 f"/auray/famille/enfants/{their_child}/contacts/{their_contact}",
                 f"/auray/famille/enfants/{my_child}/contacts/{their_contact}",
                 f"/auray/famille/enfants/{loubes['child_ids'][0]}/sante",
                 f"/auray/famille/enfants/{my_child}/contacts/999999",
                 f"/auray/famille/responsables/{their_resp}"):
        assert web.get(path).status_code == 404, path
    assert web.get(f"/auray/famille/enfants/{my_child}/contacts/{my_contact}").status_code == 200
    for path in (f"/auray/famille/enfants/{my_child}/contacts/{their_contact}/supprimer",
                 f"/auray/famille/modifications/{their_change}/annuler"):
        assert web.post(path, {}, page="/auray/mon-espace").status_code == 404, path
    res = web.post(f"/auray/famille/enfants/{their_child}/sante", HEALTH_OK, page="/auray/mon-espace")
    assert res.status_code == 404
    assert the_change(inside, "auray")["id"] == their_change


def test_an_agent_cannot_decide_another_communes_change(web, make_web, make_family, make_agent, inside):
    loubes = make_family("saint-loubes")
    web.login("saint-loubes", loubes["email"])
    web.post(f"/saint-loubes/famille/enfants/{loubes['child_ids'][0]}/sante", HEALTH_OK)
    change = the_change(inside, "saint-loubes")
    agent = make_agent("auray")
    staff = make_web()
    staff.login("auray", agent["email"])
    assert staff.get(f"/auray/admin/modifications/{change['id']}").status_code == 404
    res = staff.post(f"/auray/admin/modifications/{change['id']}/decision", {"decision": "accept"},
                     page="/auray/admin/modifications")
    assert res.status_code == 404
    assert the_change(inside, "saint-loubes")["status"] == "pending"


# ====================================================================== login e-mail, deletion

def test_a_changed_login_email_is_confirmed_by_a_mail_link(web, make_web, make_family, outbox, inside):
    fam = make_family("auray")
    web.login("auray", fam["email"])
    res = web.post("/auray/famille/adresse-email", {"email": "nouvelle@auray.test", "password": "wrong"})
    assert "Le mot de passe actuel est incorrect." in page(res)
    res = web.post("/auray/famille/adresse-email", {"email": "Nouvelle@Auray.test", "password": PASSWORD})
    assert res.status_code == 302
    assert inside("auray", lambda: db.session.get(User, fam["user_id"]).email) == fam["email"]
    (mail,) = outbox.to("nouvelle@auray.test")
    link = outbox.link(mail, "/famille/adresse-email/")
    path = "/" + link.split("://", 1)[1].split("/", 1)[1]
    res = make_web().get(path)
    assert res.status_code == 200 and "nouvelle@auray.test" in page(res)
    assert inside("auray", lambda: db.session.get(User, fam["user_id"]).email) == "nouvelle@auray.test"
    assert outbox.to(fam["email"])  # the old address is told
    assert make_web().get(path).status_code == 410
    assert make_web().login("auray", "nouvelle@auray.test").status_code == 302
    assert make_web().login("auray", fam["email"]).status_code == 200


def test_a_family_asks_for_its_account_to_be_deleted(web, make_web, make_family, make_agent, inside):
    fam = make_family("auray")
    agent = make_agent("auray")
    web.login("auray", fam["email"])
    res = web.post("/auray/famille/supprimer-mon-compte", {"reason": "Déménagement", "password": PASSWORD})
    assert "Cochez la case pour confirmer." in page(res)
    res = web.post("/auray/famille/supprimer-mon-compte",
                   {"reason": "Déménagement", "password": PASSWORD, "confirm": "y"})
    assert res.status_code == 200 and "Votre espace est désactivé" in page(res)
    assert web.get("/auray/mon-espace").status_code == 302
    res = make_web().login("auray", fam["email"])
    assert res.status_code == 200 and "désactivé" in page(res)
    staff = make_web()
    staff.login("auray", agent["email"])
    html = page(staff.get("/auray/admin/demandes-suppression"))
    assert fam["email"] in html and "Déménagement" in html
    row = inside("auray", lambda: db.session.scalars(select(AccountDeletionRequest.id)).one())
    staff.post(f"/auray/admin/demandes-suppression/{row}/traitee", {}, page="/auray/admin/demandes-suppression")
    assert inside("auray", lambda: db.session.get(AccountDeletionRequest, row).status) == "handled"


# ====================================================================== agents

def test_agents_search_families_and_set_the_quotient_familial(web, make_web, make_family, make_agent, inside):
    fam = make_family("auray", name="KERGUELEN", parent_email="soizic@auray.test")
    make_family("auray", name="LE BIHAN")
    agent = make_agent("auray")
    staff = make_web()
    staff.login("auray", agent["email"])
    for query in ("kergu", "soizic@", fam["email"][:6]):
        html = page(staff.get(f"/auray/admin/familles?q={query}"))
        assert "KERGUELEN" in html and "LE BIHAN" not in html, query
    res = staff.post(f"/auray/admin/familles/{fam['family_id']}/quotient", {"quotient": "abc"},
                     page=f"/auray/admin/familles/{fam['family_id']}")
    assert res.status_code == 422  # the family's page again, the message next to the field, "abc" kept
    assert 'class="error"' in page(res) and "Saisissez un nombre entier." in page(res) and 'value="abc"' in page(res)
    staff.post(f"/auray/admin/familles/{fam['family_id']}/quotient", {"quotient": "612"},
               page=f"/auray/admin/familles/{fam['family_id']}")
    assert inside("auray", lambda: db.session.scalars(select(FamilyFile.quotient_familial)).one()) == 612
    web.login("auray", fam["email"])
    html = page(web.get("/auray/famille/dossier"))
    assert "612" in html and "lecture seule" in html
    # the family has no way to change it
    assert web.post(f"/auray/admin/familles/{fam['family_id']}/quotient", {"quotient": "1"},
                    page="/auray/mon-espace").status_code == 403


def test_an_agent_creates_a_family_file_whose_code_a_parent_then_enters(web, make_web, make_family, make_agent,
                                                                        inside):
    agent = make_agent("auray")
    staff = make_web()
    staff.login("auray", agent["email"])
    res = staff.post("/auray/admin/familles/nouvelle", {"name": "Le Floch"})
    assert res.status_code == 302
    family_id = int(res.headers["Location"].rstrip("/").split("/")[-1])
    staff.post(f"/auray/admin/familles/{family_id}/enfants",
               {"child-first_name": "Rozenn", "child-last_name": "Le Floch", "child-birth_date": "2018-08-08",
                "child-school": "", "child-class_name": ""}, page=f"/auray/admin/familles/{family_id}")
    code = inside("auray", lambda: db.session.get(Family, family_id).code)
    parent = make_family("auray", children=())
    web.login("auray", parent["email"])
    assert web.post("/auray/famille/abonnements", {"code": code}).status_code == 302
    assert "Rozenn" in page(web.get("/auray/mon-espace"))


# ====================================================================== readiness check

def test_the_dashboard_says_what_would_stop_a_child_from_booking(web, make_family, inside, tenants):
    fam = make_family("auray", children=[("Maël", "2021-04-12"), ("Anouk", "2014-09-03")])
    mael, anouk = ids_by_name(inside, "auray", "Maël", "Anouk")
    opening = datetime.now() + timedelta(days=10)

    def activity():
        act = Activity(code="kids", name="Kids 3/7 ans", kind="units", season="2026",
                       starts_on=date.today() + timedelta(days=20), ends_on=date.today() + timedelta(days=60),
                       age_min=3, age_max=7, opening_at=opening.replace(hour=8, minute=0, second=0, microsecond=0))
        db.session.add(act)
        db.session.flush()
        return act.id

    activity_id = inside("auray", activity)
    web.login("auray", fam["email"])
    html = page(web.get("/auray/mon-espace"))
    assert "Aucune inscription validée à « Kids 3/7 ans »" in html
    assert html.count("Aucune inscription validée") == 1  # Anouk is too old for Kids
    assert f"ouverture des réservations le {opening:%d/%m/%Y} à 08:00" in html
    assert "Informations santé incomplètes : allergies, PAI, régime alimentaire" in html
    assert "Autorisations non renseignées : droit à l'image, départ seul, transport, soins d'urgence." in html

    def complete():
        for child_id in (mael, anouk):
            db.session.add(ChildHealth(child_id=child_id, allergies="Aucune", pai=False, diet="aucun",
                                       doctor_name="Dr X", doctor_phone="0297000000", vaccinations=True))
            db.session.add(ChildFile(child_id=child_id, photos=True, leave_alone=False, transport=True,
                                     emergency_care=True))
        db.session.add(Inscription(child_id=mael, activity_id=activity_id, status=INSCRIPTION_ACCEPTED))

    inside("auray", complete)
    html = page(web.get("/auray/mon-espace"))
    assert html.count("Tout est prêt pour réserver.") == 2
    web.post(f"/auray/famille/enfants/{anouk}/autorisations",
             {"photos": "non", "leave_alone": "non", "transport": "oui", "emergency_care": "oui"})
    html = page(web.get("/auray/mon-espace"))
    assert html.count("Tout est prêt pour réserver.") == 1
    assert "Une modification de sa fiche est en attente de validation par la collectivité." in html

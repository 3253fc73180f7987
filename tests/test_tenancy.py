"""Communes cannot leak into each other."""

import pytest
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select

from core.models import Child, Family, User
from extensions import db
from tenants.context import CrossTenantWrite, TenantNotSet, tenant_scope, unscoped
from tenants.rls import maintenance_session
from tenants.scoping import GLOBAL_MODELS, TenantScoped, get_scoped


def test_query_on_commune_data_without_commune_raises(ctx, make_family):
    make_family("auray")
    with pytest.raises(TenantNotSet):
        db.session.scalars(select(Child)).all()
    with pytest.raises(TenantNotSet):
        db.session.scalars(select(User).where(User.email == "x@auray.test")).first()


def test_every_model_is_scoped_or_on_the_short_global_allowlist(app):
    mapped = {m.class_.__name__: m.class_ for m in db.Model.registry.mappers}
    global_models = {name for name, cls in mapped.items() if not issubclass(cls, TenantScoped)}
    assert global_models == GLOBAL_MODELS
    assert len(GLOBAL_MODELS) <= 3


def test_tenant_id_not_null_and_in_every_unique_constraint(app):
    for mapper in db.Model.registry.mappers:
        cls = mapper.class_
        if not issubclass(cls, TenantScoped):
            continue
        table = cls.__table__
        assert table.c.tenant_id.nullable is False, table.name
        for constraint in table.constraints:
            if constraint.__class__.__name__ == "UniqueConstraint":
                assert "tenant_id" in constraint.columns.keys(), f"{table.name}: {constraint.name}"
        for column in table.columns:
            assert not (column.unique and column.name != "id"), f"{table.name}.{column.name} unique sans commune"


def test_the_database_schema_enforces_not_null_tenant(app):
    with app.app_context():
        insp = sa_inspect(db.engine)
        for table in ("family", "child", "user_account", "user_token", "outbox_mail"):
            cols = {c["name"]: c for c in insp.get_columns(table)}
            assert cols["tenant_id"]["nullable"] is False, table


def test_queries_only_see_the_current_commune(ctx, make_family, tenants, is_postgres):
    auray = make_family("auray", children=[("Aurélien", "2018-01-01")])
    make_family("saint-loubes", children=[("Loubésien", "2018-01-01")])
    with tenant_scope(tenants["auray"]):
        names = [c.first_name for c in db.session.scalars(select(Child))]
        assert names == ["Aurélien"]
        # joins and relationship loads are filtered too
        fams = db.session.scalars(select(Family).join(Family.children)).all()
        assert [f.id for f in fams] == [auray["family_id"]]
    # unscoped() lifts the ORM guard only: on PostgreSQL row-level security still shows the
    # application's role no commune's rows without a commune; the owner's session sees both
    with unscoped():
        assert db.session.query(Child).count() == (0 if is_postgres else 2)
    with maintenance_session("test") as session:
        assert session.query(Child).count() == 2


def test_primary_key_lookup_checks_the_commune_even_from_the_identity_map(ctx, make_family, tenants):
    loubes = make_family("saint-loubes")
    with tenant_scope(tenants["saint-loubes"]):
        child = db.session.get(Child, loubes["child_ids"][0])  # now in the identity map
        assert child is not None
    with tenant_scope(tenants["auray"]):
        assert get_scoped(db.session, Child, loubes["child_ids"][0]) is None
        assert get_scoped(db.session, Child, "not-a-number") is None
    with tenant_scope(tenants["saint-loubes"]):
        assert get_scoped(db.session, Child, loubes["child_ids"][0]).first_name == "Lou"


def test_new_rows_are_stamped_and_foreign_writes_rejected(ctx, make_family, tenants):
    with tenant_scope(tenants["auray"]):
        fam = Family(name="NOUVELLE", code="NEW1")
        db.session.add(fam)
        db.session.flush()
        assert fam.tenant_id == tenants["auray"]
        db.session.add(Family(name="INTRUSE", code="NEW2", tenant_id=tenants["saint-loubes"]))
        with pytest.raises(CrossTenantWrite):
            db.session.flush()
        db.session.rollback()
    with pytest.raises(TenantNotSet):
        db.session.add(Family(name="SANS", code="NEW3"))
        db.session.flush()
    db.session.rollback()


def test_moving_a_row_to_another_commune_is_refused(ctx, make_family, tenants):
    fam = make_family("auray")
    with tenant_scope(tenants["auray"]):
        family = get_scoped(db.session, Family, fam["family_id"])
        family.tenant_id = tenants["saint-loubes"]
        with pytest.raises(CrossTenantWrite):
            db.session.flush()
        db.session.rollback()


def test_bulk_update_is_scoped(ctx, make_family, tenants):
    from sqlalchemy import update

    make_family("auray", name="AAA")
    make_family("saint-loubes", name="BBB")
    with tenant_scope(tenants["auray"]):
        db.session.execute(update(Family).values(name="CHANGED"))
        db.session.commit()
    with maintenance_session("test") as session:
        names = sorted(f.name for f in session.scalars(select(Family)))
    assert names == ["BBB", "CHANGED"]


# ------------------------------------------------------------------ over HTTP

def test_unknown_commune_is_a_french_404(web):
    res = web.get("/nowhere/")
    assert res.status_code == 404
    assert "Page introuvable" in res.get_data(as_text=True)
    assert web.get("/nowhere/connexion").status_code == 404


def test_root_lists_the_three_communes(web):
    html = web.get("/").get_data(as_text=True)
    for name in ("Ville d&#39;Auray", "Mairie de Saint-Loubès", "Saint-Aubin de Médoc, le village nature"):
        assert name in html


def test_each_commune_home_shows_its_name_and_colours(web):
    html = web.get("/saint-loubes/").get_data(as_text=True)
    assert "Mairie de Saint-Loubès" in html and "--primary: #2e6f40" in html
    assert "Bienvenue sur votre espace citoyens" in html and "Créer mon espace" in html
    assert "Accueil périscolaire : pensez à réserver" in html  # its news
    assert "Ville d&#39;Auray" not in html


def test_a_parent_of_auray_gets_404_for_a_saint_loubes_child(web, make_family):
    auray = make_family("auray")
    loubes = make_family("saint-loubes")
    assert web.login("auray", auray["email"]).status_code == 302
    own = web.get(f"/auray/famille/enfants/{auray['child_ids'][0]}")
    assert own.status_code == 200 and "Lou" in own.get_data(as_text=True)
    assert web.get(f"/auray/famille/enfants/{loubes['child_ids'][0]}").status_code == 404


def test_a_child_of_another_family_of_the_same_commune_is_404(web, make_family):
    mine = make_family("auray")
    other = make_family("auray")
    web.login("auray", mine["email"])
    assert web.get(f"/auray/famille/enfants/{other['child_ids'][0]}").status_code == 404


def test_an_auray_session_is_anonymous_on_saint_loubes(web, make_family):
    auray = make_family("auray")
    web.login("auray", auray["email"])
    assert web.get("/auray/mon-espace").status_code == 200
    res = web.get("/saint-loubes/mon-espace")
    assert res.status_code == 302 and "/saint-loubes/connexion" in res.headers["Location"]
    assert "Déconnexion" not in web.get("/saint-loubes/").get_data(as_text=True)


def test_the_same_email_logs_into_two_communes_separately(web, make_family):
    a = make_family("auray", parent_email="double@famille.test", password="Auray-pass-1")
    make_family("saint-loubes", parent_email="double@famille.test", password="Loubes-pass-1")
    assert web.login("auray", a["email"], "Loubes-pass-1").status_code == 200  # wrong commune's password
    assert web.login("auray", a["email"], "Auray-pass-1").status_code == 302
    assert web.get("/saint-loubes/mon-espace").status_code == 302

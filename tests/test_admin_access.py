"""The agent space: agents of the commune only."""


def test_agent_lands_in_the_agent_space(web, make_agent):
    agent = make_agent("auray")
    res = web.login("auray", agent["email"])
    assert res.headers["Location"].endswith("/auray/admin/")
    html = web.get("/auray/admin/").get_data(as_text=True)
    assert "Espace agents" in html and "Ville d&#39;Auray" in html


def test_a_parent_gets_403_in_its_own_commune(web, make_family):
    fam = make_family("auray")
    web.login("auray", fam["email"])
    assert web.get("/auray/admin/").status_code == 403


def test_an_agent_of_auray_is_anonymous_in_saint_loubes_admin(web, make_agent):
    agent = make_agent("auray")
    web.login("auray", agent["email"])
    res = web.get("/saint-loubes/admin/")
    assert res.status_code == 302 and "/saint-loubes/connexion" in res.headers["Location"]

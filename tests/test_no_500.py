"""Whatever a user can type or click: no 500.  Every route, odd ids, empty or junk forms."""

import re

import pytest

JUNK = {"email": "x" * 300, "password": "", "date": "2026-02-30", "du": "x", "au": "9999-99-99", "enfants": "abc",
        "activite": "-1", "child": "abc", "slot": "1e9", "want": "maybe", "vue": "../../etc", "lang": "zz",
        "next": "javascript:alert(1)", "motif": "<script>", "enfant": "0", "jours": "99", "unites": "'; drop"}


def _urls(app, slug="auray"):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or "support" in rule.rule:
            continue
        for value in ("999999", "0"):
            url = rule.rule
            for arg in rule.arguments:
                url = re.sub(rf"<(?:[^:<>]+:)?{arg}>", slug if arg == "tenant" else value, url)
            yield rule, url


@pytest.mark.parametrize("who", ["anonymous", "parent", "agent"])
def test_no_route_answers_500(app, web, make_family, make_agent, who):
    if who == "parent":
        fam = make_family("auray")
        assert web.login("auray", fam["email"]).status_code == 302
    elif who == "agent":
        agent = make_agent("auray")
        assert web.login("auray", agent["email"]).status_code == 302
    token = web.csrf_for("/auray/cgu")
    failures = []
    for rule, url in _urls(app):
        if "GET" in rule.methods:
            res = web.client.get(url)
            if res.status_code >= 500:
                failures.append(("GET", url, res.status_code))
        if "POST" in rule.methods and "deconnexion" not in url:
            for headers in ({}, {"HX-Request": "true"}):
                res = web.client.post(url, data=dict(JUNK, csrf_token=token), headers=headers)
                if res.status_code >= 500:
                    failures.append(("POST", url, res.status_code))
    assert failures == []

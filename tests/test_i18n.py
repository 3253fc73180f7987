"""French by default, English complete, catalogue in step with the code."""

import re
import subprocess
import sys
from datetime import date
from pathlib import Path

from babel.messages.pofile import read_po
from flask_babel import force_locale, format_date

from cli import TRANSLATED_SOURCES

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def _catalog(lang):
    with open(ROOT / "translations" / lang / "LC_MESSAGES" / "messages.po", "rb") as fh:
        return read_po(fh, locale=lang)


def test_english_catalogue_is_complete():
    missing, fuzzy, bad_placeholders = [], [], []
    for message in _catalog("en"):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(strings):
            missing.append(ids[0])
        if message.fuzzy:
            fuzzy.append(ids[0])
        for s in strings:
            if s and set(PLACEHOLDER.findall(ids[0])) != set(PLACEHOLDER.findall(s)):
                bad_placeholders.append(ids[0])
    assert missing == [] and fuzzy == [] and bad_placeholders == []


def test_catalogue_holds_every_string_of_the_code(tmp_path):
    pot = tmp_path / "fresh.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg", "-k", "_l", "-o", str(pot),
         *TRANSLATED_SOURCES],
        check=True, cwd=ROOT, capture_output=True,
    )
    with open(pot, "rb") as fh:
        fresh = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(fh) if m.id}
    known = {m.id if isinstance(m.id, str) else m.id[0] for m in _catalog("en") if m.id}
    assert sorted(fresh - known) == [], "lancez `flask translate update` puis traduisez"


def test_french_is_the_default_and_english_is_a_click_away(web):
    html = web.get("/auray/").get_data(as_text=True)
    assert '<html lang="fr">' in html and "Créer mon espace" in html
    res = web.post("/auray/langue", {"lang": "en", "next": "/auray/"}, page="/auray/")
    assert res.status_code == 302 and res.headers["Location"] == "/auray/"
    html = web.get("/auray/").get_data(as_text=True)
    assert '<html lang="en">' in html and "Create my space" in html and "Créer mon espace" not in html
    assert "Welcome to your citizen space" in html  # the commune's own wording has an English version


def test_unknown_language_falls_back_to_french(web):
    res = web.post("/auray/langue", {"lang": "xx", "next": "https://evil.test/"}, page="/auray/")
    assert res.headers["Location"] == "/"
    html = web.get("/auray/").get_data(as_text=True)
    assert '<html lang="fr">' in html


def test_language_switch_outside_a_commune(web):
    res = web.post("/langue", {"lang": "en", "next": "/"}, page="/")
    assert res.status_code == 302
    assert "Choose your commune" in web.get("/").get_data(as_text=True)


def test_dates_are_written_the_french_way(ctx):
    with force_locale("fr"):
        assert format_date(date(2020, 10, 19), "EEEE dd/MM/yyyy") == "lundi 19/10/2020"
    from flask import current_app

    assert current_app.jinja_env.filters["date_long"](date(2026, 10, 19)) == "lundi 19/10/2026"


def test_template_translations_follow_the_language_of_each_render(app):
    """Templates remember their translations per language (app.py): a forced language still wins."""
    from flask import render_template_string

    page = "{{ _('Aller au contenu') }}"
    with app.test_request_context("/"):
        assert render_template_string(page) == "Aller au contenu"
        with force_locale("en"):
            assert render_template_string(page) == "Skip to content"
        assert render_template_string(page) == "Aller au contenu"


def test_templates_say_it_in_the_visitor_s_language_in_macros_too(app):
    """`_()` in a page and in a macro imported without the page's context (the grid's cells): the
    visitor's language, variables escaped, "%%" written "%" (jinja2's newstyle gettext), each time
    the same (the translations are remembered per language)."""
    from flask import render_template_string

    page = ('{% from "reservations/_cells.html" import places %}'
            '{{ _("Complet") }}|{{ _("Places : %(num)d", num=3) }}|{{ _("%(x)s à 100%%", x="<b>") }}|'
            '{{ places(none, {"id": 7}, 0) }}|{{ places(none, {"id": 8}, 2) }}')
    said = {}
    for lang in ("fr", "en", "fr", "en"):
        with app.test_request_context("/auray/", headers={"Cookie": f"lang={lang}"}):
            app.preprocess_request()
            said.setdefault(lang, []).append(render_template_string(page))
    assert said["fr"][0] == said["fr"][1] and said["en"][0] == said["en"][1]
    fr, en = said["fr"][0], said["en"][0]
    assert fr.startswith("Complet|Places : 3|&lt;b&gt; à 100%|") and ">Complet<" in fr and "Places : 2" in fr
    assert en.startswith("Full|Places: 3|") and ">Full<" in en and "Places: 2" in en and "Complet" not in en

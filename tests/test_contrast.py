"""The commune colours stay readable: one WCAG contrast function (core.contrast), the agents' form
refuses a colour under 4.5:1 with a French message next to the field, `tenants sync` corrects a
commune.toml colour that fails (and says so), the three communes pass as shipped."""

from __future__ import annotations

import re
import shutil
from html import unescape
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core import contrast
from extensions import db
from tenants.models import Tenant
from tenants.registry import discover, load_folder
from tests.admin_helpers import keep_tenant_settings  # noqa: F401 (fixture)

TENANTS_DIR = Path(__file__).resolve().parent.parent / "tenants"
COMMUNE = "/auray/admin/commune"


# ------------------------------------------------------------------ the one function

def test_the_wcag_ratio_of_known_pairs():
    assert contrast.contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast.contrast_ratio("#ffffff", "#ffffff") == pytest.approx(1.0)
    assert contrast.contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # the classic grey
    assert contrast.contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # one step too light
    assert contrast.contrast_ratio("#f2a900", "#ffffff") == pytest.approx(2.01, abs=0.01)  # Saint-Loubès' old gold
    assert contrast.contrast_ratio("#1f4e79", "#f4f6f8") == contrast.contrast_ratio("#f4f6f8", "#1f4e79")
    with pytest.raises(ValueError):
        contrast.contrast_ratio("bleu", "#ffffff")


def test_a_failing_colour_is_darkened_minimally_keeping_its_hue():
    fixed = contrast.readable_colour("#f2a900")
    assert contrast.is_readable(fixed) and not contrast.is_readable("#f2a900")
    r, g, b = contrast.parse_hex(fixed)
    assert r > g > b  # still a gold, not a grey or a brown of another hue
    lighter = contrast.to_hex(tuple(min(255, c + 3) for c in (r, g, b)))
    assert not contrast.is_readable(lighter)  # the lightest shade that passes (within 8-bit rounding)
    assert contrast.readable_colour("#1f4e79") == "#1f4e79"  # a readable colour is left alone


@settings(max_examples=200, deadline=None)
@given(st.tuples(*(st.integers(0, 255),) * 3))
def test_every_colour_can_be_made_readable(rgb):
    colour = contrast.to_hex(rgb)
    fixed = contrast.readable_colour(colour)
    assert contrast.is_readable(fixed)
    assert contrast.relative_luminance(fixed) <= contrast.relative_luminance(colour) + 1e-9  # only ever darker
    if contrast.is_readable(colour):
        assert fixed == colour


def test_white_text_on_a_readable_colour_is_readable_too():
    for colour in ("#00507d", "#4b7a0f", "#916500", contrast.readable_colour("#ffff00")):
        assert contrast.contrast_ratio("#ffffff", colour) >= contrast.MIN_TEXT_RATIO


# ------------------------------------------------------------------ the communes

def test_the_three_communes_colours_are_readable_as_shipped():
    folders = {f.slug: f for f in discover(TENANTS_DIR)}
    assert {"auray", "saint-loubes", "saint-aubin-de-medoc"} <= set(folders)
    for folder in folders.values():
        assert folder.notes == [], folder.notes  # nothing had to be corrected
        for key in ("primary", "accent"):
            assert contrast.is_readable(folder.settings["branding"][key]), (folder.slug, key)


def _commune_with(tmp_path, colour: str) -> Path:
    target = tmp_path / "tenants"
    shutil.copytree(TENANTS_DIR / "saint-loubes", target / "saint-loubes")
    toml = target / "saint-loubes" / "commune.toml"
    toml.write_text(re.sub(r'^accent = .*$', f'accent = "{colour}"', toml.read_text(encoding="utf-8"),
                           flags=re.M), encoding="utf-8")
    return target


def test_tenants_sync_corrects_a_commune_toml_colour_that_fails_and_says_so(app, tmp_path, monkeypatch,
                                                                             keep_tenant_settings):  # noqa: F811
    folder = load_folder(_commune_with(tmp_path, "#F2A900") / "saint-loubes")
    assert folder.settings["branding"]["accent"] == contrast.readable_colour("#f2a900")
    assert folder.notes == [f"saint-loubes : couleur d'accent #F2A900 corrigée en {contrast.readable_colour('#f2a900')}"
                            " (contraste 1.7:1 → 4.5:1, 4.5:1 au moins pour le texte)"]

    monkeypatch.setitem(app.config, "TENANTS_DIR", str(tmp_path / "tenants"))
    result = app.test_cli_runner().invoke(args=["tenants", "sync", "--update"])
    assert result.exit_code == 0, result.output
    assert "! saint-loubes : couleur d'accent #F2A900 corrigée en" in result.output
    with app.app_context():
        stored = db.session.scalars(select(Tenant).where(Tenant.slug == "saint-loubes")).one().settings
        db.session.remove()
    assert stored["branding"]["accent"] == contrast.readable_colour("#f2a900")


def test_a_commune_toml_colour_that_is_not_a_colour_is_refused(tmp_path):
    from tenants.registry import TenantConfigError

    with pytest.raises(TenantConfigError, match="branding.accent = 'jaune' n'est pas une couleur #rrggbb"):
        load_folder(_commune_with(tmp_path, "jaune") / "saint-loubes")


def test_a_stored_colour_that_fails_is_still_shown_readable(app, web, keep_tenant_settings):  # noqa: F811
    """A colour stored before this rule (or by hand in SQL) is corrected where the page uses it."""
    with app.app_context():
        tenant = db.session.scalars(select(Tenant).where(Tenant.slug == "auray")).one()
        tenant.settings = {**tenant.settings, "branding": {**tenant.settings["branding"], "accent": "#ffee00"}}
        db.session.commit()
        db.session.remove()
    html = web.get("/auray/").get_data(as_text=True)
    assert f"--accent: {contrast.readable_colour('#ffee00')};" in html and "#ffee00" not in html


# ------------------------------------------------------------------ the agents' form

@pytest.fixture
def agent(web, make_agent, keep_tenant_settings):  # noqa: F811
    a = make_agent("auray")
    web.login("auray", a["email"])
    return a


def _field_error(html: str, field_id: str) -> str:
    """The French message of the error paragraph that belongs to the field (its aria-describedby)."""
    html = unescape(html)
    tag = re.search(rf'<input[^>]*id="{field_id}"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in tag and f'aria-describedby="{field_id}-help {field_id}-err"' in tag
    return re.search(rf'<p class="error" id="{field_id}-err"[^>]*>(.*?)</p>', html, re.S).group(1)


def test_the_agent_form_refuses_a_colour_under_4_5_to_1_and_keeps_the_rest(app, web, agent):
    res = web.post(COMMUNE + "/identite", {"contact_email": "enfance@auray.test", "primary": "#00507d",
                                           "accent": "#f2a900"}, page=COMMUNE)
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    suggestion = contrast.readable_colour("#f2a900")
    assert _field_error(html, "accent") == (
        "Couleur trop claire : le texte n'atteint qu'un contraste de 1,7:1 alors qu'il faut au moins 4,5:1 pour "
        f"rester lisible. Essayez {suggestion}, la même teinte un peu plus foncée.")
    assert 'value="enfance@auray.test"' in html and 'value="#f2a900"' in html and 'value="#00507d"' in html
    assert 'id="primary-err"' not in html  # the readable one is not blamed
    with app.app_context():
        branding = db.session.scalars(select(Tenant).where(Tenant.slug == "auray")).one().settings["branding"]
        db.session.remove()
    assert branding["accent"] == "#d4145a"  # nothing saved

    res = web.post(COMMUNE + "/identite", {"contact_email": "enfance@auray.test", "primary": "#00507d",
                                           "accent": suggestion}, page=COMMUNE)
    assert res.status_code == 303
    assert f"--accent: {suggestion};" in type(web)(app.test_client()).get("/auray/").get_data(as_text=True)


def test_the_form_message_is_in_english_too(app, web, agent):
    web.post("/auray/langue", {"lang": "en", "next": COMMUNE}, page=COMMUNE)
    res = web.post(COMMUNE + "/identite", {"contact_email": "enfance@auray.test", "primary": "#aaccee",
                                           "accent": "#d4145a"}, page=COMMUNE)
    assert "contrast of 1.4:1" in _field_error(res.get_data(as_text=True), "primary")

"""Every mail renders in French and English, signed by its own commune, and never names another one."""

import pytest
from sqlalchemy import select

from core.models import OutboxMail
from extensions import db
from jobs.mail import SUBJECTS, render
from tenants.context import unscoped
from tenants.models import Tenant

DEMANDE = {"name": "Laëtitia Test", "demande_number": 23, "demande_type": "reservation",
           "deposited_at": "2026-09-30T13:54:00", "status": "deposee",
           "lines": ["Kids 3/7 ans — lundi 19/10/2026 Matin — Maël"], "motif": None, "refused_lines": []}


def contexts(slug):
    link = f"http://portail.test/{slug}/demandes/23"
    return {
        "activation": {"name": "Laëtitia Test", "link": f"http://portail.test/{slug}/activation/abc", "hours": 48},
        "account_precreated": {"name": "Laëtitia Test", "link": f"http://portail.test/{slug}/activation/abc",
                               "username": "l@exemple.test", "password": "Xy-12345",
                               "login": f"http://portail.test/{slug}/connexion"},
        "password_reset": {"name": "Laëtitia Test", "link": f"http://portail.test/{slug}/mot-de-passe/abc",
                           "hours": 2},
        "demande_received": dict(DEMANDE, link=link),
        "demande_decided": dict(DEMANDE, link=link, status="refusee", motif="Pièces manquantes au dossier"),
        "waitlist_promoted": {"name": "Laëtitia Test", "child": "Maël", "activity": "Kids 3/7 ans",
                              "slot": "lundi 19/10/2026 Matin", "first_date": "2026-10-19", "status": "reserved",
                              "demande_number": 23, "link": link},
        "lists_published": {"name": "Laëtitia Test", "activity": "Stages de printemps", "result": "accepted",
                            "lines": ["Stage de roller — Timéo"], "link": f"http://portail.test/{slug}/agenda"},
        "invoice_available": {"name": "Laëtitia Test", "number": "F-2026-000123", "credit_note": False,
                              "total_cents": 3750, "due_on": "2026-12-15", "period": "2026-11-01",
                              "link": f"http://portail.test/{slug}/factures/4"},
        "payment_received": {"name": "Laëtitia Test", "number": "R-2026-000012", "total_cents": 2510,
                             "credit_cents": 110, "invoices": ["F-2026-000123", "F-2026-000124"],
                             "link": f"http://portail.test/{slug}/factures"},
        "invoice_reminder": {"name": "Laëtitia Test", "number": "F-2026-000123", "total_cents": 3750,
                             "due_on": "2026-12-15", "link": f"http://portail.test/{slug}/factures/4"},
        "invoice_overdue": {"name": "Laëtitia Test", "number": "F-2026-000123", "total_cents": 3750,
                            "due_on": "2026-12-15", "link": f"http://portail.test/{slug}/factures/4"},
        "debit_rejected": {"name": "Laëtitia Test", "number": "F-2026-000123", "total_cents": 3750,
                           "reason": "Provision insuffisante", "link": f"http://portail.test/{slug}/factures/4"},
        "family_change_decided": {"name": "Laëtitia Test", "field_label": "Adresse", "accepted": False,
                                  "motif": "Justificatif illisible", "link": f"http://portail.test/{slug}/famille"},
        "piece_refused": {"name": "Laëtitia Test", "piece": "Justificatif de domicile", "piece_en": "Proof of address",
                          "child": None, "motif": "Document illisible", "link": f"http://portail.test/{slug}/pieces/"},
        "piece_expiring": {"name": "Laëtitia Test", "piece": "Attestation d'assurance extrascolaire",
                           "piece_en": "Out-of-school insurance certificate", "child": "Maël",
                           "valid_until": "2027-08-31", "link": f"http://portail.test/{slug}/pieces/"},
    }


@pytest.fixture
def communes(ctx):
    with unscoped():
        return list(db.session.scalars(select(Tenant).order_by(Tenant.slug)))


def mail_for(tenant, template, context, locale):
    return render(OutboxMail(id=7, tenant_id=tenant.id, to_address="famille@exemple.test", template=template,
                             context=context, locale=locale), tenant)


def parts(msg):
    text = msg.get_body(preferencelist=("plain",)).get_content()
    html = msg.get_body(preferencelist=("html",)).get_content()
    return text, html


def test_every_template_has_a_subject_and_both_parts():
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "templates" / "email"
    names = {p.stem for p in folder.glob("*.txt")}
    assert names == set(SUBJECTS) == {p.stem for p in folder.glob("*.html") if not p.stem.startswith("_")}


@pytest.mark.parametrize("locale,regards", [("fr", "Cordialement,"), ("en", "Kind regards,")])
def test_each_mail_is_signed_by_its_commune_and_names_no_other(communes, locale, regards):
    assert len(communes) >= 3
    for tenant in communes:
        others = [o for o in communes if o.id != tenant.id]
        for template, context in contexts(tenant.slug).items():
            msg = mail_for(tenant, template, context, locale)
            text, html = parts(msg)
            where = f"{template} ({locale}) de {tenant.slug}"
            assert tenant.name in msg["Subject"], where
            assert str(SUBJECTS[template]) not in msg["Subject"] or locale == "fr", where  # translated
            assert msg["From"].addresses[0].addr_spec == tenant.setting("sender_email"), where
            assert msg["Reply-To"] == tenant.setting("contact_email"), where
            assert text.rstrip().endswith(f"{regards}\n\n{tenant.signature}"), where
            assert regards in html and tenant.signature.replace("'", "&#39;") in html, where
            assert context["link"] in text and f'href="{context["link"]}"' in html, where
            whole = "\n".join([str(msg["Subject"]), str(msg["From"]), str(msg["Reply-To"]), text, html])
            for other in others:
                for marker in (other.name, other.signature, other.setting("sender_email"),
                               other.setting("contact_email"), f"/{other.slug}/"):
                    assert marker not in whole and marker.replace("'", "&#39;") not in whole, (where, marker)
            if locale == "en":
                assert "Bonjour" not in text and "Cordialement" not in text, where


def test_demande_received_reads_like_the_communes_mail(communes):
    auray = next(t for t in communes if t.slug == "auray")
    ctx = contexts("auray")["demande_received"]
    msg = mail_for(auray, "demande_received", ctx, "fr")
    text, _html = parts(msg)
    assert msg["Subject"] == "Nous avons bien reçu votre demande — Ville d'Auray"
    assert text.startswith("Bonjour Laëtitia Test,\n\nNous avons bien reçu votre demande (Réservation de séances).\n\n"
                           "Le service concerné vous tiendra régulièrement informé de l'avancement de son "
                           "instruction, dont les détails peuvent être consultés en cliquant sur ce lien : "
                           "http://portail.test/auray/demandes/23\n")
    assert "Kids 3/7 ans — lundi 19/10/2026 Matin — Maël" in text
    assert text.rstrip().endswith("Cordialement,\n\nLa Ville d'Auray")

    text, _html = parts(mail_for(auray, "demande_received", dict(ctx, demande_type="inscription"), "fr"))
    assert "Nous avons bien reçu votre demande (Inscription)." in text
    msg = mail_for(auray, "demande_received", ctx, "en")
    assert msg["Subject"] == "We have received your request — Ville d'Auray"
    assert "We have received your request (Session booking)." in parts(msg)[0]


@pytest.mark.parametrize("status,expected,then", [
    ("acceptee", "a été traitée positivement.",
     "Vous pouvez dès à présent consulter vos réservations sur votre espace famille."),
    ("refusee", "a été traitée négativement.", "Motif : Factures impayées"),
    ("partielle", "a été traitée partiellement.", "Kids 3/7 ans — mardi 20/10/2026 Matin — Maël (complet)"),
])
def test_the_decision_says_how_the_demande_was_treated(communes, status, expected, then):
    auray = next(t for t in communes if t.slug == "auray")
    ctx = dict(contexts("auray")["demande_decided"], status=status, motif="Factures impayées",
               refused_lines=["Kids 3/7 ans — mardi 20/10/2026 Matin — Maël (complet)"])
    text, html = parts(mail_for(auray, "demande_decided", ctx, "fr"))
    assert f"Votre demande Réservation de séances déposée le 30 septembre 2026 {expected}" in text
    assert then in text and then in html
    assert ("Motif : Factures impayées" in text) == (status != "acceptee")


def test_dates_follow_the_familys_language_and_paris_time(communes):
    auray = next(t for t in communes if t.slug == "auray")
    # 22:30 UTC on 30 September is already 1 October in Auray
    ctx = dict(contexts("auray")["demande_decided"], status="acceptee", deposited_at="2026-09-30T22:30:00")
    assert "déposée le 1 octobre 2026 a été traitée positivement" in parts(mail_for(auray, "demande_decided", ctx, "fr"))[0]
    text = parts(mail_for(auray, "demande_decided", ctx, "en"))[0]
    assert "submitted on 1 October 2026 has been accepted" in text
    text = parts(mail_for(auray, "waitlist_promoted", contexts("auray")["waitlist_promoted"], "fr"))[0]
    assert "lundi 19 octobre 2026" in text and "La réservation est confirmée" in text


def test_values_typed_by_people_are_escaped_in_html(communes):
    auray = next(t for t in communes if t.slug == "auray")
    ctx = dict(contexts("auray")["demande_decided"], motif="<script>alert(1)</script>")
    text, html = parts(mail_for(auray, "demande_decided", ctx, "fr"))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "Motif : <script>alert(1)</script>" in text  # plain text stays as typed


def test_piece_mails_say_which_piece_why_and_until_when(communes):
    auray = next(t for t in communes if t.slug == "auray")
    text = parts(mail_for(auray, "piece_refused", contexts("auray")["piece_refused"], "fr"))[0]
    assert "« Justificatif de domicile » a été refusée" in text and "Motif : Document illisible" in text
    text = parts(mail_for(auray, "piece_expiring", contexts("auray")["piece_expiring"], "fr"))[0]
    assert "de Maël n'est plus valable après le 31 août 2027" in text
    text = parts(mail_for(auray, "piece_expiring", contexts("auray")["piece_expiring"], "en"))[0]
    assert "Out-of-school insurance certificate" in text and "31 August 2027" in text

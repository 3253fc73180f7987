"""The fields of the family file a family may change: their specs by section (entity), the form of their
values in a change (JSON) and how a reader sees them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from flask_babel import format_date
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: object
    kind: str = "str"            # str, text, date, bool (None/True/False), flag (True/False), choice, photo
    choices: dict | None = None


CIVILITIES = {"madame": _l("Madame"), "monsieur": _l("Monsieur")}
DIETS = {
    "aucun": _l("Aucun régime particulier"),
    "sans_porc": _l("Sans porc"),
    "vegetarien": _l("Végétarien"),
    "sans_viande": _l("Sans viande"),
    "autre": _l("Autre régime (préciser)"),
}

ENTITY_RESPONSABLE = "responsable"
ENTITY_CHILD = "child"
ENTITY_HEALTH = "health"
ENTITY_AUTHORISATIONS = "authorisations"
ENTITY_CONTACT = "contact"
ENTITY_QUOTIENT = "quotient"  # a new quotient familial asked with a justificatif (core.billing.quotients)
ENTITY_MANDATE = "mandate"    # a SEPA mandate signed online (core.billing.mandates); the IBAN kept masked here

FIELDS: dict[str, list[FieldSpec]] = {
    ENTITY_RESPONSABLE: [
        FieldSpec("civility", _l("Civilité"), "choice", CIVILITIES),
        FieldSpec("first_name", _l("Prénom")),
        FieldSpec("last_name", _l("Nom")),
        FieldSpec("address_line", _l("Adresse")),
        FieldSpec("address_extra", _l("Complément d'adresse")),
        FieldSpec("postal_code", _l("Code postal")),
        FieldSpec("city", _l("Ville")),
        FieldSpec("phone_mobile", _l("Téléphone portable")),
        FieldSpec("phone_home", _l("Téléphone domicile")),
        FieldSpec("phone_work", _l("Téléphone professionnel")),
        FieldSpec("email", _l("Adresse e-mail de contact")),
    ],
    ENTITY_CHILD: [
        FieldSpec("first_name", _l("Prénom")),
        FieldSpec("last_name", _l("Nom")),
        FieldSpec("birth_date", _l("Date de naissance"), "date"),
        FieldSpec("school", _l("École")),
        FieldSpec("class_name", _l("Classe")),
        FieldSpec("photo", _l("Photo"), "photo"),
    ],
    ENTITY_HEALTH: [
        FieldSpec("allergies", _l("Allergies"), "text"),
        FieldSpec("pai", _l("PAI (projet d'accueil individualisé)"), "bool"),
        FieldSpec("pai_details", _l("Précisions sur le PAI"), "text"),
        FieldSpec("diet", _l("Régime alimentaire"), "choice", DIETS),
        FieldSpec("diet_details", _l("Précisions sur le régime")),
        FieldSpec("doctor_name", _l("Médecin traitant")),
        FieldSpec("doctor_phone", _l("Téléphone du médecin")),
        FieldSpec("vaccinations", _l("Vaccinations obligatoires à jour"), "bool"),
        FieldSpec("vaccinations_notes", _l("Précisions sur les vaccinations")),
        FieldSpec("notes", _l("Autres informations (traitement, recommandations)"), "text"),
    ],
    ENTITY_AUTHORISATIONS: [
        FieldSpec("photos", _l("Droit à l'image (photos, vidéos)"), "bool"),
        FieldSpec("leave_alone", _l("Autorisé(e) à partir seul(e)"), "bool"),
        FieldSpec("transport", _l("Transport en car ou minibus lors des sorties"), "bool"),
        FieldSpec("emergency_care", _l("Soins d'urgence et hospitalisation si nécessaire"), "bool"),
    ],
    ENTITY_QUOTIENT: [
        FieldSpec("value", _l("Quotient familial lu sur le justificatif")),
        FieldSpec("comment", _l("Commentaire"), "text"),
    ],
    ENTITY_MANDATE: [
        FieldSpec("holder", _l("Titulaire du compte")),
        FieldSpec("iban", _l("IBAN")),
        FieldSpec("bic", _l("BIC")),
        FieldSpec("rum", _l("Référence unique du mandat (RUM)")),
    ],
    ENTITY_CONTACT: [
        FieldSpec("first_name", _l("Prénom")),
        FieldSpec("last_name", _l("Nom")),
        FieldSpec("relationship_label", _l("Lien avec l'enfant")),
        FieldSpec("phone", _l("Téléphone")),
        FieldSpec("can_pick_up", _l("Autorisé(e) à venir chercher l'enfant"), "flag"),
        FieldSpec("emergency", _l("À prévenir en cas d'urgence"), "flag"),
    ],
}
ENTITY_LABELS = {
    ENTITY_RESPONSABLE: _l("Responsable"),
    ENTITY_CHILD: _l("Informations générales"),
    ENTITY_HEALTH: _l("Informations santé"),
    ENTITY_AUTHORISATIONS: _l("Autorisations"),
    ENTITY_CONTACT: _l("Contacts"),
    ENTITY_QUOTIENT: _l("Quotient familial"),
    ENTITY_MANDATE: _l("Mandat de prélèvement SEPA"),
}


def spec(entity: str, name: str) -> FieldSpec:
    for f in FIELDS[entity]:
        if f.name == name:
            return f
    raise KeyError(name)


def normalize(f: FieldSpec, value):
    """A submitted value -> its JSON form (dates as ISO strings, '' -> None)."""
    if f.kind == "flag":
        return bool(value)
    if value is None:
        return None
    if f.kind == "bool":
        if isinstance(value, bool):
            return value
        return {"oui": True, "non": False, "true": True, "false": False}.get(str(value).lower())
    if f.kind == "date":
        if isinstance(value, (date, datetime)):
            return value.isoformat()[:10]
        return str(value)[:10] or None
    value = str(value).strip()
    if f.kind == "choice" and value not in (f.choices or {}):
        return None
    return value or None


def from_json(f: FieldSpec, value):
    if f.kind == "date" and value:
        return date.fromisoformat(value)
    return value


def display(f: FieldSpec, value) -> str:
    """A JSON value as a French (or English) reader sees it."""
    if f.kind == "flag":
        return _("Oui") if value else _("Non")
    if value is None or value == "":
        return _("Non renseigné")
    if f.kind == "bool":
        return _("Oui") if value else _("Non")
    if f.kind == "date":
        return format_date(date.fromisoformat(value), "dd/MM/yyyy")
    if f.kind == "choice":
        return str((f.choices or {}).get(value, value))
    if f.kind == "photo":
        return _("Nouvelle photo")
    return str(value)

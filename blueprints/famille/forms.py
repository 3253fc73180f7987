"""Forms of the family file: French messages next to the field, nothing typed is lost on error."""

import re

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Email, EqualTo, InputRequired, Length, Optional, ValidationError

from core import clock
from core.dossier.fields import CIVILITIES, DIETS

REQUIRED = _l("Ce champ est obligatoire.")
EMAIL = _l("Saisissez une adresse e-mail valide (par exemple prenom.nom@exemple.fr).")
PHONE_RE = re.compile(r"^\+?[0-9][0-9 .\-()]*$")
POSTAL_RE = re.compile(r"^[0-9]{5}$")


def _too_long(n):
    return _l("%(num)d caractères au maximum.", num=n)


def _len(n):
    return Length(max=n, message=_too_long(n))


def phone_number(form, field):
    value = (field.data or "").strip()
    if not value:
        return
    digits = re.sub(r"\D", "", value)
    if not PHONE_RE.match(value) or not 8 <= len(digits) <= 15:
        raise ValidationError(_l("Numéro de téléphone invalide : chiffres uniquement, avec espaces, points ou "
                                 "tirets si vous voulez (par exemple 06 12 34 56 78)."))


def postal_code(form, field):
    value = (field.data or "").strip()
    if value and not POSTAL_RE.match(value):
        raise ValidationError(_l("Le code postal comporte 5 chiffres (par exemple 56400)."))


def birth_date_check(form, field):
    if field.data is None:
        return
    today = clock.today()
    if field.data > today:
        raise ValidationError(_l("La date de naissance ne peut pas être dans le futur."))
    if field.data.year < today.year - 30:
        raise ValidationError(_l("Vérifiez l'année de naissance."))


class FrenchDateField(DateField):
    """A date input whose parse error is French."""

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError as exc:
            raise ValueError(str(_l("Saisissez une date valide (jj/mm/aaaa)."))) from exc


YES_NO = [("", _l("— À renseigner —")), ("oui", _l("Oui")), ("non", _l("Non"))]


def yes_no(label):
    return SelectField(label, choices=YES_NO, validators=[Optional()])


def _choices(mapping):
    return [("", _l("— À renseigner —"))] + [(key, label) for key, label in mapping.items()]


class ResponsableForm(FlaskForm):
    civility = SelectField(_l("Civilité"), choices=_choices(CIVILITIES), validators=[Optional()])
    first_name = StringField(_l("Prénom"), validators=[DataRequired(REQUIRED), _len(100)])
    last_name = StringField(_l("Nom"), validators=[DataRequired(REQUIRED), _len(100)])
    address_line = StringField(_l("Adresse"), validators=[_len(200)])
    address_extra = StringField(_l("Complément d'adresse"), validators=[_len(200)])
    postal_code = StringField(_l("Code postal"), validators=[postal_code, _len(10)])
    city = StringField(_l("Ville"), validators=[_len(100)])
    phone_mobile = StringField(_l("Téléphone portable"), validators=[phone_number, _len(30)])
    phone_home = StringField(_l("Téléphone domicile"), validators=[phone_number, _len(30)])
    phone_work = StringField(_l("Téléphone professionnel"), validators=[phone_number, _len(30)])
    email = EmailField(_l("Adresse e-mail de contact"), validators=[
        Optional(), _len(254), Email(message=EMAIL, check_deliverability=False)])


class ChildForm(FlaskForm):
    first_name = StringField(_l("Prénom"), validators=[DataRequired(REQUIRED), _len(100)])
    last_name = StringField(_l("Nom"), validators=[DataRequired(REQUIRED), _len(100)])
    birth_date = FrenchDateField(_l("Date de naissance"), validators=[InputRequired(REQUIRED), birth_date_check])
    school = StringField(_l("École"), validators=[_len(200)])
    class_name = StringField(_l("Classe"), validators=[_len(100)])


class ChildWithPhotoForm(ChildForm):
    photo = FileField(_l("Photo (JPEG ou PNG, 5 Mo au maximum)"))


class HealthForm(FlaskForm):
    allergies = TextAreaField(_l("Allergies"), validators=[_len(2000)])
    pai = yes_no(_l("PAI (projet d'accueil individualisé)"))
    pai_details = TextAreaField(_l("Précisions sur le PAI"), validators=[_len(2000)])
    diet = SelectField(_l("Régime alimentaire"), choices=_choices(DIETS), validators=[Optional()])
    diet_details = StringField(_l("Précisions sur le régime"), validators=[_len(200)])
    doctor_name = StringField(_l("Médecin traitant"), validators=[_len(200)])
    doctor_phone = StringField(_l("Téléphone du médecin"), validators=[phone_number, _len(30)])
    vaccinations = yes_no(_l("Vaccinations obligatoires à jour"))
    vaccinations_notes = StringField(_l("Précisions sur les vaccinations"), validators=[_len(300)])
    notes = TextAreaField(_l("Autres informations (traitement, recommandations)"), validators=[_len(2000)])


class AuthorisationsForm(FlaskForm):
    photos = yes_no(_l("Droit à l'image (photos, vidéos)"))
    leave_alone = yes_no(_l("Autorisé(e) à partir seul(e)"))
    transport = yes_no(_l("Transport en car ou minibus lors des sorties"))
    emergency_care = yes_no(_l("Soins d'urgence et hospitalisation si nécessaire"))


class ContactForm(FlaskForm):
    first_name = StringField(_l("Prénom"), validators=[DataRequired(REQUIRED), _len(100)])
    last_name = StringField(_l("Nom"), validators=[DataRequired(REQUIRED), _len(100)])
    relationship_label = StringField(_l("Lien avec l'enfant"), validators=[_len(100)])
    phone = StringField(_l("Téléphone"), validators=[DataRequired(REQUIRED), phone_number, _len(30)])
    can_pick_up = BooleanField(_l("Autorisé(e) à venir chercher l'enfant"))
    emergency = BooleanField(_l("À prévenir en cas d'urgence"))

    def validate_emergency(self, field):
        if not field.data and not self.can_pick_up.data:
            raise ValidationError(_l("Cochez au moins une des deux cases."))


class InviteForm(FlaskForm):
    first_name = StringField(_l("Prénom"), validators=[DataRequired(REQUIRED), _len(100)])
    last_name = StringField(_l("Nom"), validators=[DataRequired(REQUIRED), _len(100)])
    email = EmailField(_l("Adresse e-mail"), validators=[
        DataRequired(REQUIRED), _len(254), Email(message=EMAIL, check_deliverability=False)])


class InvitationAccountForm(FlaskForm):
    first_name = StringField(_l("Prénom"), validators=[DataRequired(REQUIRED), _len(100)])
    last_name = StringField(_l("Nom"), validators=[DataRequired(REQUIRED), _len(100)])
    password = PasswordField(_l("Mot de passe"), validators=[InputRequired(REQUIRED), _len(128)])
    confirm = PasswordField(_l("Confirmation du mot de passe"), validators=[
        InputRequired(REQUIRED), EqualTo("password", message=_l("Les deux mots de passe ne sont pas identiques."))])
    accept_cgu = BooleanField(_l("J'accepte les conditions générales d'utilisation"),
                              validators=[DataRequired(_l("Vous devez accepter les conditions générales d'utilisation."))])


class CodeForm(FlaskForm):
    code = StringField(_l("Code abonné"), validators=[DataRequired(REQUIRED), _len(32)])


class EmailChangeForm(FlaskForm):
    email = EmailField(_l("Nouvelle adresse e-mail"), validators=[
        DataRequired(REQUIRED), _len(254), Email(message=EMAIL, check_deliverability=False)])
    password = PasswordField(_l("Mot de passe actuel"), validators=[InputRequired(REQUIRED), _len(128)])


class DeletionForm(FlaskForm):
    reason = TextAreaField(_l("Motif (facultatif)"), validators=[_len(2000)])
    password = PasswordField(_l("Mot de passe actuel"), validators=[InputRequired(REQUIRED), _len(128)])
    confirm = BooleanField(_l("Je demande la suppression de mon compte et je comprends qu'il sera désactivé "
                              "immédiatement"), validators=[DataRequired(_l("Cochez la case pour confirmer."))])


class ButtonForm(FlaskForm):
    """A button that only needs the CSRF token."""

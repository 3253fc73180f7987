"""Forms of the agent space (French messages next to the fields; what was typed is kept on error).

Dates and numbers are text fields parsed here, so that a bad value comes back as typed with a
French message (WTForms' own DateField/IntegerField messages are English).
"""

from __future__ import annotations

import re
from datetime import date, datetime

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from flask_wtf.i18n import translations as wtforms_translations
from wtforms import (
    BooleanField,
    EmailField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    DataRequired,
    Email,
    InputRequired,
    Length,
    Optional,
    StopValidation,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from core import contrast
from core.bounds import FIRST_DAY, LAST_DAY, day_in_range

REQUIRED = _l("Ce champ est obligatoire.")


def options(*pairs) -> list[SelectChoice]:
    """Select options (value, label): WTForms 3.3 wants SelectChoice objects."""
    return [SelectChoice(value, label) for value, label in pairs]
EMAIL = _l("Saisissez une adresse e-mail valide (par exemple prenom.nom@exemple.fr).")


def too_long(n):
    return _l("%(num)d caractères au maximum.", num=n)


def out_of_range() -> ValueError:
    return ValueError(str(_l("Saisissez une date entre %(first)s et %(last)s.", first=FIRST_DAY.strftime("%d/%m/%Y"),
                             last=LAST_DAY.strftime("%d/%m/%Y"))))


def parse_date(text: str) -> date:
    text = (text or "").strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y", "%d/%m/%y"):
        try:
            day = datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        if not day_in_range(day):
            raise out_of_range()
        return day
    raise ValueError(str(_l("Date invalide : saisissez-la au format JJ/MM/AAAA.")))


class _Parsed:
    """A value that could not be read stops the validation: one message, not two."""

    def pre_validate(self, form):
        if self.process_errors:
            raise StopValidation()


class FrDateField(_Parsed, StringField):
    """A date typed as JJ/MM/AAAA (or picked in the browser's calendar); the raw text is kept on error."""

    def __init__(self, label=None, validators=None, **kwargs):
        kwargs.setdefault("render_kw", {}).setdefault("type", "date")
        super().__init__(label, validators, **kwargs)

    def process_formdata(self, valuelist):
        self.data = None
        if valuelist and (valuelist[0] or "").strip():
            self.data = parse_date(valuelist[0])

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        return self.data.isoformat() if isinstance(self.data, date) else ""


class FrDateTimeField(_Parsed, StringField):
    def __init__(self, label=None, validators=None, **kwargs):
        kwargs.setdefault("render_kw", {}).setdefault("type", "datetime-local")
        super().__init__(label, validators, **kwargs)

    def process_formdata(self, valuelist):
        self.data = None
        text = (valuelist[0] if valuelist else "") or ""
        if text.strip():
            for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M"):
                try:
                    moment = datetime.strptime(text.strip(), fmt)
                except ValueError:
                    continue
                if not day_in_range(moment.date()):
                    raise out_of_range()
                self.data = moment
                return
            raise ValueError(str(_l("Date et heure invalides : saisissez-les au format JJ/MM/AAAA HH:MM.")))

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        return self.data.strftime("%Y-%m-%dT%H:%M") if isinstance(self.data, datetime) else ""


class FrIntegerField(_Parsed, StringField):
    def __init__(self, label=None, validators=None, minimum=None, maximum=None, **kwargs):
        kwargs.setdefault("render_kw", {}).update({"inputmode": "numeric"})
        self.minimum, self.maximum = minimum, maximum
        super().__init__(label, validators, **kwargs)

    def process_formdata(self, valuelist):
        self.data = None
        text = ((valuelist[0] if valuelist else "") or "").strip()
        if not text:
            return
        try:
            self.data = int(text)
        except ValueError:
            raise ValueError(str(_l("Saisissez un nombre entier."))) from None
        if (self.minimum is not None and self.data < self.minimum) or (
                self.maximum is not None and self.data > self.maximum):
            self.data = None
            raise ValueError(str(_l("Saisissez un nombre entre %(min)d et %(max)d.", min=self.minimum,
                                    max=self.maximum)))

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        return "" if self.data is None else str(self.data)


TIME_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def valid_time(form, field):
    if field.data and not TIME_RE.match(field.data.strip()):
        raise ValidationError(_l("Heure invalide : saisissez-la au format HH:MM (par exemple 08:30)."))


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


# ---------------------------------------------------------------------------- demandes

class DecisionForm(FlaskForm):
    """Accept all, refuse all (motif from the commune's list and/or free text), or line by line."""

    action = HiddenField()
    expected_status = HiddenField()
    motif_choice = SelectField(_l("Motif du refus"), choices=[], validate_choice=False)
    motif_text = TextAreaField(_l("Précisions (envoyées à la famille)"),
                               validators=[Length(max=1000, message=too_long(1000))])
    next = HiddenField()


# ---------------------------------------------------------------------------- pre-reservation lists

class AllocationForm(FlaskForm):
    method = SelectField(_l("Méthode"), choices=options(("lottery", _l("Tirage au sort")),
                                                 ("fcfs", _l("Premier arrivé, premier servi"))))
    residents_first = BooleanField(_l("Les familles résidant dans la commune d'abord"))
    siblings_together = BooleanField(_l("Garder les frères et sœurs ensemble"))
    unplaced_first = BooleanField(_l("Les enfants qui n'ont encore aucune place d'abord"))
    losers = SelectField(_l("Les enfants non retenus"), choices=options(
        ("waitlist", _l("vont sur la liste d'attente")), ("refused", _l("sont refusés"))))
    motif = StringField(_l("Motif du refus (si refusés)"), validators=[Length(max=300, message=too_long(300))])
    seed = FrIntegerField(_l("Graine du tirage (facultatif)"), minimum=0, maximum=999_999_999)


class ButtonForm(FlaskForm):
    pass


# ---------------------------------------------------------------------------- activities

KIND_CHOICES = options(("units", _l("Journées avec unités (Matin, Repas, Après-midi…)")),
                ("sessions", _l("Séances ou stages avec des places")))
VALIDATION_CHOICES = options(("commune", _l("Validées par la commune")),
                      ("immediate", _l("Traitées positivement aussitôt")),
                      ("prereservation", _l("Pré-réservations, puis listes établies par la commune")))
INSCRIPTION_CHOICES = options(("commune", _l("Validées par la commune")), ("immediate", _l("Acceptées aussitôt")))
DEADLINE_CHOICES = options(("none", _l("Jusqu'à la veille")),
                    ("days_before", _l("Un nombre de jours avant")),
                    ("weekday_before_week", _l("Un jour de la semaine précédente")))
WEEKDAYS = options(("0", _l("lundi")), ("1", _l("mardi")), ("2", _l("mercredi")), ("3", _l("jeudi")),
            ("4", _l("vendredi")), ("5", _l("samedi")), ("6", _l("dimanche")))
TIME_SLOT_CHOICES = options(("matin", _l("Matin")), ("midi", _l("Midi")), ("apres_midi", _l("Après-midi")),
                     ("soir", _l("Soir")), ("journee", _l("Journée")))


class RowForm(Form):
    """A row of a FieldList (units, sessions): WTForms' own messages in the page's language, like the
    FlaskForm around it (a plain Form speaks English: "Not a valid choice.")."""

    class Meta:
        def get_translations(self, form):
            return wtforms_translations


class UnitRow(RowForm):
    id = HiddenField()
    label = StringField(_l("Unité"), validators=[Length(max=80, message=too_long(80))])
    capacity = FrIntegerField(_l("Capacité"), minimum=0, maximum=10000)
    remove = BooleanField(_l("Supprimer"))


class SessionRow(RowForm):
    id = HiddenField()
    title = StringField(_l("Intitulé"), validators=[Length(max=200, message=too_long(200))])
    dates = StringField(_l("Date(s)"), validators=[Length(max=500, message=too_long(500))])
    time_slot = SelectField(_l("Créneau"), choices=TIME_SLOT_CHOICES)
    start_time = StringField(_l("Début"), validators=[valid_time])
    end_time = StringField(_l("Fin"), validators=[valid_time])
    places = FrIntegerField(_l("Places"), minimum=0, maximum=10000)
    theme = StringField(_l("Thème"), validators=[Length(max=80, message=too_long(80))])
    discipline = StringField(_l("Discipline"), validators=[Length(max=80, message=too_long(80))])
    age_min = FrIntegerField(_l("Âge min."), minimum=0, maximum=25)
    age_max = FrIntegerField(_l("Âge max."), minimum=0, maximum=25)
    remove = BooleanField(_l("Supprimer"))


class ActivityForm(FlaskForm):
    name = StringField(_l("Nom de l'activité"), validators=[DataRequired(REQUIRED), Length(max=200, message=too_long(200))])
    code = StringField(_l("Code (lettres minuscules, chiffres et tirets)"),
                       validators=[Optional(), Length(max=80, message=too_long(80))])
    kind = SelectField(_l("Type"), choices=KIND_CHOICES)
    structure = StringField(_l("Structure"), validators=[Length(max=200, message=too_long(200))])
    season = StringField(_l("Saison"), validators=[DataRequired(REQUIRED), Length(max=20, message=too_long(20))])
    starts_on = FrDateField(_l("Du"), validators=[DataRequired(REQUIRED)])
    ends_on = FrDateField(_l("Au"), validators=[DataRequired(REQUIRED)])
    age_min = FrIntegerField(_l("Âge minimum"), minimum=0, maximum=25)
    age_max = FrIntegerField(_l("Âge maximum"), minimum=0, maximum=25)
    validation = SelectField(_l("Validation des réservations"), choices=VALIDATION_CHOICES)
    prereservation_until = FrDateField(_l("Fin de la période de pré-réservation"))
    opening_at = FrDateTimeField(_l("Ouverture des réservations en ligne (facultatif)"))
    inscription_open = BooleanField(_l("Inscriptions ouvertes aux familles"))
    inscription_validation = SelectField(_l("Validation des inscriptions"), choices=INSCRIPTION_CHOICES)
    online_quota_pct = FrIntegerField(_l("Part des places ouverte en ligne (%)"), minimum=0, maximum=100,
                                      validators=[InputRequired(REQUIRED)])
    one_per_time_slot = BooleanField(_l("Une seule activité par créneau horaire et par enfant"))
    hold_minutes = FrIntegerField(_l("Durée de la démarche avant libération des places (minutes)"),
                                  minimum=5, maximum=240, validators=[InputRequired(REQUIRED)])
    booking_kind = SelectField(_l("Délai de réservation"), choices=DEADLINE_CHOICES)
    booking_days = FrIntegerField(_l("Jours avant"), minimum=0, maximum=90)
    booking_time = StringField(_l("Heure limite"), validators=[valid_time])
    booking_skip_weekends = BooleanField(_l("Sans compter les week-ends"))
    booking_weekday = SelectField(_l("Jour de la semaine précédente"), choices=WEEKDAYS)
    cancel_same = BooleanField(_l("Annulation : même délai que la réservation"))
    cancel_kind = SelectField(_l("Délai d'annulation"), choices=DEADLINE_CHOICES)
    cancel_days = FrIntegerField(_l("Jours avant"), minimum=0, maximum=90)
    cancel_time = StringField(_l("Heure limite"), validators=[valid_time])
    cancel_skip_weekends = BooleanField(_l("Sans compter les week-ends"))
    cancel_weekday = SelectField(_l("Jour de la semaine précédente"), choices=WEEKDAYS)
    weekdays = MultiCheckboxField(_l("Jours d'ouverture"), choices=WEEKDAYS)
    public_holidays = SelectField(_l("Jours fériés"), choices=options(("closed", _l("Fermé")), ("open", _l("Ouvert"))))
    school_holidays = SelectField(_l("Vacances scolaires"), choices=options(
        ("ignore", _l("Sans effet")), ("closed", _l("Fermé pendant les vacances")),
        ("only", _l("Ouvert seulement pendant les vacances"))))
    zone = SelectField(_l("Zone de vacances"), choices=options(("", _l("Celle de la commune")), ("A", "A"), ("B", "B"),
                                                       ("C", "C")), validate_choice=False)
    closed_dates = TextAreaField(_l("Fermetures exceptionnelles (une date JJ/MM/AAAA par ligne)"),
                                 validators=[Length(max=5000, message=too_long(5000))])
    units = FieldList(FormField(UnitRow), min_entries=0)
    overrides = TextAreaField(_l("Capacités particulières (une ligne par jour : JJ/MM/AAAA ; unité ; places)"),
                              validators=[Length(max=5000, message=too_long(5000))])
    sessions = FieldList(FormField(SessionRow), min_entries=0)
    position = FrIntegerField(_l("Ordre d'affichage"), minimum=0, maximum=9999)


# ---------------------------------------------------------------------------- commune settings

class MotifsForm(FlaskForm):
    motifs = TextAreaField(_l("Motifs de refus (un par ligne)"), render_kw={"rows": 6},
                           validators=[DataRequired(REQUIRED), Length(max=5000, message=too_long(5000))])


class HomeForm(FlaskForm):
    title_fr = StringField(_l("Titre de la page d'accueil"), validators=[Length(max=200, message=too_long(200))])
    title_en = StringField(_l("Titre (anglais)"), validators=[Length(max=200, message=too_long(200))])
    tagline_fr = StringField(_l("Accroche"), validators=[Length(max=200, message=too_long(200))])
    tagline_en = StringField(_l("Accroche (anglais)"), validators=[Length(max=200, message=too_long(200))])
    intro_fr = TextAreaField(_l("Texte d'accueil"), render_kw={"rows": 5}, validators=[Length(max=3000, message=too_long(3000))])
    intro_en = TextAreaField(_l("Texte d'accueil (anglais)"), render_kw={"rows": 5}, validators=[Length(max=3000, message=too_long(3000))])
    services_fr = TextAreaField(_l("Mot des services"), render_kw={"rows": 5}, validators=[Length(max=1000, message=too_long(1000))])
    services_en = TextAreaField(_l("Mot des services (anglais)"), render_kw={"rows": 5}, validators=[Length(max=1000, message=too_long(1000))])


class NewsForm(FlaskForm):
    date = FrDateField(_l("Date"), validators=[DataRequired(REQUIRED)])
    title_fr = StringField(_l("Titre"), validators=[DataRequired(REQUIRED), Length(max=200, message=too_long(200))])
    title_en = StringField(_l("Titre (anglais)"), validators=[Length(max=200, message=too_long(200))])
    body_fr = TextAreaField(_l("Texte"), render_kw={"rows": 5}, validators=[DataRequired(REQUIRED), Length(max=3000, message=too_long(3000))])
    body_en = TextAreaField(_l("Texte (anglais)"), render_kw={"rows": 5}, validators=[Length(max=3000, message=too_long(3000))])


COLOUR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


def valid_colour(form, field):
    if not COLOUR_RE.match((field.data or "").strip()):
        raise ValidationError(_l("Couleur invalide : saisissez-la sous la forme #1f4e79."))


def readable_colour(form, field):
    """Text on the commune's colours must stay readable (RGAA / WCAG 1.4.3): 4.5:1 at least."""
    from flask_babel import format_decimal, gettext

    value = (field.data or "").strip()
    if COLOUR_RE.match(value) and not contrast.is_readable(value):
        raise ValidationError(gettext(
            "Couleur trop claire : le texte n'atteint qu'un contraste de %(ratio)s:1 alors qu'il faut au moins "
            "4,5:1 pour rester lisible. Essayez %(suggestion)s, la même teinte un peu plus foncée.",
            ratio=format_decimal(contrast.floor_ratio(value), format="0.0"),
            suggestion=contrast.readable_colour(value)))


class IdentityForm(FlaskForm):
    contact_email = EmailField(_l("Adresse de contact des familles"), validators=[
        DataRequired(REQUIRED), Length(max=254, message=too_long(254)), Email(message=EMAIL, check_deliverability=False)])
    primary = StringField(_l("Couleur principale"), validators=[valid_colour, readable_colour], render_kw={"type": "color"})
    accent = StringField(_l("Couleur d'accent"), validators=[valid_colour, readable_colour], render_kw={"type": "color"})
    logo = FileField(_l("Logo (PNG, JPEG ou WebP, 1 Mo au plus)"))


# ---------------------------------------------------------------------------- families

class AccountForm(FlaskForm):
    first_name = StringField(_l("Prénom"), validators=[DataRequired(REQUIRED), Length(max=100, message=too_long(100))])
    last_name = StringField(_l("Nom"), validators=[DataRequired(REQUIRED), Length(max=100, message=too_long(100))])
    email = EmailField(_l("Adresse e-mail"), validators=[
        DataRequired(REQUIRED), Length(max=254, message=too_long(254)), Email(message=EMAIL, check_deliverability=False)])


class ResidentForm(FlaskForm):
    resident = BooleanField(_l("Famille résidant dans la commune"))


# ---------------------------------------------------------------------------- lists

class PresenceForm(FlaskForm):
    class Meta:
        csrf = False

    activite = SelectField(_l("Activité"), choices=[], validate_choice=False)
    jour = FrDateField(_l("Jour"))
    vue = SelectField(_l("Période"), choices=options(("jour", _l("Le jour")), ("semaine", _l("La semaine"))),
                      default="jour", validate_choice=False)
    unite = SelectField(_l("Unité"), choices=[], validate_choice=False)

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, InputRequired, Length

REQUIRED = _l("Ce champ est obligatoire.")
EMAIL = _l("Saisissez une adresse e-mail valide (par exemple prenom.nom@exemple.fr).")


def _too_long(n):
    return _l("%(num)d caractères au maximum.", num=n)


class LoginForm(FlaskForm):
    email = EmailField(_l("Identifiant (adresse e-mail)"),
                       validators=[DataRequired(REQUIRED), Length(max=254, message=_too_long(254))])
    password = PasswordField(_l("Mot de passe"),
                             validators=[DataRequired(REQUIRED), Length(max=128, message=_too_long(128))])


class RegisterForm(FlaskForm):
    first_name = StringField(_l("Prénom"), validators=[DataRequired(REQUIRED), Length(max=100, message=_too_long(100))])
    last_name = StringField(_l("Nom"), validators=[DataRequired(REQUIRED), Length(max=100, message=_too_long(100))])
    email = EmailField(_l("Adresse e-mail"), validators=[
        DataRequired(REQUIRED), Length(max=254, message=_too_long(254)),
        Email(message=EMAIL, check_deliverability=False)])
    password = PasswordField(_l("Mot de passe"), validators=[InputRequired(REQUIRED), Length(max=128, message=_too_long(128))])
    confirm = PasswordField(_l("Confirmation du mot de passe"), validators=[
        InputRequired(REQUIRED), EqualTo("password", message=_l("Les deux mots de passe ne sont pas identiques."))])
    accept_cgu = BooleanField(_l("J'accepte les conditions générales d'utilisation"),
                              validators=[DataRequired(_l("Vous devez accepter les conditions générales d'utilisation."))])


class EmailOnlyForm(FlaskForm):
    email = EmailField(_l("Adresse e-mail"), validators=[
        DataRequired(REQUIRED), Length(max=254, message=_too_long(254)),
        Email(message=EMAIL, check_deliverability=False)])


class NewPasswordForm(FlaskForm):
    password = PasswordField(_l("Nouveau mot de passe"), validators=[InputRequired(REQUIRED), Length(max=128, message=_too_long(128))])
    confirm = PasswordField(_l("Confirmation du mot de passe"), validators=[
        InputRequired(REQUIRED), EqualTo("password", message=_l("Les deux mots de passe ne sont pas identiques."))])


class ChangePasswordForm(NewPasswordForm):
    current = PasswordField(_l("Mot de passe actuel"), validators=[InputRequired(REQUIRED), Length(max=128, message=_too_long(128))])


class CguForm(FlaskForm):
    accept = BooleanField(_l("J'ai lu et j'accepte les conditions générales d'utilisation"),
                          validators=[DataRequired(_l("Vous devez accepter les conditions générales d'utilisation."))])

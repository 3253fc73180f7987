from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, ValidationError

from core.agenda import ABSENCE_MAX_BYTES, detect_document_type

MOTIF_OTHER = "autre"
MOTIFS = [
    ("", _l("— Choisissez un motif —")),
    ("maladie", _l("Maladie")),
    ("rendez-vous", _l("Rendez-vous médical")),
    ("famille", _l("Raison familiale")),
    ("transport", _l("Problème de transport")),
    (MOTIF_OTHER, _l("Autre motif")),
]


def _choices():
    return [SelectChoice(value, label) for value, label in MOTIFS]
ACCEPTED = ".pdf,.jpg,.jpeg,.png,application/pdf,image/jpeg,image/png"


class AbsenceForm(FlaskForm):
    motif = SelectField(_l("Motif de l'absence"), choices=_choices,
                        validators=[DataRequired(_l("Choisissez le motif de l'absence."))])
    details = TextAreaField(_l("Précisions"), validators=[
        Length(max=1000, message=_l("%(num)d caractères au maximum.", num=1000))])
    document = FileField(_l("Justificatif (facultatif)"), render_kw={"accept": ACCEPTED})

    # Filled by validate_document when a valid file was sent.
    document_bytes: bytes | None = None
    document_kind: str | None = None

    def validate_details(self, field):
        if self.motif.data == MOTIF_OTHER and not (field.data or "").strip():
            raise ValidationError(_l("Précisez le motif de l'absence."))

    def validate_document(self, field):
        upload = field.data
        self.document_bytes = self.document_kind = None
        if not upload or not getattr(upload, "filename", ""):
            return
        data = upload.stream.read(ABSENCE_MAX_BYTES + 1)
        if len(data) > ABSENCE_MAX_BYTES:
            raise ValidationError(_l("Le fichier dépasse la taille maximale de 5 Mo. "
                                     "Choisissez un fichier plus léger."))
        if not data:
            raise ValidationError(_l("Le fichier est vide."))
        kind = detect_document_type(data[:16])
        if kind is None:
            raise ValidationError(_l("Ce fichier n'est pas un PDF, ni une image JPEG ou PNG "
                                     "(son contenu a été vérifié, pas seulement son nom)."))
        self.document_bytes, self.document_kind = data, kind

    def motif_text(self) -> str:
        """The motif as stored for the commune (in French): its label, and the details when given."""
        with force_locale("fr"):
            label = str(dict(MOTIFS).get(self.motif.data, self.motif.data))
        details = (self.details.data or "").strip()
        return f"{label} : {details}" if details else label

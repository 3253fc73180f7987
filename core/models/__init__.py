"""The application's ORM models, one module per topic; every public name is re-exported here, so
`from core.models import X` is the way to import them.

    accounts.py      User (parents, agents), SupportUser, UserToken; the roles
    activities.py    Activity, ActivityUnit, Slot, Inscription; kinds and validation modes
    demandes.py      Demande, DemandeLine, DemandeEvent, Counter; their statuses and actions
    families.py      Family, Child
    outbox.py        OutboxMail: mails sent after the transaction that wrote them
    reservations.py  Reservation, Cart (démarche), CartItem, WaitingTicket; their statuses

Relationships name their targets by string, resolved when the mappers are configured (once every
model below is imported).  The other packages' models are imported at the end, so that importing
this package maps every table (Alembic's autogenerate, the tests).
"""

from core.models.accounts import (
    ROLE_AGENT,
    ROLE_PARENT,
    ROLES,
    SupportUser,
    User,
    UserToken,
)
from core.models.activities import (
    INSCRIPTION_ACCEPTED,
    INSCRIPTION_PENDING,
    INSCRIPTION_REFUSED,
    KIND_SESSIONS,
    KIND_UNITS,
    VALIDATION_COMMUNE,
    VALIDATION_IMMEDIATE,
    VALIDATION_PRERESERVATION,
    Activity,
    ActivityUnit,
    Inscription,
    Slot,
)
from core.models.demandes import (
    ACTION_ABSENCE,
    ACTION_BOOK,
    ACTION_CANCEL,
    ACTION_INSCRIPTION,
    ACTION_WAITLIST,
    DEMANDE_ACCEPTEE,
    DEMANDE_ANNULEE,
    DEMANDE_DEPOSEE,
    DEMANDE_EN_COURS,
    DEMANDE_LISTE_ATTENTE,
    DEMANDE_OPEN,
    DEMANDE_PARTIELLE,
    DEMANDE_REFUSEE,
    LINE_ACCEPTED,
    LINE_CANCELLED,
    LINE_PENDING,
    LINE_REFUSED,
    LINE_WAITLIST,
    TYPE_ABSENCE,
    TYPE_INSCRIPTION,
    TYPE_RESERVATION,
    Counter,
    Demande,
    DemandeEvent,
    DemandeLine,
)
from core.models.families import (
    Child,
    Family,
)
from core.models.outbox import (
    MAIL_FAILED,
    MAIL_PENDING,
    MAIL_QUEUED,
    MAIL_SENT,
    OutboxMail,
)
from core.models.reservations import (
    CART_CANCELLED,
    CART_EXPIRED,
    CART_OPEN,
    CART_SUBMITTED,
    RES_ABSENT,
    RES_CANCELLED,
    RES_HELD,
    RES_PENDING,
    RES_REFUSED,
    RES_RESERVED,
    RES_TAKING_PLACE,
    RES_WAITLIST,
    Cart,
    CartItem,
    Reservation,
    WaitingTicket,
)

# isort: split
# The other packages' models (they import names from here, defined above): every table is mapped.
import core.billing.models  # noqa: E402,F401  (registers the billing models with the mapper)
import core.billing.payment_models  # noqa: E402,F401  (billing II: receipts, online payments, SEPA, reminders)
import core.documents.models  # noqa: E402,F401  (registers the pièces justificatives' models)
import core.dossier.models  # noqa: E402,F401  (registers the family file's models with the mapper)
from core.admin_models import AllocationRun, AuditLog  # noqa: E402  (back-office models)
from core.calendar_feed import CalendarFeed  # noqa: E402  (the family's calendar feed)

__all__ = [
    "Family", "Child", "ROLE_PARENT", "ROLE_AGENT", "ROLES", "User", "SupportUser", "UserToken", "MAIL_PENDING",
    "MAIL_QUEUED", "MAIL_SENT", "MAIL_FAILED", "OutboxMail", "KIND_UNITS", "KIND_SESSIONS", "VALIDATION_IMMEDIATE",
    "VALIDATION_COMMUNE", "VALIDATION_PRERESERVATION", "Activity", "ActivityUnit", "Slot", "INSCRIPTION_PENDING",
    "INSCRIPTION_ACCEPTED", "INSCRIPTION_REFUSED", "Inscription", "DEMANDE_DEPOSEE", "DEMANDE_EN_COURS",
    "DEMANDE_ACCEPTEE", "DEMANDE_REFUSEE", "DEMANDE_PARTIELLE", "DEMANDE_ANNULEE", "DEMANDE_LISTE_ATTENTE",
    "DEMANDE_OPEN", "TYPE_RESERVATION", "TYPE_INSCRIPTION", "TYPE_ABSENCE", "Counter", "Demande", "LINE_PENDING",
    "LINE_ACCEPTED", "LINE_REFUSED", "LINE_WAITLIST", "LINE_CANCELLED", "ACTION_BOOK", "ACTION_CANCEL",
    "ACTION_WAITLIST", "ACTION_INSCRIPTION", "ACTION_ABSENCE", "DemandeLine", "DemandeEvent", "RES_HELD",
    "RES_PENDING", "RES_RESERVED", "RES_WAITLIST", "RES_ABSENT", "RES_CANCELLED", "RES_REFUSED",
    "RES_TAKING_PLACE", "Reservation", "CART_OPEN", "CART_SUBMITTED", "CART_CANCELLED", "CART_EXPIRED", "Cart",
    "CartItem", "WaitingTicket", "AllocationRun", "AuditLog", "CalendarFeed",
]

"""Prélèvement automatique: SEPA mandates signed online by the family (holder, IBAN and BIC checked
with schwifty, the mandate text accepted, a RUM per régie), pending until an agent validates them
through the family file's changes under validation (entity "mandate", core.dossier.changes), and
revoked by the family or an agent.

IBANs are shown masked; the full IBAN only to the régie's agents (`iban_readers`), every read
logged like health data (`IbanAccessLog`).  Services never commit.
"""

from __future__ import annotations

import hashlib

from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from core import clock
from core.billing import config as bconf
from core.billing.bank import BankError, check_account, formatted, mask
from core.billing.invoices import allocate_numbers
from core.billing.payment_models import (
    DEBIT_CANCELLED,
    DEBIT_PLANNED,
    MANDATE_ACTIVE,
    MANDATE_PENDING,
    MANDATE_REFUSED,
    MANDATE_REVOKED,
    Debit,
    IbanAccessLog,
    Mandate,
)
from core.dossier.models import CHANGE_PENDING, OP_CREATE, FamilyChange
from core.locking import lock_one
from extensions import db
from tenants.context import require_tenant_id

__all__ = ["ENTITY_MANDATE", "MandateError", "mask", "sign", "activate", "refuse", "revoke"]

ENTITY_MANDATE = "mandate"
MANDATE_WORDS = {MANDATE_PENDING: _l("En attente de validation"), MANDATE_ACTIVE: _l("Actif"),
                 MANDATE_REFUSED: _l("Refusé"), MANDATE_REVOKED: _l("Révoqué")}


class MandateError(Exception):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def _regie() -> bconf.Regie:
    from core.billing.runs import config

    return config().regie


def mandate_text(regie: bconf.Regie) -> str:
    """The mandate's wording (the SEPA rule book's), with the creditor's name and identifier."""
    return str(_l("En signant ce formulaire de mandat, vous autorisez %(creditor)s à envoyer des instructions à "
                  "votre banque pour débiter votre compte, et votre banque à débiter votre compte conformément aux "
                  "instructions de %(creditor)s. Vous bénéficiez du droit d'être remboursé par votre banque selon "
                  "les conditions décrites dans la convention que vous avez passée avec elle. Une demande de "
                  "remboursement doit être présentée dans les 8 semaines suivant la date de débit de votre compte "
                  "pour un prélèvement autorisé. Identifiant créancier SEPA : %(ics)s. Vos factures publiées seront "
                  "prélevées à la date indiquée sur chacune.",
                  creditor=regie.sepa_creditor_name or regie.name, ics=regie.sepa_creditor_id or "—"))


def text_version(regie: bconf.Regie) -> str:
    with force_locale("fr"):
        return hashlib.sha256(mandate_text(regie).encode()).hexdigest()


def rum_for(regie: bconf.Regie, sequence: int) -> str:
    """Référence unique du mandat: per régie, 35 characters at most, letters, digits and dashes."""
    code = "".join(c for c in regie.code.upper() if c.isalnum())[:12] or "REGIE"
    return f"RUM-{code}-{sequence:06d}"


def active_of(family_id: int) -> Mandate | None:
    return db.session.scalars(select(Mandate).where(Mandate.family_id == family_id,
                                                    Mandate.status == MANDATE_ACTIVE)).first()


def pending_of(family_id: int) -> Mandate | None:
    return db.session.scalars(select(Mandate).where(Mandate.family_id == family_id,
                                                    Mandate.status == MANDATE_PENDING)).first()


def of_family(family_id: int) -> list[Mandate]:
    return list(db.session.scalars(select(Mandate).where(Mandate.family_id == family_id)
                                   .order_by(Mandate.id.desc())))


def sign(family, user, *, holder: str, iban: str, bic: str, accepted: bool, actor: str | None = None) -> Mandate:
    """The family signs a mandate online (or an agent records a paper one): checked, a RUM, and a
    change under validation.  Raises MandateError in French; nothing written then."""
    from core.billing import sepa

    if family is None or family.tenant_id != require_tenant_id():
        raise MandateError(str(_l("Cette famille n'appartient pas à la commune : aucun mandat n'est enregistré.")),
                           "family")
    regie = _regie()
    if not sepa.available(regie):
        raise MandateError(str(_l("La commune ne propose pas le prélèvement automatique pour le moment.")))
    holder = " ".join((holder or "").split())
    if not holder:
        raise MandateError(str(_l("Indiquez le nom du titulaire du compte.")), "holder")
    if len(holder) > 70:
        raise MandateError(str(_l("Le nom du titulaire a 70 caractères au plus.")), "holder")
    try:
        iban_c, bic_c = check_account(iban, bic)
    except BankError as err:
        raise MandateError(err.message, err.field) from None
    if not accepted:
        raise MandateError(str(_l("Cochez la case d'acceptation du mandat pour le signer.")), "accepted")
    if pending_of(family.id) is not None:
        raise MandateError(str(_l("Un mandat est déjà en attente de validation par la collectivité.")), "iban")
    [sequence] = allocate_numbers(f"{regie.code}:rum", 0, 1)
    mandate = Mandate(family_id=family.id, regie=regie.code, rum=rum_for(regie, sequence), holder=holder,
                      iban=iban_c, bic=bic_c, text_version=text_version(regie),
                      signed_by_id=getattr(user, "id", None) if not getattr(user, "is_support", False) else None,
                      signed_by=(actor or getattr(user, "display_name", ""))[:200], status=MANDATE_PENDING)
    db.session.add(mandate)
    db.session.flush()
    change = FamilyChange(family_id=family.id, tenant_id=family.tenant_id, child_id=None, entity=ENTITY_MANDATE,
                          entity_id=mandate.id, op=OP_CREATE,
                          changes={"holder": holder, "iban": mask(iban_c), "bic": bic_c, "rum": mandate.rum},
                          label=f"Mandat de prélèvement SEPA — {mandate.rum}",
                          requested_by_id=getattr(user, "id", None) if getattr(user, "family_id", None) else None)
    db.session.add(change)
    db.session.flush()
    mandate.change_id = change.id
    return mandate


def activate(change: FamilyChange, who: str) -> Mandate:
    """An agent accepted the change: the mandate is active; a previous one of the family is revoked."""
    mandate = lock_one(Mandate, change.entity_id) if change.entity_id else None
    if mandate is None or mandate.status != MANDATE_PENDING:
        from core.dossier.common import DossierError

        raise DossierError(str(_l("Ce mandat n'est plus en attente : refusez cette modification.")))
    previous = active_of(mandate.family_id)
    if previous is not None:
        _revoke(previous, who, str(_l("Remplacé par le mandat %(rum)s", rum=mandate.rum)), keep_debits=True)
        for debit in db.session.scalars(select(Debit).where(Debit.mandate_id == previous.id,
                                                            Debit.status == DEBIT_PLANNED)):
            debit.mandate_id = mandate.id
        db.session.flush()
    mandate.status = MANDATE_ACTIVE
    mandate.decided_at = clock.utcnow()
    mandate.decided_by = who[:200]
    return mandate


def refuse(change: FamilyChange, who: str) -> None:
    mandate = lock_one(Mandate, change.entity_id) if change.entity_id else None
    if mandate is not None and mandate.status == MANDATE_PENDING:
        mandate.status = MANDATE_REFUSED
        mandate.decided_at = clock.utcnow()
        mandate.decided_by = who[:200]


def _revoke(mandate: Mandate, who: str, reason: str, *, keep_debits: bool = False) -> None:
    mandate.status = MANDATE_REVOKED
    mandate.revoked_at = clock.utcnow()
    mandate.revoked_by = who[:200]
    mandate.revoke_reason = reason
    db.session.flush()
    if not keep_debits:  # the invoices not yet in a file are payable again
        for debit in db.session.scalars(select(Debit).where(Debit.mandate_id == mandate.id,
                                                            Debit.status == DEBIT_PLANNED)):
            debit.status = DEBIT_CANCELLED


def revoke(mandate_id: int, *, who: str, reason: str) -> Mandate:
    mandate = lock_one(Mandate, mandate_id)
    if mandate is None:
        raise LookupError(mandate_id)
    if mandate.status not in (MANDATE_ACTIVE, MANDATE_PENDING):
        raise MandateError(str(_l("Ce mandat n'est plus actif.")))
    reason = (reason or "").strip()
    if not reason:
        raise MandateError(str(_l("Indiquez le motif de la révocation.")), "reason")
    if mandate.status == MANDATE_PENDING and mandate.change_id:
        change = lock_one(FamilyChange, mandate.change_id)
        if change is not None and change.status == CHANGE_PENDING:
            from core.dossier.changes import close

            close(change, "cancelled", who)
    _revoke(mandate, who, reason)
    return mandate


def revoke_by_family(family, user) -> Mandate:
    """The family revokes its mandate (active, or withdraws the pending one)."""
    mandate = active_of(family.id) or pending_of(family.id)
    if mandate is None:
        raise MandateError(str(_l("Vous n'avez pas de mandat de prélèvement.")))
    return revoke(mandate.id, who=user.display_name, reason=str(_l("Révoqué par la famille")))


# ---------------------------------------------------------------------------- IBAN reads

def may_read_iban(regie: bconf.Regie, agent) -> bool:
    """The régie's agents who need full IBANs (`iban_readers`; empty: every agent of the commune)."""
    if getattr(agent, "is_support", False):
        return False
    if not getattr(agent, "is_agent", False):
        return False
    return not regie.iban_readers or agent.email.lower() in regie.iban_readers


def log_iban_read(*, agent, mandate: Mandate, context: str) -> IbanAccessLog:
    row = IbanAccessLog(agent_id=getattr(agent, "id", None) if not getattr(agent, "is_support", False) else None,
                        agent_name=getattr(agent, "display_name", str(agent))[:200], mandate_id=mandate.id,
                        family_id=mandate.family_id, context=context[:60])
    db.session.add(row)
    return row


def reveal(mandate: Mandate, *, agent, context: str) -> str:
    """The full IBAN for an agent who may read it, the read logged; MandateError otherwise."""
    if not may_read_iban(_regie(), agent):
        raise MandateError(str(_l("Votre compte n'a pas accès aux IBAN complets : demandez au régisseur.")))
    log_iban_read(agent=agent, mandate=mandate, context=context)
    return formatted(mandate.iban)


def iban_reads(mandate_id: int, limit: int = 20) -> list[IbanAccessLog]:
    return list(db.session.scalars(select(IbanAccessLog).where(IbanAccessLog.mandate_id == mandate_id)
                                   .order_by(IbanAccessLog.at.desc(), IbanAccessLog.id.desc()).limit(limit)))

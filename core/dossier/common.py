"""What several topics of the family file share: the refusal a user reads, and the hash of a link's token
(co-représentant invitations, login e-mail changes)."""

from __future__ import annotations

import hashlib


class DossierError(Exception):
    """A refusal the user can read (French, translated)."""

    def __init__(self, message: str, code: str = "refused", field: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field


def token_hash(raw: str) -> str:
    return hashlib.sha256((raw or "").encode()).hexdigest()

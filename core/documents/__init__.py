"""Pièces justificatives: the family's secure document space.

* ``models``   — the commune's piece types (from ``tenants/<slug>/pieces.toml``, then edited by its
  agents), the family's pieces and their lifecycle (en attente de validation → validée jusqu'au … /
  refusée avec motif → expirée → deleted by retention), every agent read of a file.
* ``config``   — loading ``pieces.toml``, validity of a type (months, school year, unlimited),
  retention settings.
* ``content``  — what a file is, by its content (PDF, JPEG, PNG), read in chunks with a size limit.
* ``storage``  — where files live: a local folder under the instance folder by default, an
  S3-compatible store by configuration; deletions happen after the commit that decided them.
* ``services`` — uploading and replacing, the agents' decisions, which pieces an inscription needs
  and what is missing, the expiry announcement, retention, the JSON export.

No request, no HTML, no queue call here; the caller commits.
"""

"""The family file (dossier famille), by topic; callers import from the topic's module.

- models: the file's tables (imported at the end of core/models/__init__.py, which maps them)
- fields: the sections a family may change, their fields and how a value reads
- records: the file's rows, and the row, current values and writing of a change's section
- changes: changes under the commune's validation (propose, withdraw, accept or refuse)
- summaries: how a change reads (titles, fields, current beside pending)
- photos: a child's photo, checked and re-encoded
- membership: the family code and the co-représentant's invitation
- login_email: changing the login e-mail
- health_log: reads of a child's health data
- readiness: what would stop a child from booking
- back_office: agents' work on files outside the changes (search, new file, quotient)
- deletion: account deletion requests
- export: the JSON export of a family's file
- common: what several topics share (DossierError, tokens' hash)

No request, no HTML, no queue calls here: mails go through core.mail.queue_mail (written in the same
transaction).
"""

"""rls: PostgreSQL row-level security on every table of a commune (tenants/rls.py)

Every table with a tenant_id: row-level security enabled and forced (the tables' owner is held too
unless it may bypass it: superuser or BYPASSRLS, the migrations' role), one policy for reading and
writing, keyed on the transaction's setting app.tenant_id (set by the tenant scope, SET LOCAL).
Outside every commune the setting is empty: no row, no write.  `tenant` and `support_user` are
global by design (the commune itself, the support staff).  SQLite has no row-level security: nothing
happens there, the ORM guard (tenants/scoping.py) stands alone.

Revision ID: 0012_rls
Revises: 0011_payments
Create Date: 2026-12-07 03:20:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0012_rls'
down_revision = '0011_payments'
branch_labels = None
depends_on = None

POLICY = "tenant_isolation"
CURRENT = "NULLIF(current_setting('app.tenant_id', true), '')::integer"

# every table with a tenant_id at this revision (a later table gets its policy in its own migration;
# tests/test_rls.py fails for a table with a tenant_id and no policy)
TABLES = (
    "account_deletion_request", "activity", "activity_unit", "allocation_run", "audit_log",
    "billing_attendance", "billing_counter", "billing_credit", "billing_credit_use", "billing_debit",
    "billing_debit_batch", "billing_draft_line", "billing_iban_access_log", "billing_invoice",
    "billing_invoice_line", "billing_mandate", "billing_online_transaction", "billing_payment",
    "billing_quotient", "billing_receipt", "billing_recovery", "billing_reminder", "billing_run",
    "calendar_feed", "cart", "cart_item", "child", "child_contact", "child_file", "child_health", "counter",
    "demande", "demande_event", "demande_line", "email_change", "family", "family_change",
    "family_code_claim", "family_file", "family_invitation", "health_access_log", "inscription",
    "outbox_mail", "piece", "piece_access_log", "piece_type", "reservation", "responsable", "slot",
    "user_account", "user_token", "waiting_ticket",
)


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')
        op.execute(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')
        op.execute(f'CREATE POLICY {POLICY} ON "{table}" USING (tenant_id = {CURRENT}) '
                   f'WITH CHECK (tenant_id = {CURRENT})')


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f'DROP POLICY IF EXISTS {POLICY} ON "{table}"')
        op.execute(f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY')
        op.execute(f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY')

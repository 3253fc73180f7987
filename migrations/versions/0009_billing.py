"""billing: quotient familial, pointage, invoicing runs and draft lines, invoices and their lines, credits, payments, numbering counters

Revision ID: 0009_billing
Revises: 0010_pieces (merged after the pieces' migration)
Create Date: 2026-12-06 23:36:27.783874

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009_billing'
down_revision = '0010_pieces'
branch_labels = None
depends_on = None


def upgrade():

    op.create_table('billing_counter',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('regie', sa.String(length=40), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_billing_counter_tenant_id_tenant'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_counter')),
    sa.UniqueConstraint('tenant_id', 'regie', 'year', name=op.f('uq_billing_counter_tenant_id_regie_year'))
    )
    with op.batch_alter_table('billing_counter', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_billing_counter_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('billing_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('regie', sa.String(length=40), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('activity_ids', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('computed_at', sa.DateTime(), nullable=True),
    sa.Column('computations', sa.Integer(), nullable=False),
    sa.Column('total', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('families', sa.Integer(), nullable=False),
    sa.Column('previous', sa.JSON(), nullable=False),
    sa.Column('warnings', sa.JSON(), nullable=False),
    sa.Column('published_at', sa.DateTime(), nullable=True),
    sa.Column('published_by', sa.String(length=200), nullable=True),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_billing_run_tenant_id_tenant'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_run'))
    )
    with op.batch_alter_table('billing_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_billing_run_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_billing_run_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('billing_invoice',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('regie', sa.String(length=40), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('corrects_id', sa.Integer(), nullable=True),
    sa.Column('family_id', sa.Integer(), nullable=False),
    sa.Column('family_name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=True),
    sa.Column('period_end', sa.Date(), nullable=True),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('total', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['corrects_id'], ['billing_invoice.id'], name=op.f('fk_billing_invoice_corrects_id_billing_invoice'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['family_id'], ['family.id'], name=op.f('fk_billing_invoice_family_id_family'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['run_id'], ['billing_run.id'], name=op.f('fk_billing_invoice_run_id_billing_run'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_billing_invoice_tenant_id_tenant'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_invoice')),
    sa.UniqueConstraint('tenant_id', 'regie', 'number', name=op.f('uq_billing_invoice_tenant_id_regie_number')),
    sa.UniqueConstraint('tenant_id', 'regie', 'year', 'sequence', name=op.f('uq_billing_invoice_tenant_id_regie_year_sequence')),
    sa.UniqueConstraint('tenant_id', 'run_id', 'family_id', name=op.f('uq_billing_invoice_tenant_id_run_id_family_id'))
    )
    with op.batch_alter_table('billing_invoice', schema=None) as batch_op:
        batch_op.create_index('ix_billing_invoice_family', ['tenant_id', 'family_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_billing_invoice_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('billing_credit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('regie', sa.String(length=40), nullable=False),
    sa.Column('family_id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['family_id'], ['family.id'], name=op.f('fk_billing_credit_family_id_family'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['source_id'], ['billing_invoice.id'], name=op.f('fk_billing_credit_source_id_billing_invoice'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_billing_credit_tenant_id_tenant'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_credit'))
    )
    with op.batch_alter_table('billing_credit', schema=None) as batch_op:
        batch_op.create_index('ix_billing_credit_family', ['tenant_id', 'family_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_billing_credit_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('billing_draft_line',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('family_id', sa.Integer(), nullable=False),
    sa.Column('child_id', sa.Integer(), nullable=True),
    sa.Column('child_name', sa.String(length=200), nullable=False),
    sa.Column('activity_id', sa.Integer(), nullable=True),
    sa.Column('activity_name', sa.String(length=200), nullable=False),
    sa.Column('day', sa.Date(), nullable=True),
    sa.Column('unit', sa.String(length=200), nullable=False),
    sa.Column('quantity', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('unit_price', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('bracket', sa.String(length=100), nullable=False),
    sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('meal', sa.Boolean(), nullable=False),
    sa.Column('childcare', sa.Boolean(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('slot_id', sa.Integer(), nullable=True),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['activity_id'], ['activity.id'], name=op.f('fk_billing_draft_line_activity_id_activity'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['child_id'], ['child.id'], name=op.f('fk_billing_draft_line_child_id_child'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['family_id'], ['family.id'], name=op.f('fk_billing_draft_line_family_id_family'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['billing_run.id'], name=op.f('fk_billing_draft_line_run_id_billing_run'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_billing_draft_line_tenant_id_tenant'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_draft_line'))
    )
    with op.batch_alter_table('billing_draft_line', schema=None) as batch_op:
        batch_op.create_index('ix_billing_draft_line_run', ['tenant_id', 'run_id', 'family_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_billing_draft_line_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('billing_invoice_line',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.Integer(), nullable=False),
    sa.Column('child_id', sa.Integer(), nullable=True),
    sa.Column('child_name', sa.String(length=200), nullable=False),
    sa.Column('activity_id', sa.Integer(), nullable=True),
    sa.Column('activity_name', sa.String(length=200), nullable=False),
    sa.Column('day', sa.Date(), nullable=True),
    sa.Column('unit', sa.String(length=200), nullable=False),
    sa.Column('quantity', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('unit_price', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('bracket', sa.String(length=100), nullable=False),
    sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('meal', sa.Boolean(), nullable=False),
    sa.Column('childcare', sa.Boolean(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('slot_id', sa.Integer(), nullable=True),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['activity_id'], ['activity.id'], name=op.f('fk_billing_invoice_line_activity_id_activity'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['child_id'], ['child.id'], name=op.f('fk_billing_invoice_line_child_id_child'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['invoice_id'], ['billing_invoice.id'], name=op.f('fk_billing_invoice_line_invoice_id_billing_invoice'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_billing_invoice_line_tenant_id_tenant'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_invoice_line'))
    )
    with op.batch_alter_table('billing_invoice_line', schema=None) as batch_op:
        batch_op.create_index('ix_billing_invoice_line_invoice', ['tenant_id', 'invoice_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_billing_invoice_line_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('billing_payment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('paid_on', sa.Date(), nullable=False),
    sa.Column('method', sa.String(length=20), nullable=False),
    sa.Column('reference', sa.String(length=100), nullable=False),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.Column('recorded_by', sa.String(length=200), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['invoice_id'], ['billing_invoice.id'], name=op.f('fk_billing_payment_invoice_id_billing_invoice'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_billing_payment_tenant_id_tenant'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_payment'))
    )
    with op.batch_alter_table('billing_payment', schema=None) as batch_op:
        batch_op.create_index('ix_billing_payment_invoice', ['tenant_id', 'invoice_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_billing_payment_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('billing_attendance',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('child_id', sa.Integer(), nullable=False),
    sa.Column('slot_id', sa.Integer(), nullable=False),
    sa.Column('activity_id', sa.Integer(), nullable=False),
    sa.Column('family_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.Column('recorded_by', sa.String(length=200), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['activity_id'], ['activity.id'], name=op.f('fk_billing_attendance_activity_id_activity'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['child_id'], ['child.id'], name=op.f('fk_billing_attendance_child_id_child'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['family_id'], ['family.id'], name=op.f('fk_billing_attendance_family_id_family'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['slot_id'], ['slot.id'], name=op.f('fk_billing_attendance_slot_id_slot'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_billing_attendance_tenant_id_tenant'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_attendance')),
    sa.UniqueConstraint('tenant_id', 'child_id', 'slot_id', 'day', name=op.f('uq_billing_attendance_tenant_id_child_id_slot_id_day'))
    )
    with op.batch_alter_table('billing_attendance', schema=None) as batch_op:
        batch_op.create_index('ix_billing_attendance_day', ['tenant_id', 'activity_id', 'day'], unique=False)
        batch_op.create_index(batch_op.f('ix_billing_attendance_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('billing_credit_use',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('credit_id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['credit_id'], ['billing_credit.id'], name=op.f('fk_billing_credit_use_credit_id_billing_credit'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['invoice_id'], ['billing_invoice.id'], name=op.f('fk_billing_credit_use_invoice_id_billing_invoice'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_billing_credit_use_tenant_id_tenant'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_credit_use'))
    )
    with op.batch_alter_table('billing_credit_use', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_billing_credit_use_credit_id'), ['credit_id'], unique=False)
        batch_op.create_index('ix_billing_credit_use_invoice', ['tenant_id', 'invoice_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_billing_credit_use_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('billing_quotient',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('family_id', sa.Integer(), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.Column('recorded_by', sa.String(length=200), nullable=False),
    sa.Column('change_id', sa.Integer(), nullable=True),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['change_id'], ['family_change.id'], name=op.f('fk_billing_quotient_change_id_family_change'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['family_id'], ['family.id'], name=op.f('fk_billing_quotient_family_id_family'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_billing_quotient_tenant_id_tenant'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_quotient'))
    )
    with op.batch_alter_table('billing_quotient', schema=None) as batch_op:
        batch_op.create_index('ix_billing_quotient_family', ['tenant_id', 'family_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_billing_quotient_tenant_id'), ['tenant_id'], unique=False)




def downgrade():

    with op.batch_alter_table('billing_quotient', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_quotient_tenant_id'))
        batch_op.drop_index('ix_billing_quotient_family')

    op.drop_table('billing_quotient')
    with op.batch_alter_table('billing_credit_use', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_credit_use_tenant_id'))
        batch_op.drop_index('ix_billing_credit_use_invoice')
        batch_op.drop_index(batch_op.f('ix_billing_credit_use_credit_id'))

    op.drop_table('billing_credit_use')
    with op.batch_alter_table('billing_attendance', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_attendance_tenant_id'))
        batch_op.drop_index('ix_billing_attendance_day')

    op.drop_table('billing_attendance')
    with op.batch_alter_table('billing_payment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_payment_tenant_id'))
        batch_op.drop_index('ix_billing_payment_invoice')

    op.drop_table('billing_payment')
    with op.batch_alter_table('billing_invoice_line', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_invoice_line_tenant_id'))
        batch_op.drop_index('ix_billing_invoice_line_invoice')

    op.drop_table('billing_invoice_line')
    with op.batch_alter_table('billing_draft_line', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_draft_line_tenant_id'))
        batch_op.drop_index('ix_billing_draft_line_run')

    op.drop_table('billing_draft_line')
    with op.batch_alter_table('billing_credit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_credit_tenant_id'))
        batch_op.drop_index('ix_billing_credit_family')

    op.drop_table('billing_credit')
    with op.batch_alter_table('billing_invoice', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_invoice_tenant_id'))
        batch_op.drop_index('ix_billing_invoice_family')

    op.drop_table('billing_invoice')
    with op.batch_alter_table('billing_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_run_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_billing_run_status'))

    op.drop_table('billing_run')
    with op.batch_alter_table('billing_counter', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_counter_tenant_id'))

    op.drop_table('billing_counter')


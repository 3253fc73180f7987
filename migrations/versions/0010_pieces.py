"""pieces: the commune's piece types, the families' pieces, agents' reads; the families' calendar feeds

Revision ID: 0010_pieces
Revises: 0008_activities_version
Create Date: 2026-12-06 23:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010_pieces'
down_revision = '0008_activities_version'
branch_labels = None
depends_on = None


def _tenant_fk(table):
    return sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f(f'fk_{table}_tenant_id_tenant'),
                                   ondelete='RESTRICT')


def upgrade():
    op.create_table('piece_type',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('label_en', sa.String(length=200), nullable=True),
    sa.Column('description', sa.String(length=500), nullable=True),
    sa.Column('concerns', sa.String(length=10), nullable=False),
    sa.Column('validity', sa.String(length=16), nullable=False),
    sa.Column('validity_months', sa.Integer(), nullable=True),
    sa.Column('required_for', sa.JSON(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    _tenant_fk('piece_type'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_piece_type')),
    sa.UniqueConstraint('tenant_id', 'code', name=op.f('uq_piece_type_tenant_id_code'))
    )
    with op.batch_alter_table('piece_type', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_piece_type_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('piece',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('family_id', sa.Integer(), nullable=False),
    sa.Column('child_id', sa.Integer(), nullable=True),
    sa.Column('type_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('storage_key', sa.String(length=200), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('content_type', sa.String(length=40), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('uploaded_at', sa.DateTime(), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
    sa.Column('uploaded_by', sa.String(length=200), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('decided_by', sa.String(length=200), nullable=True),
    sa.Column('valid_until', sa.Date(), nullable=True),
    sa.Column('motif', sa.Text(), nullable=True),
    sa.Column('expiry_notified_at', sa.DateTime(), nullable=True),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['child_id'], ['child.id'], name=op.f('fk_piece_child_id_child'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['family_id'], ['family.id'], name=op.f('fk_piece_family_id_family'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['type_id'], ['piece_type.id'], name=op.f('fk_piece_type_id_piece_type'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['user_account.id'], name=op.f('fk_piece_uploaded_by_id_user_account'), ondelete='SET NULL'),
    _tenant_fk('piece'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_piece')),
    sa.UniqueConstraint('tenant_id', 'storage_key', name=op.f('uq_piece_tenant_id_storage_key'))
    )
    with op.batch_alter_table('piece', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_piece_child_id'), ['child_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_piece_family_id'), ['family_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_piece_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_piece_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_piece_type_id'), ['type_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_piece_valid_until'), ['valid_until'], unique=False)

    op.create_table('piece_access_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('agent_name', sa.String(length=200), nullable=False),
    sa.Column('piece_id', sa.Integer(), nullable=True),
    sa.Column('family_id', sa.Integer(), nullable=False),
    sa.Column('child_id', sa.Integer(), nullable=True),
    sa.Column('piece_label', sa.String(length=300), nullable=False),
    sa.Column('context', sa.String(length=40), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['user_account.id'], name=op.f('fk_piece_access_log_agent_id_user_account'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['child_id'], ['child.id'], name=op.f('fk_piece_access_log_child_id_child'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['family_id'], ['family.id'], name=op.f('fk_piece_access_log_family_id_family'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['piece_id'], ['piece.id'], name=op.f('fk_piece_access_log_piece_id_piece'), ondelete='SET NULL'),
    _tenant_fk('piece_access_log'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_piece_access_log'))
    )
    with op.batch_alter_table('piece_access_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_piece_access_log_agent_id'), ['agent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_piece_access_log_family_id'), ['family_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_piece_access_log_piece_id'), ['piece_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_piece_access_log_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('calendar_feed',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('family_id', sa.Integer(), nullable=False),
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('last_read_at', sa.DateTime(), nullable=True),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_calendar_feed_created_by_id_user_account'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['family_id'], ['family.id'], name=op.f('fk_calendar_feed_family_id_family'), ondelete='CASCADE'),
    _tenant_fk('calendar_feed'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_feed')),
    sa.UniqueConstraint('tenant_id', 'nonce', name=op.f('uq_calendar_feed_tenant_id_nonce'))
    )
    with op.batch_alter_table('calendar_feed', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calendar_feed_family_id'), ['family_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_calendar_feed_tenant_id'), ['tenant_id'], unique=False)


def downgrade():
    op.drop_table('calendar_feed')
    op.drop_table('piece_access_log')
    op.drop_table('piece')
    op.drop_table('piece_type')

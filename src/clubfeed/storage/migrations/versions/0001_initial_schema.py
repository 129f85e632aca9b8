"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "appointment_categories",
        sa.Column("business_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("modified_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("extra", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("location_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("business_id", "id", name=op.f("pk_appointment_categories")),
        sa.UniqueConstraint(
            "business_id",
            "change_seq",
            name=op.f("uq_appointment_categories_business_id_change_seq"),
        ),
    )
    with op.batch_alter_table("appointment_categories", schema=None) as batch_op:
        batch_op.create_index(
            "ix_appointment_categories_business_id_location_id_change_seq",
            ["business_id", "location_id", "change_seq"],
            unique=False,
        )
        batch_op.create_index(
            "ix_appointment_categories_business_id_modified_at_change_seq",
            ["business_id", "modified_at", "change_seq"],
            unique=False,
        )

    op.create_table(
        "appointments",
        sa.Column("business_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("modified_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("extra", sa.Text(), nullable=False),
        sa.Column("appointment_category_id", sa.Text(), nullable=True),
        sa.Column("location_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("membership_id", sa.Text(), nullable=True),
        sa.Column("appointment_at", sa.BigInteger(), nullable=False),
        sa.Column("checked_in_at", sa.BigInteger(), nullable=True),
        sa.Column("attended", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("business_id", "id", name=op.f("pk_appointments")),
        sa.UniqueConstraint(
            "business_id", "change_seq", name=op.f("uq_appointments_business_id_change_seq")
        ),
    )
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_appointments_business_id_location_id_change_seq",
            ["business_id", "location_id", "change_seq"],
            unique=False,
        )
        batch_op.create_index(
            "ix_appointments_business_id_modified_at_change_seq",
            ["business_id", "modified_at", "change_seq"],
            unique=False,
        )
        batch_op.create_index(
            "ix_appointments_business_id_user_id_change_seq",
            ["business_id", "user_id", "change_seq"],
            unique=False,
        )

    op.create_table(
        "businesses",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("shared_secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("ingest_key_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_businesses")),
        sa.UniqueConstraint("ingest_key_hash", name=op.f("uq_businesses_ingest_key_hash")),
        sa.UniqueConstraint("shared_secret_hash", name=op.f("uq_businesses_shared_secret_hash")),
    )
    op.create_table(
        "change_clock",
        sa.Column("business_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("last_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("business_id", name=op.f("pk_change_clock")),
    )
    op.create_table(
        "checkins",
        sa.Column("business_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("modified_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("extra", sa.Text(), nullable=False),
        sa.Column("checked_in_at", sa.BigInteger(), nullable=False),
        sa.Column("location_id", sa.Text(), nullable=False),
        sa.Column("membership_id", sa.Text(), nullable=True),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("business_id", "id", name=op.f("pk_checkins")),
        sa.UniqueConstraint(
            "business_id", "change_seq", name=op.f("uq_checkins_business_id_change_seq")
        ),
    )
    with op.batch_alter_table("checkins", schema=None) as batch_op:
        batch_op.create_index(
            "ix_checkins_business_id_location_id_change_seq",
            ["business_id", "location_id", "change_seq"],
            unique=False,
        )
        batch_op.create_index(
            "ix_checkins_business_id_modified_at_change_seq",
            ["business_id", "modified_at", "change_seq"],
            unique=False,
        )
        batch_op.create_index(
            "ix_checkins_business_id_user_id_change_seq",
            ["business_id", "user_id", "change_seq"],
            unique=False,
        )

    op.create_table(
        "class_attendances",
        sa.Column("business_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("modified_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("extra", sa.Text(), nullable=False),
        sa.Column("class_id", sa.Text(), nullable=False),
        sa.Column("class_name", sa.Text(), nullable=True),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("membership_id", sa.Text(), nullable=True),
        sa.Column("location_id", sa.Text(), nullable=False),
        sa.Column("class_at", sa.BigInteger(), nullable=False),
        sa.Column("checked_in_at", sa.BigInteger(), nullable=True),
        sa.Column("attended", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("business_id", "id", name=op.f("pk_class_attendances")),
        sa.UniqueConstraint(
            "business_id", "change_seq", name=op.f("uq_class_attendances_business_id_change_seq")
        ),
    )
    with op.batch_alter_table("class_attendances", schema=None) as batch_op:
        batch_op.create_index(
            "ix_class_attendances_business_id_location_id_change_seq",
            ["business_id", "location_id", "change_seq"],
            unique=False,
        )
        batch_op.create_index(
            "ix_class_attendances_business_id_modified_at_change_seq",
            ["business_id", "modified_at", "change_seq"],
            unique=False,
        )
        batch_op.create_index(
            "ix_class_attendances_business_id_user_id_change_seq",
            ["business_id", "user_id", "change_seq"],
            unique=False,
        )

    op.create_table(
        "classes",
        sa.Column("business_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("modified_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("extra", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("location_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("business_id", "id", name=op.f("pk_classes")),
        sa.UniqueConstraint(
            "business_id", "change_seq", name=op.f("uq_classes_business_id_change_seq")
        ),
    )
    with op.batch_alter_table("classes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_classes_business_id_location_id_change_seq",
            ["business_id", "location_id", "change_seq"],
            unique=False,
        )
        batch_op.create_index(
            "ix_classes_business_id_modified_at_change_seq",
            ["business_id", "modified_at", "change_seq"],
            unique=False,
        )

    op.create_table(
        "idempotency_keys",
        sa.Column("business_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("business_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_table(
        "integrators",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integrators")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_integrators_key_hash")),
    )
    op.create_table(
        "locations",
        sa.Column("business_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("modified_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("extra", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("street_address", sa.Text(), nullable=True),
        sa.Column("city", sa.Text(), nullable=True),
        sa.Column("state", sa.Text(), nullable=True),
        sa.Column("zip_code", sa.Text(), nullable=True),
        sa.Column("country", sa.Text(), nullable=True),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("business_id", "id", name=op.f("pk_locations")),
        sa.UniqueConstraint(
            "business_id", "change_seq", name=op.f("uq_locations_business_id_change_seq")
        ),
    )
    with op.batch_alter_table("locations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_locations_business_id_modified_at_change_seq",
            ["business_id", "modified_at", "change_seq"],
            unique=False,
        )

    op.create_table(
        "memberships",
        sa.Column("business_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("modified_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("extra", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("membership_type", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("join_date", sa.Date(), nullable=False),
        sa.Column("cancellation_date", sa.Date(), nullable=True),
        sa.Column("home_location_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("business_id", "id", name=op.f("pk_memberships")),
        sa.UniqueConstraint(
            "business_id", "change_seq", name=op.f("uq_memberships_business_id_change_seq")
        ),
    )
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.create_index(
            "ix_memberships_business_id_home_location_id_change_seq",
            ["business_id", "home_location_id", "change_seq"],
            unique=False,
        )
        batch_op.create_index(
            "ix_memberships_business_id_modified_at_change_seq",
            ["business_id", "modified_at", "change_seq"],
            unique=False,
        )
        batch_op.create_index(
            "ix_memberships_business_id_user_id_change_seq",
            ["business_id", "user_id", "change_seq"],
            unique=False,
        )

    op.create_table(
        "referrals",
        sa.Column("business_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("modified_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("extra", sa.Text(), nullable=False),
        sa.Column("referrer_user_id", sa.Text(), nullable=False),
        sa.Column("referee_user_id", sa.Text(), nullable=True),
        sa.Column("referee_email", sa.Text(), nullable=True),
        sa.Column("referred_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("business_id", "id", name=op.f("pk_referrals")),
        sa.UniqueConstraint(
            "business_id", "change_seq", name=op.f("uq_referrals_business_id_change_seq")
        ),
    )
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_referrals_business_id_modified_at_change_seq",
            ["business_id", "modified_at", "change_seq"],
            unique=False,
        )
        batch_op.create_index(
            "ix_referrals_business_id_referrer_user_id_change_seq",
            ["business_id", "referrer_user_id", "change_seq"],
            unique=False,
        )

    op.create_table(
        "sales",
        sa.Column("business_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("modified_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("extra", sa.Text(), nullable=False),
        sa.Column("sale_id", sa.Text(), nullable=False),
        sa.Column("category_id", sa.Text(), nullable=True),
        sa.Column("category_name", sa.Text(), nullable=True),
        sa.Column("subcategory_id", sa.Text(), nullable=True),
        sa.Column("subcategory_name", sa.Text(), nullable=True),
        sa.Column("payment_type", sa.Text(), nullable=True),
        sa.Column("pre_tax_price", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=True),
        sa.Column("membership_id", sa.Text(), nullable=True),
        sa.Column("location_id", sa.Text(), nullable=False),
        sa.Column("sold_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("business_id", "id", name=op.f("pk_sales")),
        sa.UniqueConstraint(
            "business_id", "change_seq", name=op.f("uq_sales_business_id_change_seq")
        ),
    )
    with op.batch_alter_table("sales", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sales_business_id_location_id_change_seq",
            ["business_id", "location_id", "change_seq"],
            unique=False,
        )
        batch_op.create_index(
            "ix_sales_business_id_modified_at_change_seq",
            ["business_id", "modified_at", "change_seq"],
            unique=False,
        )
        batch_op.create_index(
            "ix_sales_business_id_user_id_change_seq",
            ["business_id", "user_id", "change_seq"],
            unique=False,
        )

    op.create_table(
        "sales_categories",
        sa.Column("business_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("modified_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("extra", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("location_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("business_id", "id", name=op.f("pk_sales_categories")),
        sa.UniqueConstraint(
            "business_id", "change_seq", name=op.f("uq_sales_categories_business_id_change_seq")
        ),
    )
    with op.batch_alter_table("sales_categories", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sales_categories_business_id_location_id_change_seq",
            ["business_id", "location_id", "change_seq"],
            unique=False,
        )
        batch_op.create_index(
            "ix_sales_categories_business_id_modified_at_change_seq",
            ["business_id", "modified_at", "change_seq"],
            unique=False,
        )

    op.create_table(
        "sales_subcategories",
        sa.Column("business_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("modified_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("extra", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("category_id", sa.Text(), nullable=False),
        sa.Column("location_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("business_id", "id", name=op.f("pk_sales_subcategories")),
        sa.UniqueConstraint(
            "business_id", "change_seq", name=op.f("uq_sales_subcategories_business_id_change_seq")
        ),
    )
    with op.batch_alter_table("sales_subcategories", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sales_subcategories_business_id_location_id_change_seq",
            ["business_id", "location_id", "change_seq"],
            unique=False,
        )
        batch_op.create_index(
            "ix_sales_subcategories_business_id_modified_at_change_seq",
            ["business_id", "modified_at", "change_seq"],
            unique=False,
        )

    op.create_table(
        "server_secrets",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_server_secrets")),
    )
    op.create_table(
        "users",
        sa.Column("business_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("modified_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("extra", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("first_name", sa.Text(), nullable=False),
        sa.Column("last_name", sa.Text(), nullable=False),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("is_child", sa.Boolean(), nullable=False),
        sa.Column("parent_id", sa.Text(), nullable=True),
        sa.Column("home_location_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("business_id", "id", name=op.f("pk_users")),
        sa.UniqueConstraint(
            "business_id", "change_seq", name=op.f("uq_users_business_id_change_seq")
        ),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(
            "ix_users_business_id_home_location_id_change_seq",
            ["business_id", "home_location_id", "change_seq"],
            unique=False,
        )
        batch_op.create_index(
            "ix_users_business_id_modified_at_change_seq",
            ["business_id", "modified_at", "change_seq"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("ix_users_business_id_modified_at_change_seq")
        batch_op.drop_index("ix_users_business_id_home_location_id_change_seq")

    op.drop_table("users")
    op.drop_table("server_secrets")
    with op.batch_alter_table("sales_subcategories", schema=None) as batch_op:
        batch_op.drop_index("ix_sales_subcategories_business_id_modified_at_change_seq")
        batch_op.drop_index("ix_sales_subcategories_business_id_location_id_change_seq")

    op.drop_table("sales_subcategories")
    with op.batch_alter_table("sales_categories", schema=None) as batch_op:
        batch_op.drop_index("ix_sales_categories_business_id_modified_at_change_seq")
        batch_op.drop_index("ix_sales_categories_business_id_location_id_change_seq")

    op.drop_table("sales_categories")
    with op.batch_alter_table("sales", schema=None) as batch_op:
        batch_op.drop_index("ix_sales_business_id_user_id_change_seq")
        batch_op.drop_index("ix_sales_business_id_modified_at_change_seq")
        batch_op.drop_index("ix_sales_business_id_location_id_change_seq")

    op.drop_table("sales")
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_index("ix_referrals_business_id_referrer_user_id_change_seq")
        batch_op.drop_index("ix_referrals_business_id_modified_at_change_seq")

    op.drop_table("referrals")
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_index("ix_memberships_business_id_user_id_change_seq")
        batch_op.drop_index("ix_memberships_business_id_modified_at_change_seq")
        batch_op.drop_index("ix_memberships_business_id_home_location_id_change_seq")

    op.drop_table("memberships")
    with op.batch_alter_table("locations", schema=None) as batch_op:
        batch_op.drop_index("ix_locations_business_id_modified_at_change_seq")

    op.drop_table("locations")
    op.drop_table("integrators")
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("classes", schema=None) as batch_op:
        batch_op.drop_index("ix_classes_business_id_modified_at_change_seq")
        batch_op.drop_index("ix_classes_business_id_location_id_change_seq")

    op.drop_table("classes")
    with op.batch_alter_table("class_attendances", schema=None) as batch_op:
        batch_op.drop_index("ix_class_attendances_business_id_user_id_change_seq")
        batch_op.drop_index("ix_class_attendances_business_id_modified_at_change_seq")
        batch_op.drop_index("ix_class_attendances_business_id_location_id_change_seq")

    op.drop_table("class_attendances")
    with op.batch_alter_table("checkins", schema=None) as batch_op:
        batch_op.drop_index("ix_checkins_business_id_user_id_change_seq")
        batch_op.drop_index("ix_checkins_business_id_modified_at_change_seq")
        batch_op.drop_index("ix_checkins_business_id_location_id_change_seq")

    op.drop_table("checkins")
    op.drop_table("change_clock")
    op.drop_table("businesses")
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_index("ix_appointments_business_id_user_id_change_seq")
        batch_op.drop_index("ix_appointments_business_id_modified_at_change_seq")
        batch_op.drop_index("ix_appointments_business_id_location_id_change_seq")

    op.drop_table("appointments")
    with op.batch_alter_table("appointment_categories", schema=None) as batch_op:
        batch_op.drop_index("ix_appointment_categories_business_id_modified_at_change_seq")
        batch_op.drop_index("ix_appointment_categories_business_id_location_id_change_seq")

    op.drop_table("appointment_categories")

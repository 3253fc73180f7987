"""Families and their children."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, Date, ForeignKey, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.clock import utcnow
from extensions import db
from tenants.scoping import TenantScoped

if TYPE_CHECKING:  # relationships name their targets by string: the mapper resolves them once all are mapped
    from core.models.accounts import User
    from core.models.activities import Inscription


class Family(TenantScoped, db.Model):
    __tablename__ = "family"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resident: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # lists' priority

    children: Mapped[list[Child]] = relationship(
        back_populates="family", order_by="Child.birth_date", cascade="all, delete-orphan"
    )
    members: Mapped[list[User]] = relationship(back_populates="family")


class Child(TenantScoped, db.Model):
    __tablename__ = "child"

    id: Mapped[int] = mapped_column(primary_key=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="CASCADE"), index=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    birth_date: Mapped[date] = mapped_column(Date)
    school: Mapped[str | None] = mapped_column(String(200))
    class_name: Mapped[str | None] = mapped_column(String(100))

    family: Mapped[Family] = relationship(back_populates="children")
    # read-only: loaded with the child where a page or a tick needs them in the same query
    inscriptions: Mapped[list[Inscription]] = relationship(viewonly=True)

    def age_on(self, day: date) -> int:
        years = day.year - self.birth_date.year
        if (day.month, day.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return years

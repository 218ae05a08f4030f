"""A one-time sign-in link, kept in the app's primary database."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from solidstack import current_app
from solidstack.db import Database, connect

#: How long an emailed link stays valid.
LIFETIME = 15 * 60


def primary() -> Database:
    return connect(current_app().database("primary"))


@dataclass(frozen=True)
class MagicLink:
    id: int
    token: str
    email: str
    expires_at: float
    used_at: float | None
    created_at: float

    @classmethod
    def create(cls, email: str, *, lifetime: float = LIFETIME, now: float | None = None) -> MagicLink:
        now = time.time() if now is None else now
        token = secrets.token_urlsafe(32)
        with primary().transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO magic_links (token, email, expires_at, created_at) VALUES (?, ?, ?, ?)",
                (token, email, now + lifetime, now),
            )
            link_id = cursor.lastrowid
        return cls(int(link_id or 0), token, email, now + lifetime, None, now)

    @classmethod
    def find_by_token(cls, token: str) -> MagicLink | None:
        row = primary().query_one("SELECT * FROM magic_links WHERE token = ?", (token,))
        return cls(**dict(row)) if row else None

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at

    @classmethod
    def cleanup(cls, now: float | None = None) -> int:
        """Delete links that have expired; returns how many were deleted."""
        now = time.time() if now is None else now
        with primary().transaction() as conn:
            return conn.execute("DELETE FROM magic_links WHERE expires_at <= ?", (now,)).rowcount

    @classmethod
    def count(cls) -> int:
        row = primary().query_one("SELECT COUNT(*) FROM magic_links")
        return int(row[0]) if row else 0

"""A signed-in browser, kept in the app's primary database so that signing out ends it everywhere.

The signed session cookie alone cannot be revoked: a copy taken before sign-out would keep working for its
whole ``max_age``. So the cookie carries a random token, and a request is signed in only while the row with
that token's digest exists and has not expired.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from .magic_link import primary, sql

#: As long as the session cookie (``max_age`` of the SessionMiddleware).
LIFETIME = 14 * 24 * 3600


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    id: int
    email: str
    created_at: float
    expires_at: float

    @classmethod
    def start(cls, email: str, *, now: float | None = None) -> tuple[Session, str]:
        """A new session for ``email``; returns it and the token to put in the cookie (not stored)."""
        now = time.time() if now is None else now
        token = secrets.token_urlsafe(32)
        with primary().transaction() as conn:
            session_id = conn.execute(
                sql("INSERT INTO sessions (token_digest, email, created_at, expires_at) VALUES (?, ?, ?, ?) "
                    "RETURNING id"),
                (_digest(token), email, now, now + LIFETIME),
            ).fetchone()[0]
        return cls(int(session_id), email, now, now + LIFETIME), token

    @classmethod
    def find_by_token(cls, token: str, *, now: float | None = None) -> Session | None:
        """The live session of a cookie's token; ``None`` once it was ended or has expired."""
        now = time.time() if now is None else now
        row = primary().query_one(
            sql("SELECT id, email, created_at, expires_at FROM sessions WHERE token_digest = ? AND expires_at > ?"),
            (_digest(token), now),
        )
        return cls(**dict(row)) if row else None

    @classmethod
    def end(cls, token: str) -> bool:
        """Sign out: delete the session of ``token``. ``True`` when there was one."""
        with primary().transaction() as conn:
            return conn.execute(sql("DELETE FROM sessions WHERE token_digest = ?"), (_digest(token),)).rowcount > 0

    @classmethod
    def cleanup(cls, now: float | None = None) -> int:
        """Delete expired sessions; returns how many."""
        now = time.time() if now is None else now
        with primary().transaction() as conn:
            return conn.execute(sql("DELETE FROM sessions WHERE expires_at <= ?"), (now,)).rowcount

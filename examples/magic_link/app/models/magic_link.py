"""A one-time sign-in link, kept in the app's primary database."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from solidstack import current_app
from solidstack.db import Database, connect

#: How long an emailed link stays valid.
LIFETIME = 15 * 60
#: What ``secrets.token_urlsafe(32)`` makes; anything else is refused before touching the database.
TOKEN_FORMAT = re.compile(r"[A-Za-z0-9_-]{43}")

Redemption = Literal["signed_in", "used", "expired", "invalid"]


def primary() -> Database:
    return connect(current_app().database("primary"))


def sql(text: str) -> str:
    """``text`` (written with ``?`` placeholders) in the primary database's driver's style: the same models run
    on SQLite and PostgreSQL."""
    return primary().statement(text)


@dataclass(frozen=True)
class MagicLink:
    id: int
    token: str
    email: str
    expires_at: float
    used_at: float | None
    created_at: float
    sent_at: float | None = None

    @classmethod
    def create(cls, email: str, *, lifetime: float = LIFETIME, now: float | None = None) -> MagicLink:
        now = time.time() if now is None else now
        token = secrets.token_urlsafe(32)
        with primary().transaction() as conn:
            link_id = conn.execute(
                sql("INSERT INTO magic_links (token, email, expires_at, created_at) VALUES (?, ?, ?, ?) "
                    "RETURNING id"),
                (token, email, now + lifetime, now),
            ).fetchone()[0]
        return cls(int(link_id), token, email, now + lifetime, None, now)

    @classmethod
    def find(cls, link_id: int) -> MagicLink | None:
        row = primary().query_one(sql("SELECT * FROM magic_links WHERE id = ?"), (link_id,))
        return cls(**dict(row)) if row else None

    @classmethod
    def find_by_token(cls, token: str) -> MagicLink | None:
        if not TOKEN_FORMAT.fullmatch(token):
            return None
        row = primary().query_one(sql("SELECT * FROM magic_links WHERE token = ?"), (token,))
        return cls(**dict(row)) if row else None

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at

    @property
    def stream(self) -> str:
        """The cable stream the "check your inbox" page of this link listens on."""
        return self.stream_for(self.id)

    @staticmethod
    def stream_for(link_id: int) -> str:
        return f"magic_link:{link_id}"

    def mark_sent(self, now: float | None = None) -> MagicLink:
        now = time.time() if now is None else now
        with primary().transaction() as conn:
            conn.execute(sql("UPDATE magic_links SET sent_at = ? WHERE id = ?"), (now, self.id))
        return MagicLink(**{**self.__dict__, "sent_at": now})

    @classmethod
    def check(cls, token: str, now: float | None = None) -> tuple[Redemption | Literal["valid"], MagicLink | None]:
        """What :meth:`redeem` would say, without using the link (``"valid"`` where it would sign in).

        Opening a link only looks: mail scanners fetch links before their reader does.
        """
        link = cls.find_by_token(token)
        if link is None:
            return "invalid", None
        if link.used_at is not None:
            return "used", link
        return ("expired" if link.expired(now) else "valid"), link

    @classmethod
    def redeem(cls, token: str, now: float | None = None) -> tuple[Redemption, MagicLink | None]:
        """Use the link once: ``("signed_in", link)`` the first time, else why not.

        The check and the mark are one UPDATE, so two clicks racing each other sign in once.
        """
        now = time.time() if now is None else now
        if not TOKEN_FORMAT.fullmatch(token):
            return "invalid", None
        with primary().transaction() as conn:
            used = conn.execute(
                sql("UPDATE magic_links SET used_at = ? WHERE token = ? AND used_at IS NULL AND expires_at > ?"),
                (now, token, now),
            ).rowcount
            row = conn.execute(sql("SELECT * FROM magic_links WHERE token = ?"), (token,)).fetchone()
        link = cls(**dict(row)) if row else None
        if link is None:
            return "invalid", None
        if used:
            return "signed_in", link
        return ("used" if link.used_at is not None else "expired"), link

    @classmethod
    def cleanup(cls, now: float | None = None) -> int:
        """Delete links that have expired or were used; returns how many were deleted."""
        now = time.time() if now is None else now
        with primary().transaction() as conn:
            return conn.execute(sql("DELETE FROM magic_links WHERE expires_at <= ? OR used_at IS NOT NULL"),
                                (now,)).rowcount

    @classmethod
    def count(cls) -> int:
        row = primary().query_one(sql("SELECT COUNT(*) FROM magic_links"))
        return int(row[0]) if row else 0

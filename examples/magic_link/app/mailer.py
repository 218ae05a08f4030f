"""Delivers email: by SMTP (``smtplib``) when ``SMTP_HOST`` is set, else as .eml files in storage/mailbox/.

Settings, from the environment as a deployment sets them: ``SMTP_HOST``, ``SMTP_PORT`` (25),
``SMTP_USERNAME`` / ``SMTP_PASSWORD`` (log in when set), ``SMTP_STARTTLS=1`` (upgrade the connection first).
In development ``bin/dev`` runs a small SMTP server (``app/smtp_sink.py``) that files what it receives in
the same mailbox, which ``/mailbox`` shows.
"""

from __future__ import annotations

import email
import email.policy
import os
import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from solidstack import current_app

SMTP_TIMEOUT = 10.0


def mailbox() -> Path:
    return current_app().root / "storage" / "mailbox"


def deliver(message: EmailMessage) -> str:
    """Send ``message``; returns where it went (for the log). Raises ``OSError`` when the server cannot be reached."""
    host = os.environ.get("SMTP_HOST")
    if host:
        port = int(os.environ.get("SMTP_PORT") or 25)
        with smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT) as smtp:
            if os.environ.get("SMTP_STARTTLS", "").lower() in {"1", "true", "yes"}:
                smtp.starttls()
            if os.environ.get("SMTP_USERNAME"):
                smtp.login(os.environ["SMTP_USERNAME"], os.environ.get("SMTP_PASSWORD", ""))
            smtp.send_message(message)
        return f"smtp://{host}:{port}"
    return str(save(bytes(message)))


def save(raw: bytes) -> Path:
    """File a raw message in the mailbox (file delivery, and what the development SMTP server receives)."""
    folder = mailbox()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{time.time_ns()}.eml"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(raw)
    tmp.rename(path)  # the mailbox page never sees half a message
    return path


@dataclass(frozen=True)
class Mail:
    """A delivered message, as the mailbox page shows it."""

    name: str
    to: str
    sender: str
    subject: str
    date: float
    body: str


def delivered(limit: int = 50) -> list[Mail]:
    """The newest messages in the mailbox first."""
    folder = mailbox()
    if not folder.is_dir():
        return []
    mails = []
    for path in sorted(folder.glob("*.eml"), reverse=True)[:limit]:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        part = message.get_body(("plain",)) if isinstance(message, EmailMessage) else None
        body = part.get_content() if part is not None else ""
        mails.append(Mail(path.stem, str(message["To"] or ""), str(message["From"] or ""),
                          str(message["Subject"] or ""), path.stat().st_mtime, body))
    return mails

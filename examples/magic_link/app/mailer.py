"""Delivers email. For now every message is written to storage/mailbox/ as an .eml file."""

from __future__ import annotations

import time
from email.message import EmailMessage
from pathlib import Path

from solidstack import current_app


def mailbox() -> Path:
    return current_app().root / "storage" / "mailbox"


def deliver(message: EmailMessage) -> Path:
    folder = mailbox()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{time.time_ns()}.eml"
    path.write_bytes(bytes(message))
    return path

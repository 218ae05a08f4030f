"""The development mail server: accepts SMTP on localhost and files every message in storage/mailbox/.

Like MailCatcher or Mailpit, but in-process with ``aiosmtpd``: the app sends real SMTP with ``smtplib``, and
``/mailbox`` shows what arrived. ``bin/dev`` runs it (``python -m app.smtp_sink``); tests start it with
:func:`start`.
"""

from __future__ import annotations

import logging
from typing import Any

from aiosmtpd.controller import Controller

from . import mailer

log = logging.getLogger("app")


class MailboxHandler:
    """aiosmtpd handler: one .eml file per message received."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        path = mailer.save(envelope.original_content or envelope.content)
        log.info("mailbox: received a message for %s (%s)", ", ".join(envelope.rcpt_tos), path.name)
        return "250 Message accepted for delivery"


def start(host: str = "127.0.0.1", port: int = 2525) -> Controller:
    """Start the server in a background thread; call ``.stop()`` on the result."""
    controller = Controller(MailboxHandler(), hostname=host, port=port)
    controller.start()
    return controller


def main() -> None:
    import argparse
    import os
    import sys
    import threading
    from pathlib import Path

    import solidstack

    parser = argparse.ArgumentParser(description="Development SMTP server filing mail in storage/mailbox/.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("SMTP_PORT") or 2525))
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)-7s %(name)s: %(message)s", stream=sys.stdout)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every connection at INFO
    solidstack.configure(Path(__file__).resolve().parent.parent, os.environ.get("SOLIDSTACK_ENV", "development"))
    controller = start(options.host, options.port)
    log.info("mailbox SMTP server on %s:%d, filing mail in %s", options.host, options.port, mailer.mailbox())
    stop = threading.Event()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()

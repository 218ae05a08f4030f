"""Wake a listener in another process the moment something is written, so polling is only the fallback.

Shared by the parts that poll a table: cable's listeners (new messages) and the queue's workers (ready jobs).
Each listener binds a Unix datagram socket in a folder named after the database file and a topic; a writer,
after its commit, sends one empty datagram to every socket in that folder. A listener blocks in ``poll`` on
its socket with the polling interval as the timeout: no CPU while idle, a few hundred microseconds from commit
to poll when busy. Everything here is best effort: a lost or refused datagram only means the next poll finds
the message, as it would without this module.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import secrets
import select
import socket
import tempfile
import threading
from pathlib import Path

log = logging.getLogger("solidstack.db")

#: Unix socket paths are limited to about 107 bytes, so the folder lives in the temp dir, not beside the file.
ROOT_VAR = "SOLIDSTACK_WAKEUP_DIR"


def wakeup_dir(database: str | os.PathLike[str], topic: str, *, root_var: str = ROOT_VAR) -> Path:
    """The folder of ``topic``'s wake-up sockets for a database file (the same in every process of the machine).

    ``root_var`` names the environment variable that may move the root away from the temp dir.
    """
    key = hashlib.blake2b(str(Path(database).resolve()).encode(), digest_size=8).hexdigest()
    root = Path(os.environ.get(root_var) or os.environ.get(ROOT_VAR) or tempfile.gettempdir())
    return root / f"solidstack-{topic}" / key


class WakeupSocket:
    """The listener's end: a bound datagram socket, waited on with a timeout."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / f"{os.getpid()}-{secrets.token_hex(4)}.sock"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        for attempt in range(3):
            folder.mkdir(parents=True, exist_ok=True)
            try:
                self._sock.bind(str(self.path))
                break
            except FileNotFoundError:  # another process removed the empty folder between mkdir and bind
                if attempt == 2:
                    self._sock.close()
                    raise
        self._sock.setblocking(False)
        self._poll = select.poll()
        self._poll.register(self._sock, select.POLLIN)
        self._pid = os.getpid()

    def wait(self, timeout: float) -> bool:
        """Block until a datagram arrives or ``timeout`` passes; True when woken. Drains queued datagrams."""
        # poll, not select: select() cannot watch a descriptor numbered 1024 or above.
        if not self._poll.poll(max(0, int(timeout * 1000 + 0.999))):
            return False
        while True:
            try:
                self._sock.recv(64)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                return True

    def wake(self) -> None:
        """Wake this socket's waiter (from another thread of the same process)."""
        _send(self.path)

    def close(self) -> None:
        self._sock.close()
        # A forked child holds a copy of the socket but the file belongs to the parent.
        if os.getpid() == self._pid:
            with contextlib.suppress(OSError):
                self.path.unlink()
            with contextlib.suppress(OSError):  # only succeeds when no other listener is left
                self.folder.rmdir()


_sender: socket.socket | None = None
_sender_lock = threading.Lock()


def _send(path: Path) -> None:
    global _sender
    sender = _sender
    if sender is None:
        with _sender_lock:
            if _sender is None:
                _sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                _sender.setblocking(False)
            sender = _sender
    try:
        sender.sendto(b"", str(path))
    except ConnectionRefusedError:
        # Nobody is bound there: the listener died without cleaning up (kill -9). Remove the stale file.
        with contextlib.suppress(OSError):
            path.unlink()
    except (BlockingIOError, FileNotFoundError, PermissionError, OSError):
        pass  # Queue full (it will wake anyway), just closed, or not ours: the poll covers it.


def notify(folder: Path) -> None:
    """Wake every listener whose wake-up folder is ``folder`` (call it after the commit it announces)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name.endswith(".sock"):
            _send(folder / name)


def _close_sender() -> None:
    """Close this process's sending socket: after a fork (the child's copy; the parent's stays open, and the
    child's lock may have been copied held) and at exit."""
    global _sender, _sender_lock
    sender, _sender = _sender, None
    _sender_lock = threading.Lock()
    if sender is not None:
        sender.close()


os.register_at_fork(after_in_child=_close_sender)
atexit.register(_close_sender)

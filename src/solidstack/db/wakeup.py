"""Wake a listener in another process the moment something is written, so polling is only the fallback.

Shared by the parts that poll a table: cable's listeners (new messages) and the queue's workers (ready jobs).
Each listener binds a Unix datagram socket in a folder named after the database file and a topic; a writer,
after its commit, sends one empty datagram to every socket in that folder. A listener blocks in ``poll`` on
its socket with the polling interval as the timeout: no CPU while idle, a few hundred microseconds from commit
to poll when busy. Everything here is best effort: a lost or refused datagram only means the next poll finds
the message, as it would without this module.

A datagram may carry data (cable puts the committed message in it, decision 0222); an empty one means only
"wake". A listener that cannot use the data (the queue's :meth:`WakeupSocket.wait`) treats any datagram as a
wake-up. Data goes through a sending socket of its own, so that datagrams queued at a slow listener, which count
against their sender's buffer, never stop the empty wake-ups to the others; a data datagram that cannot be sent
is replaced by an empty one.
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
import time
from pathlib import Path


def _queue_capacity() -> int:
    """How many datagrams a Unix socket queues before its senders get EAGAIN (Linux: ``max_dgram_qlen`` + 1)."""
    try:
        return int(Path("/proc/sys/net/unix/max_dgram_qlen").read_text()) + 1
    except (OSError, ValueError):
        return 11


#: A drain that received this many datagrams may have missed some: the queue was full, later sends were refused.
QUEUE_CAPACITY = _queue_capacity()
#: One drain reads at most this many datagrams.
MAX_DRAIN = 1000

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

    def fileno(self) -> int:
        """The socket's descriptor (an event loop may wait on it instead: then call ``receive(0, size)``)."""
        return self._sock.fileno()

    def receive(self, timeout: float, size: int) -> list[bytes] | None:
        """Block until datagrams arrive or ``timeout`` passes (None); the queued datagrams, oldest first, each
        cut to ``size`` bytes. A list of :data:`QUEUE_CAPACITY` or more may have lost some (the queue filled)."""
        if not self._poll.poll(max(0, int(timeout * 1000 + 0.999))):
            return None
        received: list[bytes] = []
        recv = self._sock.recv
        while len(received) < MAX_DRAIN:
            try:
                received.append(recv(size))
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
        return received

    def wake(self) -> None:
        """Wake this socket's waiter (from another thread of the same process)."""
        _send(str(self.path))

    def close(self) -> None:
        self._sock.close()
        # A forked child holds a copy of the socket but the file belongs to the parent.
        if os.getpid() == self._pid:
            with contextlib.suppress(OSError):
                self.path.unlink()
            with contextlib.suppress(OSError):  # only succeeds when no other listener is left
                self.folder.rmdir()


#: This process's sending sockets: [0] for empty datagrams, [1] for datagrams with data.
_senders: list[socket.socket | None] = [None, None]
_sender_lock = threading.Lock()


def _sender(index: int) -> socket.socket:
    sender = _senders[index]
    if sender is None:
        with _sender_lock:
            sender = _senders[index]
            if sender is None:
                sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sender.setblocking(False)
                _senders[index] = sender
    return sender


def _send(path: str, data: bytes = b"") -> None:
    try:
        _sender(1 if data else 0).sendto(data, path)
    except ConnectionRefusedError:
        # Nobody is bound there: the listener died without cleaning up (kill -9). Remove the stale file.
        with contextlib.suppress(OSError):
            os.unlink(path)
    except FileNotFoundError:
        pass  # just closed
    except OSError:
        # Queue or buffer full, too large, not ours. An empty datagram still wakes the listener (when its queue
        # is full it wakes anyway): the poll finds the message.
        if data:
            _send(path)


#: A folder's socket paths by its modification time (ns): a ``stat`` instead of a ``listdir`` per notify.
_listings: dict[Path, tuple[int, list[str]]] = {}
#: A listing is kept only when the folder's last change is older than this: a file system's timestamps may be
#: as coarse as a scheduler tick, and a socket bound later in the same tick would leave the time unchanged.
_SETTLED_NS = 50_000_000


def _sockets(folder: Path) -> list[str]:
    try:
        changed = os.stat(folder).st_mtime_ns
    except OSError:
        return []
    cached = _listings.get(folder)
    if cached is not None and cached[0] == changed:
        return cached[1]
    try:
        paths = [os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".sock")]
    except OSError:
        return []
    if time.time_ns() - changed > _SETTLED_NS:
        _listings[folder] = (changed, paths)
    else:
        _listings.pop(folder, None)
    return paths


def notify(folder: Path, data: bytes = b"") -> None:
    """Wake every listener whose wake-up folder is ``folder`` (call it after the commit it announces), sending
    ``data`` to each."""
    for path in _sockets(folder):
        _send(path, data)


def _close_sender() -> None:
    """Close this process's sending sockets: after a fork (the child's copies; the parent's stay open, and the
    child's lock may have been copied held) and at exit."""
    global _sender_lock
    senders = list(_senders)
    _senders[:] = [None, None]
    _sender_lock = threading.Lock()
    for sender in senders:
        if sender is not None:
            sender.close()


os.register_at_fork(after_in_child=_close_sender)
atexit.register(_close_sender)

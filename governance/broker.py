"""The embedded default broker: kombu's filesystem transport, woken by acks while it is full.

kombu's filesystem transport has no way to block until a message arrives: the worker's main
process lists the queue folder every ``polling_interval`` (10 ms here, so a job starts within
about 10 ms of being queued). While every pool slot is busy, no message could be taken anyway
(prefetch limit reached), yet kombu's loop still wakes 100 times a second. On a machine whose
cores all run the job's OpenMP threads (a HistGradientBoosting fit, a SHAP chunk's model output)
each wake-up preempts one of them, and every OpenMP region then waits for that thread: that
slowed a 100k-row fit by several percent against the same fit without a worker around.

This transport changes two things. When the channel's prefetch limit is reached, it waits on an
event that an ack or reject sets (the pool's result thread acks a finished task), for at most
``BUSY_WAIT_SECONDS``, instead of returning at once. A freed slot is polled for the next message
within microseconds, as before; a full worker wakes about twice a second instead of 100 times.
And a message file is written under a temporary name and renamed into place (see
``Channel._put``), so no consumer can read it half-written. Messages keep kombu's format and
names. No library offers this: kombu's other embedded transports (SQLAlchemy, the in-memory
one) poll the same way.

Used when ``CELERY_BROKER_URL`` is ``filesystem://`` (settings set ``CELERY_BROKER_TRANSPORT``).
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from queue import Empty
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem, virtual
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

# The longest a full worker's main loop sleeps before looking again (control commands on other
# channels and Celery's own loop checks run at least this often).
BUSY_WAIT_SECONDS = 0.5


class QoS(virtual.QoS):
    """kombu's prefetch bookkeeping, which also wakes the channel when a slot is freed."""

    def __init__(self, channel: Any, prefetch_count: int = 0) -> None:
        super().__init__(channel, prefetch_count)
        self.slot_freed = threading.Event()

    def ack(self, delivery_tag: Any) -> None:
        super().ack(delivery_tag)
        self.slot_freed.set()

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        super().reject(delivery_tag, requeue=requeue)
        self.slot_freed.set()


class Channel(filesystem.Channel):
    QoS = QoS

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        """Put a message on ``queue``: written under a name no consumer reads, then renamed.

        kombu's own ``_put`` creates the message file and only then writes it, and its ``_get``
        moves away any file with the queue's name without a lock: a consumer that looked in
        between got an empty file, lost the message and died on the JSON error (seen once in
        about a hundred SHAP reports with two workers). A rename within the folder is atomic,
        so a consumer sees the whole message or nothing.
        """
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        folder = self.data_folder_out
        partial = os.path.join(folder, f".partial-{uuid.uuid4()}.tmp")
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, os.path.join(folder, name))
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.remove(partial)
            raise ChannelError(f"Cannot add message {name!r} to {folder}") from exc

    def drain_events(self, timeout: float | None = None, callback: Any = None) -> Any:
        if self._consumers:
            qos = self.qos
            # Clear before looking, so an ack that lands between the look and the wait still wakes us.
            qos.slot_freed.clear()
            if not qos.can_consume():
                wait = BUSY_WAIT_SECONDS if timeout is None else min(timeout, BUSY_WAIT_SECONDS)
                if not qos.slot_freed.wait(wait) or not qos.can_consume():
                    raise Empty()
        return super().drain_events(timeout=timeout, callback=callback)


class Transport(filesystem.Transport):
    Channel = Channel

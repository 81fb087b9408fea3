"""The embedded default broker: kombu's filesystem transport, read safely and quiet while full.

kombu's filesystem transport has no way to block until a message arrives: the worker's main
process lists the queue folder every ``polling_interval``, even while every pool slot is busy and
no message could be taken (prefetch limit reached). On a machine whose cores all run a job's
OpenMP threads (a HistGradientBoosting fit, a SHAP chunk's model output) each wake-up preempts
one of them, and every OpenMP region then waits for that thread. And kombu's ``_put`` creates a
message file before writing it while its ``_get`` takes any file with the queue's name, unlocked,
so a consumer could take an empty file, lose the message and die on the JSON error.

This transport changes both. When the channel's prefetch limit is reached, it waits on an event
that an ack or reject sets (the pool's result thread acks a finished task), for at most
``BUSY_WAIT_SECONDS``, instead of returning at once: a freed slot is still polled for the next
message at once, but a full worker no longer wakes at the polling rate. And a message file is
written under a temporary name and renamed into place (atomic within a folder). Messages keep
kombu's format and names. No library offers this, and kombu has no public hook for it: its other
embedded transports (SQLAlchemy, the in-memory one) poll the same way.

kombu internals relied on (checked for :data:`CHECKED_KOMBU_VERSION`, the pin in requirements.txt;
``tests/governance/test_broker.py`` fails, saying what to re-check, when any of them changes):

* ``kombu.transport.filesystem.Channel._put(queue, payload, **kwargs)``, overridden here, and
  ``_get(queue)``, inherited: it takes files named ``<anything>.<queue>.msg`` from
  ``data_folder_in``, so the temporary ``.partial-*.tmp`` names are never taken;
* ``kombu.transport.virtual.Channel.drain_events(timeout=None, callback=None)``, overridden here,
  with the channel's ``_consumers`` set and its ``qos`` built from the ``QoS`` class attribute;
* ``kombu.transport.virtual.QoS``: ``__init__(channel, prefetch_count=0)``, ``ack``, ``reject``
  and ``can_consume``;
* ``kombu.transport.virtual.Transport.drain_events``, which takes ``queue.Empty`` from a channel
  as "nothing yet" and polls again.

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

# The kombu release whose internals (listed above) this module was written against and re-checked for.
CHECKED_KOMBU_VERSION = "5.7.0"

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
        between would take an empty file. A rename within the folder is atomic, so a consumer
        sees the whole message or nothing.
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
        """Deliver like kombu's channel, but while full wait for an ack instead of returning at once."""
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

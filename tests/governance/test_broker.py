"""The embedded broker transport: delivers like kombu's filesystem transport, sleeps while full."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Queue

from governance import broker


@pytest.fixture()
def connection(tmp_path: Path):  # noqa: ANN201
    folder = tmp_path / "queue"
    folder.mkdir()
    (tmp_path / "control").mkdir()
    conn = Connection(
        "filesystem://localhost", transport="governance.broker:Transport",
        transport_options={"data_folder_in": str(folder), "data_folder_out": str(folder),
                           "control_folder": str(tmp_path / "control"), "store_processed": False,
                           "polling_interval": 0.01},
    )
    yield conn
    conn.release()


def _one_of_two_delivered(conn: Connection) -> list:
    """Publish two messages to a consumer with one slot; return the received list after the first delivery."""
    # Names of their own: kombu keeps exchange bindings in process-wide state.
    name = f"jobs-{uuid.uuid4().hex}"
    exchange = Exchange(name, type="direct")
    queue = Queue(name, exchange, routing_key=name)
    channel = conn.channel()
    channel.basic_qos(prefetch_size=0, prefetch_count=1, apply_global=False)
    producer = conn.Producer(conn.channel())
    received: list = []
    consumer = conn.Consumer(queue, channel=channel, callbacks=[lambda body, message: received.append(message)])
    consumer.consume()
    for n in range(2):
        producer.publish({"n": n}, exchange=exchange, routing_key=name, declare=[queue])
    conn.drain_events(timeout=2)
    assert len(received) == 1
    return received


def test_messages_are_delivered_one_at_a_time_under_the_prefetch_limit(connection: Connection) -> None:
    received = _one_of_two_delivered(connection)
    # The slot is taken: the second message waits until the first is acknowledged.
    with pytest.raises(socket.timeout):
        connection.drain_events(timeout=0.2)
    received[0].ack()
    connection.drain_events(timeout=2)
    assert sorted(m.payload["n"] for m in received) == [0, 1]


def test_a_full_channel_does_not_poll_the_folder_and_an_ack_wakes_it(connection: Connection,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    received = _one_of_two_delivered(connection)
    listings = []
    real_get = broker.Channel._get
    monkeypatch.setattr(broker.Channel, "_get", lambda self, queue: (listings.append(queue), real_get(self, queue))[1])
    monkeypatch.setattr(broker, "BUSY_WAIT_SECONDS", 5.0)

    # Full: for 0.3 s the folder is never listed (kombu's own loop would list it ~30 times).
    with pytest.raises(socket.timeout):
        connection.drain_events(timeout=0.3)
    assert listings == []

    # An ack from another thread (as the pool's result thread does) wakes the loop at once.
    timer = threading.Timer(0.2, received[0].ack)
    started = time.monotonic()
    timer.start()
    connection.drain_events(timeout=4)
    waited = time.monotonic() - started
    assert sorted(m.payload["n"] for m in received) == [0, 1]
    assert listings, "the freed slot was filled by listing the folder"
    assert waited < 2.0, f"the ack should wake the loop well before the 5 s busy wait, took {waited:.2f}s"
    timer.join()


def test_a_message_file_appears_whole_or_not_at_all(connection: Connection, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # kombu's own _put creates "<...>.<queue>.msg" and then writes it: a consumer listing the
    # folder in between took an empty file and died on the JSON error. Here the name appears
    # only once the bytes are written.
    folder = tmp_path / "queue"
    seen_while_writing: list[list[str]] = []
    real_dumps = broker.dumps

    def dumps_and_look(payload: object) -> str:
        seen_while_writing.append(sorted(os.listdir(folder)))
        return real_dumps(payload)

    monkeypatch.setattr(broker, "dumps", dumps_and_look)
    channel = connection.channel()
    channel._put("jobs", {"n": 1})

    assert len(seen_while_writing) == 1
    assert not [name for name in seen_while_writing[0] if name.endswith(".msg")]
    [message] = os.listdir(folder)
    assert message.endswith(".jobs.msg")
    assert json.loads((folder / message).read_text()) == {"n": 1}
    assert channel._get("jobs") == {"n": 1}


# --- the kombu internals governance/broker.py relies on ------------------------------------

_RECHECK = (
    "governance/broker.py overrides kombu's filesystem Channel._put (write under a temporary name, "
    "then rename) and virtual Channel.drain_events (wait for an ack while the prefetch limit is "
    "reached). Re-read kombu/transport/filesystem.py and kombu/transport/virtual/base.py, check both "
    "still hold (see the module docstring's list), then update this test and CHECKED_KOMBU_VERSION."
)


def test_kombu_is_the_release_the_broker_was_checked_against() -> None:
    import kombu

    from tests.pins import pinned

    assert kombu.__version__ == pinned("kombu"), (
        f"kombu {kombu.__version__} is installed but requirements.txt pins {pinned('kombu')}. {_RECHECK}"
    )
    assert broker.CHECKED_KOMBU_VERSION == pinned("kombu"), (
        f"requirements.txt pins kombu {pinned('kombu')}, the broker was checked against "
        f"{broker.CHECKED_KOMBU_VERSION}. {_RECHECK}"
    )


def test_the_kombu_methods_the_broker_overrides_or_calls_keep_their_signatures() -> None:
    import inspect

    from kombu.transport import filesystem, virtual

    expected = {
        "filesystem.Channel._put": (filesystem.Channel, "_put", "(self, queue, payload, **kwargs)"),
        "filesystem.Channel._get": (filesystem.Channel, "_get", "(self, queue)"),
        "virtual.Channel.drain_events": (virtual.Channel, "drain_events", "(self, timeout=None, callback=None)"),
        "virtual.QoS.__init__": (virtual.QoS, "__init__", "(self, channel, prefetch_count=0)"),
        "virtual.QoS.ack": (virtual.QoS, "ack", "(self, delivery_tag)"),
        "virtual.QoS.reject": (virtual.QoS, "reject", "(self, delivery_tag, requeue=False)"),
        "virtual.QoS.can_consume": (virtual.QoS, "can_consume", "(self)"),
        "virtual.Transport.drain_events": (virtual.Transport, "drain_events", "(self, connection, timeout=None)"),
    }
    changed = []
    for name, (owner, attribute, signature) in expected.items():
        method = owner.__dict__.get(attribute)
        if method is None:
            changed.append(f"{name} is gone")
        elif str(inspect.signature(method)) != signature:
            changed.append(f"{name}{inspect.signature(method)} (was {signature})")
    assert not changed, f"kombu changed: {'; '.join(changed)}. {_RECHECK}"
    assert virtual.Channel.QoS is virtual.QoS, f"kombu's channel no longer builds its QoS from Channel.QoS. {_RECHECK}"


def test_a_channel_keeps_its_consumers_in_a_set_and_its_qos_is_ours(connection: Connection) -> None:
    channel = connection.channel()

    assert isinstance(getattr(channel, "_consumers", None), set), (
        f"kombu's virtual Channel no longer keeps its consumer tags in a set named _consumers. {_RECHECK}"
    )
    assert type(channel.qos) is broker.QoS, f"kombu's channel.qos is no longer built from Channel.QoS. {_RECHECK}"


def test_kombus_reader_never_takes_a_message_still_being_written(connection: Connection, tmp_path: Path) -> None:
    from queue import Empty

    (tmp_path / "queue" / f".partial-{uuid.uuid4()}.tmp").write_text('{"n": 1}')
    channel = connection.channel()

    with pytest.raises(Empty):
        channel._get("jobs")
    assert [p.name for p in (tmp_path / "queue").iterdir()][0].startswith(".partial-"), (
        f"kombu's filesystem _get took a file that is not named <...>.<queue>.msg. {_RECHECK}"
    )

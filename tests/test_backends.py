"""The limits backends alone: one contract for memory, SQLite and Redis, then each one's own."""

from __future__ import annotations

import math
import multiprocessing
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_dynpool.backends import (
    BackendError,
    Lease,
    LimitsBackend,
    SharedJobState,
    open_backend,
)
from pytest_dynpool.backends.heartbeat import LeaseKeeper
from pytest_dynpool.backends.sqlite import SqliteBackend

from .backend_processes import WAIT_SECONDS, hold_rounds, open_together
from .redis_server import RedisServer

STORES = ["memory", "sqlite", "redis"]
SHARED_STORES = ["sqlite", "redis"]


def store_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return server.url
    if kind == "sqlite":
        return f"sqlite://{tmp_path / 'limits.db'}"
    return "memory"


@pytest.fixture
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=STORES)
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, namespace: str
) -> Iterator[LimitsBackend]:
    opened = open_backend(store_url(request.param, request, tmp_path), namespace)
    yield opened
    opened.close()


def test_every_store_is_a_limits_backend(backend: LimitsBackend) -> None:
    assert isinstance(backend, LimitsBackend)


def test_acquire_up_to_the_cap_then_refuse(backend: LimitsBackend) -> None:
    first, second = backend.acquire("api", 2), backend.acquire("api", 2)
    assert first is not None
    assert second is not None
    assert first.token != second.token
    assert backend.acquire("api", 2) is None
    assert backend.in_flight("api") == 2
    backend.release(first)
    third = backend.acquire("api", 2)
    assert third is not None
    assert backend.acquire("api", 2) is None
    assert backend.peak("api") == 2
    assert backend.acquire("other", 1) is not None  # caps are per job


def test_renew_keeps_a_held_lease_and_refuses_a_released_one(backend: LimitsBackend) -> None:
    lease = backend.acquire("api", 1)
    assert lease is not None
    assert backend.renew(lease)
    backend.release(lease)
    assert not backend.renew(lease)
    backend.release(lease)  # releasing twice changes nothing
    assert backend.in_flight("api") == 0


def test_a_waiter_wakes_when_a_slot_is_released(backend: LimitsBackend) -> None:
    held = backend.acquire("api", 1)
    assert held is not None
    assert backend.acquire("api", 1) is None
    go = threading.Event()

    def release_later() -> None:
        go.wait(WAIT_SECONDS)
        backend.release(held)

    releaser = threading.Thread(target=release_later)
    releaser.start()
    go.set()
    # Released before or during the wait: either way the wait ends with True.
    assert backend.wait_for_release(["api"], WAIT_SECONDS)
    releaser.join()
    assert backend.acquire("api", 1) is not None


def test_a_wait_without_a_release_times_out(backend: LimitsBackend) -> None:
    assert backend.acquire("api", 1) is not None
    assert backend.acquire("api", 1) is None
    assert not backend.wait_for_release(["api"], 0.05)


def test_rate_tokens_come_in_a_burst_then_one_per_interval(backend: LimitsBackend) -> None:
    per_second = 1 / 60  # one a minute: no stall of this test can refill a token
    waits = [backend.take_token("slow", per_second, 3).wait for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 0.0 < waits[3] <= 60.0
    assert backend.take_token("other", per_second, 1).wait == 0.0


def test_rate_arguments_are_checked(backend: LimitsBackend) -> None:
    with pytest.raises(ValueError, match="per_second > 0"):
        backend.take_token("api", 0.0, 1)


def test_shared_adaptive_state(backend: LimitsBackend) -> None:
    assert backend.read_state("api") == SharedJobState(None, 0.0)
    backend.set_effective_cap("api", 3)
    backend.pause("api", 600.0)
    backend.pause("api", 1.0)  # a shorter pause never cuts a longer one
    state = backend.read_state("api")
    assert state.effective_cap == 3
    assert 1.0 < state.pause_seconds <= 600.0


@pytest.mark.parametrize("kind", SHARED_STORES)
def test_two_openers_of_one_store_share_the_cap(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, namespace: str
) -> None:
    url = store_url(kind, request, tmp_path)
    one, two = open_backend(url, namespace), open_backend(url, namespace)
    try:
        assert one.acquire("api", 2) is not None
        assert two.acquire("api", 2) is not None
        assert one.acquire("api", 2) is None
        assert two.acquire("api", 2) is None
        assert one.peak("api") == two.peak("api") == 2
        other_namespace = open_backend(url, namespace + "-other")
        assert other_namespace.acquire("api", 2) is not None  # namespaces do not share
        other_namespace.close()
    finally:
        one.close()
        two.close()


@pytest.mark.parametrize("kind", SHARED_STORES)
@pytest.mark.parametrize("cap", [1, 2])
def test_caps_hold_across_processes(
    kind: str, cap: int, request: pytest.FixtureRequest, tmp_path: Path, namespace: str
) -> None:
    url = store_url(kind, request, tmp_path)
    context = multiprocessing.get_context("spawn")
    holders = context.Barrier(cap)
    counter_lock = context.Lock()
    in_flight, peak = context.Value("i", 0, lock=False), context.Value("i", 0, lock=False)
    processes = [
        context.Process(
            target=hold_rounds,
            args=(url, namespace, "api", cap, 8, holders, counter_lock, in_flight, peak),
        )
        for _ in range(2 * cap if cap > 1 else 4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * len(processes)
    assert peak.value == cap  # the barrier proves >= cap, the counter <= cap
    backend = open_backend(url, namespace)
    assert backend.peak("api") == cap
    assert backend.in_flight("api") == 0
    backend.close()


def test_processes_that_create_one_sqlite_store_together_all_open_it(tmp_path: Path) -> None:
    # Switching a new file to WAL can fail at once ("database is locked") for all but one
    # opener: seen once in a full run (3 of 4 processes of test_caps_hold_across_processes);
    # this does not reproduce it every time, but guards the retry.
    url = f"sqlite://{tmp_path / 'new.db'}"
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(6)
    processes = [context.Process(target=open_together, args=(url, "ns", start)) for _ in range(6)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * 6


@pytest.mark.parametrize("kind", SHARED_STORES)
def test_an_expired_lease_is_reclaimed_by_the_next_acquire(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, namespace: str
) -> None:
    url = store_url(kind, request, tmp_path) + "?lease=0.5"
    dead, alive = open_backend(url, namespace), open_backend(url, namespace)
    try:
        abandoned = dead.acquire("api", 1)  # its holder "dies": nothing renews it
        assert abandoned is not None
        assert alive.acquire("api", 1) is None
        for _ in range(200):  # each wait ends by the lease's expiry; 200 bounds a bug
            if alive.wait_for_release(["api"], WAIT_SECONDS) and alive.acquire("api", 1):
                break
        else:
            pytest.fail("the abandoned lease never came back")
        assert not dead.renew(abandoned)
        assert alive.in_flight("api") == 1
    finally:
        dead.close()
        alive.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_sqlite_reclaims_on_its_clock_and_the_heartbeat_keeps_leases(tmp_path: Path) -> None:
    clock = FakeClock()
    backend = SqliteBackend(str(tmp_path / "limits.db"), "ns", 10.0, clock=clock)
    lost: list[tuple[Lease, str]] = []
    keeper = LeaseKeeper(backend, lambda lease, reason, _: lost.append((lease, reason)))
    kept, dropped = backend.acquire("api", 3), backend.acquire("api", 3)
    assert kept is not None
    assert dropped is not None
    keeper.renew_all()  # nothing held yet: nothing happens
    keeper._stop.set()  # drive renewals by hand on the fake clock, no thread
    keeper.hold(kept)
    for _ in range(5):  # 5 x 9 s: far past one lease, renewed each time
        clock.now += 9.0
        keeper.renew_all()
    assert backend.in_flight("api") == 1  # ``dropped`` expired, ``kept`` did not
    assert backend.acquire("api", 3) is not None  # the acquire reclaimed ``dropped``
    assert not backend.renew(dropped)
    clock.now += 11.0
    keeper.renew_all()
    assert [(lease.token, reason) for lease, reason in lost] == [
        (kept.token, "its lease expired before it was renewed")
    ]
    assert keeper.lost == 1
    assert keeper.held() == []
    backend.close()


class RecordingBackend:
    """Renewals land on an event: proves the heartbeat thread runs, without timing it."""

    def __init__(self) -> None:
        self.renewed = threading.Event()
        self.fail = False

    lease_seconds = 0.03

    def renew(self, lease: Lease) -> bool:
        self.renewed.set()
        if self.fail:
            raise BackendError("store gone")
        return True


def test_the_heartbeat_thread_renews_and_reports_a_store_that_fails() -> None:
    store = RecordingBackend()
    lost = threading.Event()
    reasons: list[str] = []

    def on_lost(lease: Lease, reason: str, store_failed: bool) -> None:
        assert store_failed
        reasons.append(reason)
        lost.set()

    keeper = LeaseKeeper(store, on_lost)  # type: ignore[arg-type]
    keeper.hold(Lease("api", "t1", "host:1", 0.03))
    assert store.renewed.wait(WAIT_SECONDS)
    store.fail = True
    assert lost.wait(WAIT_SECONDS)
    keeper.close()
    assert reasons == ["the store did not answer the renewal: store gone"]


def test_the_memory_store_needs_no_heartbeat() -> None:
    backend = open_backend("memory", "ns")
    assert math.isinf(backend.lease_seconds)
    keeper = LeaseKeeper(backend, lambda lease, reason, failed: None)
    lease = backend.acquire("api", 1)
    assert lease is not None
    keeper.hold(lease)
    assert keeper._thread is None
    keeper.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgres://db/x", "names no known limits backend"),
        ("sqlite://", "sqlite:///PATH"),
        ("redis://:secret@/0", "redis://:\\*\\*\\*@"),
        ("sqlite:///tmp/x.db?lease=0.1", "lease must be a number of seconds >= 0.5"),
        ("sqlite:///tmp/x.db?lease=soon", "lease must be"),
    ],
)
def test_a_bad_url_says_the_fix(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        open_backend(url, "ns")
    assert "secret" not in str(error.value)


def test_a_bad_namespace_is_refused() -> None:
    with pytest.raises(ValueError, match="namespace"):
        open_backend("memory", "two words")


def test_an_sqlite_file_that_cannot_be_opened_names_the_url(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'missing-dir' / 'limits.db'}"
    with pytest.raises(BackendError, match=f"{url}: cannot open the SQLite limits store"):
        open_backend(url, "ns")


def test_an_unreachable_redis_names_the_url_without_its_password() -> None:
    from .redis_server import free_port

    url = f"redis://user:secret@127.0.0.1:{free_port()}/0"
    with pytest.raises(BackendError, match="cannot reach the Redis limits store") as error:
        open_backend(url, "ns")
    assert "user:***@127.0.0.1" in str(error.value)
    assert "secret" not in str(error.value)


def test_credentials_in_the_url_reach_a_redis_that_asks_for_a_password(tmp_path: Path) -> None:
    from .redis_server import started_redis

    server = started_redis(tmp_path, password="s3cret")
    try:
        backend = open_backend(server.url, "credentials")
        try:
            lease = backend.acquire("api", 1)
            assert lease is not None
            assert backend.acquire("api", 1) is None  # the store holds the cap of 1
            backend.release(lease)
            assert backend.acquire("api", 1) is not None
        finally:
            backend.close()
        wrong = server.url.replace("s3cret", "wrong")
        with pytest.raises(BackendError) as error:
            open_backend(wrong, "credentials")
        assert ":***@127.0.0.1" in str(error.value)
        assert "wrong" not in str(error.value)
    finally:
        server.stop()


def test_rediss_reaches_a_tls_only_redis_that_trusts_a_private_ca(tmp_path: Path) -> None:
    """rediss:// with redis-py's ``ssl_ca_certs`` in the query; our ``lease`` stays ours."""
    from .redis_server import started_redis

    server = started_redis(tmp_path, tls=True)
    try:
        assert server.url.startswith("rediss://")
        backend = open_backend(server.url + "&lease=3", "tls")
        try:
            assert backend.lease_seconds == 3.0
            lease = backend.acquire("api", 1)
            assert lease is not None
            assert backend.acquire("api", 1) is None  # the cap of 1 holds over TLS
            backend.release(lease)
            assert backend.acquire("api", 1) is not None
        finally:
            backend.close()
        untrusted = server.url.split("?", 1)[0]  # the system's CAs do not know the test CA
        with pytest.raises(BackendError, match="cannot reach the Redis limits store"):
            open_backend(untrusted, "tls")
        plain = untrusted.replace("rediss://", "redis://")  # no TLS: the server hangs up
        with pytest.raises(BackendError, match="cannot reach the Redis limits store"):
            open_backend(plain, "tls")
        misspelt = server.url.replace("ssl_ca_certs", "ssl_ca_cert")
        with pytest.raises(BackendError, match=r"not one redis-py knows.*ssl_ca_certs=PATH"):
            open_backend(misspelt, "tls")
    finally:
        server.stop()


def test_redis_keys_carry_the_namespace_and_job_tag_and_all_expire(
    redis_server: RedisServer, namespace: str
) -> None:
    import redis

    backend = open_backend(redis_server.url, namespace)
    lease = backend.acquire("tests/a.py::{odd}:job", 1)
    assert lease is not None
    backend.take_token("tests/a.py::{odd}:job", 10.0, 1)
    backend.pause("tests/a.py::{odd}:job", 1.0)
    backend.release(lease)
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    keys = sorted(str(key) for key in client.keys(f"dynpool:{namespace}:*"))
    prefix = f"dynpool:{namespace}:{{tests/a.py%3A%3A%7Bodd%7D%3Ajob}}:"
    assert keys == [prefix + part for part in ("state", "tat", "wake")]
    assert all(client.pttl(key) > 0 for key in keys)
    client.close()
    backend.close()


@pytest.mark.parametrize(
    ("ci", "outcome"), [("", pytest.skip.Exception), ("true", pytest.fail.Exception)]
)
def test_a_missing_redis_server_skips_with_the_install_hint_but_fails_in_ci(
    ci: str, outcome: type[BaseException], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import benchmarks.redis_server

    from .redis_server import started_redis

    monkeypatch.setattr(benchmarks.redis_server, "REDIS_SERVER", str(tmp_path / "none"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="apt-get install redis-server"):
        started_redis(tmp_path)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_refusal_on_one_thread_is_waited_out_on_another(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, namespace: str
) -> None:
    # The store watcher waits for the workers that were refused: no spurious wake-up.
    backend = open_backend(store_url(kind, request, tmp_path), namespace)
    held = backend.acquire("api", 1)
    assert held is not None
    assert backend.acquire("api", 1) is None
    woken: list[bool] = []
    waiter = threading.Thread(target=lambda: woken.append(backend.wait_for_release(["api"], 0.2)))
    waiter.start()
    waiter.join()
    assert woken == [False]  # nothing was released
    backend.release(held)
    waiter = threading.Thread(target=lambda: woken.append(backend.wait_for_release(["api"], 30)))
    waiter.start()
    waiter.join()
    assert woken == [False, True]
    backend.close()


@pytest.mark.parametrize("kind", SHARED_STORES)
def test_a_dead_holders_leases_come_back_at_once_and_it_is_fenced_off(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, namespace: str
) -> None:
    # An xdist controller gives back a crashed worker's slots without waiting for their
    # (hour-long here) leases; a thread of that worker still running can never count again.
    url = store_url(kind, request, tmp_path) + "?lease=3600"
    dead = open_backend(url, namespace, holder="gw0-dead")
    alive = open_backend(url, namespace, holder="gw1-alive")
    controller = open_backend(url, namespace)
    try:
        held = [dead.acquire("api", 2), dead.acquire("api (requests)", 1)]
        kept = alive.acquire("other", 1)
        assert all(held)
        assert kept is not None
        assert alive.acquire("api", 2) is not None
        assert alive.acquire("api", 2) is None  # the dead holder's slot still counts
        given_back = controller.release_holder("gw0-dead", ["api", "api (requests)", "other"])
        assert given_back == 2
        assert controller.in_flight("api") == 1
        assert controller.in_flight("api (requests)") == 0
        assert controller.in_flight("other") == 1  # another holder's lease stays
        assert alive.acquire("api", 2) is not None  # the freed slot, at once
        assert alive.acquire("api", 2) is None  # and never more than the cap
        first = held[0]
        assert first is not None
        assert not dead.renew(first)  # the dead holder's thread cannot keep its lease
        dead.release(first)  # nor give back a slot that is now someone else's
        assert controller.in_flight("api") == 2
        with pytest.raises(BackendError, match="declared gone"):
            dead.acquire("api (requests)", 1)  # nor take a new one
        assert controller.release_holder("gw0-dead", ["api"]) == 0
    finally:
        for backend in (dead, alive, controller):
            backend.close()


def test_the_memory_store_gives_back_its_own_holders_leases() -> None:
    backend = open_backend("memory", holder="me")
    assert backend.acquire("api", 1) is not None
    assert backend.release_holder("someone else", ["api"]) == 0
    assert backend.release_holder("me", ["api"]) == 1
    assert backend.in_flight("api") == 0
    with pytest.raises(BackendError, match="declared gone"):
        backend.acquire("api", 1)

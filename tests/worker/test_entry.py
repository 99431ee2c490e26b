"""The worker entry point waits for Redis instead of dying when it starts first."""

from __future__ import annotations

import threading
import time

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisDown

from ops.services import free_port, start_redis
from worker.__main__ import wait_for_redis


def test_waits_until_redis_answers(tmp_path):
    port, outcome = free_port(), []

    def wait() -> None:
        try:
            wait_for_redis(Redis.from_url(f"redis://127.0.0.1:{port}/0"), timeout=30)
            outcome.append("answered")
        except RedisDown as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1.5)
    assert not outcome  # still waiting: nothing listens yet
    # Started from this thread: the service ends with the thread that started it.
    service = start_redis(tmp_path, port)
    try:
        waiter.join(30)
    finally:
        service.stop()
    assert outcome == ["answered"]


def test_gives_up_after_the_timeout():
    with pytest.raises(RedisDown):
        wait_for_redis(Redis.from_url(f"redis://127.0.0.1:{free_port()}/0"), timeout=1)

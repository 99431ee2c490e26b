"""The job queue: the only module in the portal that imports ``rq``.

Jobs are referred to by dotted name so the portal never imports the worker.
"""

from __future__ import annotations

import logging

from flask import current_app
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job

log = logging.getLogger(__name__)

QUEUE_NAME = "assay"
RUN_SCAN = "worker.jobs.run_scan"


def get_redis(*, timeout: float = 5.0) -> Redis:
    """A Redis connection for the configured URL (fails fast when Redis is down)."""
    return Redis.from_url(current_app.config["REDIS_URL"], socket_timeout=timeout,
                          socket_connect_timeout=timeout)


def get_queue(connection: Redis | None = None) -> Queue:
    """The queue the workers listen on."""
    return Queue(QUEUE_NAME, connection=connection or get_redis())


def scan_job_id(scan_id: int, attempt: int) -> str:
    return f"scan-{int(scan_id)}-{int(attempt)}"


def retry_policy() -> Retry:
    """Backoff between attempts of one scan job (a crash, a timeout, a dead engine)."""
    retries = max(int(current_app.config["SCAN_MAX_ATTEMPTS"]) - 1, 0)
    return Retry(max=retries, interval=list(current_app.config["SCAN_RETRY_BACKOFF"]))


def enqueue_scan_job(scan_id: int, attempt: int = 1) -> bool:
    """Put ``run_scan(scan_id)`` on the queue; False when Redis cannot be reached."""
    try:
        get_queue().enqueue_call(
            RUN_SCAN, args=(scan_id,), job_id=scan_job_id(scan_id, attempt),
            timeout=current_app.config["SCAN_TIMEOUT"], retry=retry_policy(),
            result_ttl=3600, failure_ttl=7 * 24 * 3600,
            description=f"scan {scan_id} (attempt {attempt})",
        )
    except RedisError as exc:
        log.warning("scan %s stays in the outbox: %s", scan_id, exc)
        return False
    return True


def job_exists(job_id: str) -> bool | None:
    """Whether the job is still known to Redis; None when Redis cannot be reached."""
    try:
        Job.fetch(job_id, connection=get_redis())
    except NoSuchJobError:
        return False
    except RedisError:
        return None
    return True


def current_job_id() -> str | None:
    """The id of the job this code runs in, if any."""
    from rq import get_current_job

    job = get_current_job()
    return job.id if job is not None else None


#: Periodic jobs: (dotted job name, interval in seconds or the setting that holds it).
PERIODIC = (
    ("worker.jobs.drain_outbox", 10),
    ("worker.jobs.reap_stuck_scans", 60),
    ("worker.jobs.sweep_orphans", 3600),
    ("worker.jobs.run_reminders", 300),
    ("worker.jobs.run_abort_abandoned_uploads", 3600),
    ("worker.jobs.watch_uploads", 60),
    ("worker.jobs.run_osv_sync", "OSV_SYNC_INTERVAL"),  # does nothing without OSV_ECOSYSTEMS
)


def period_of(interval: int | str) -> int:
    """A periodic job's interval in seconds (a setting's name is looked up)."""
    return int(current_app.config[interval]) if isinstance(interval, str) else int(interval)


def claim_period(name: str, interval: int, owner: str, connection: Redis | None = None) -> bool:
    """Take the right to run ``name`` for the next ``interval`` seconds.

    A Redis key set only if absent, expiring after ``interval``: whichever
    scheduler (on any machine) gets it runs the job; the others skip this round.
    """
    redis = connection or get_redis()
    return bool(redis.set(f"assay:periodic:{name}", owner, nx=True, ex=max(int(interval), 1)))

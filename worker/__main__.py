"""``python -m worker``: the RQ worker, plus the scheduler of periodic jobs.

The app is built once, before the worker forks a work horse per job. The main
process never touches the database, so no horse inherits a connection. The
periodic jobs (outbox drain, reaper, orphan sweep, SLA reminders, abandoned and
oversized uploads, the daily vulnerability-data sync) run in a child process; a Redis key per job and period lets
only one scheduler run each of them, however many workers run on however many
machines.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time

from rq import Worker

from portal import create_app, queue
from portal.config import ConfigError
from worker import jobs

log = logging.getLogger("worker")


class ScanWorker(Worker):
    """A worker that refreshes the vulnerability data before forking, so every
    horse starts with it loaded (it is read again only when it changes)."""

    app = None

    def execute_job(self, job, queue_):
        with self.app.app_context():
            try:
                jobs.osv_database()
            except Exception as exc:  # noqa: BLE001 - the job itself reports it and retries
                log.warning("vulnerability data not loaded: %s", exc)
        return super().execute_job(job, queue_)

    def main_work_horse(self, job, queue_):
        jobs.allow_exit_on_stall()  # this process runs this one job only
        return super().main_work_horse(job, queue_)

    def handle_work_horse_killed(self, job, retpid, ret_val, rusage):
        """A horse that ended itself on a stalled scan has recorded the failure: no retry."""
        if ret_val is not None and os.WIFEXITED(ret_val) \
                and os.WEXITSTATUS(ret_val) == jobs.STALLED_EXIT:
            job.retries_left = 0
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)


def run_scheduler(app, owner: str, tick: float = 1.0, rounds: int | None = None) -> None:
    """Run each periodic job when its period comes round and this process wins it."""
    runners = {"worker.jobs.drain_outbox": jobs.drain_outbox,
               "worker.jobs.reap_stuck_scans": jobs.reap_stuck_scans,
               "worker.jobs.sweep_orphans": jobs.sweep_orphans,
               "worker.jobs.run_reminders": jobs.run_reminders,
               "worker.jobs.run_abort_abandoned_uploads": jobs.run_abort_abandoned_uploads,
               "worker.jobs.watch_uploads": jobs.watch_uploads,
               "worker.jobs.run_osv_sync": jobs.run_osv_sync}
    done = 0
    while rounds is None or done < rounds:
        with app.app_context():
            for name, interval in queue.PERIODIC:
                _run_periodic(name, queue.period_of(interval), runners[name], owner)
        done += 1
        time.sleep(tick)


def _run_periodic(name: str, interval: int, runner, owner: str) -> None:
    try:
        if queue.claim_period(name, interval, owner):
            runner()
    except Exception:  # noqa: BLE001 - the next period tries again
        log.exception("periodic job %s failed", name)


def _scheduler_main(owner: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    app = create_app()
    jobs.set_app(app)
    run_scheduler(app, owner)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__.split("\n")[0])
    parser.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    parser.add_argument("--no-scheduler", action="store_true", help="do not run periodic jobs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("ASSAY_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        app = create_app()
    except ConfigError as exc:
        print(f"python -m worker: {exc}", file=sys.stderr)
        return 2
    jobs.set_app(app)
    _ensure_bucket(app)
    name = f"{socket.gethostname()}.{os.getpid()}"
    scheduler = None
    if not args.no_scheduler:
        scheduler = multiprocessing.get_context("fork").Process(
            target=_scheduler_main, args=(name,), name="assay-scheduler", daemon=True)
        scheduler.start()
    try:
        with app.app_context():
            ScanWorker.app = app
            connection = _redis_without_timeout(app)
            wait_for_redis(connection, float(os.environ.get("ASSAY_REDIS_WAIT", "60")))
            worker = ScanWorker([queue.QUEUE_NAME], name=name, connection=connection)
            worker.work(burst=args.burst, with_scheduler=True)
    finally:
        if scheduler is not None:
            scheduler.terminate()
            scheduler.join(10)
    return 0


def _ensure_bucket(app) -> None:
    from portal import storage

    with app.app_context():
        try:
            storage.ensure_bucket()
        except Exception as exc:  # noqa: BLE001 - storage may come up later; scans retry
            log.warning("could not check the bucket: %s", exc)


def wait_for_redis(connection, timeout: float) -> None:
    """Wait until Redis answers: on one machine it may still be starting beside the worker."""
    from redis.exceptions import ConnectionError as RedisDown

    deadline = time.monotonic() + timeout
    while True:
        try:
            connection.ping()
            return
        except RedisDown:
            if time.monotonic() >= deadline:
                raise
            log.info("waiting for Redis at %s", connection.connection_pool.connection_kwargs.get("port"))
            time.sleep(0.5)


def _redis_without_timeout(app):
    """The worker blocks on Redis for long stretches: no socket timeout here."""
    from redis import Redis

    return Redis.from_url(app.config["REDIS_URL"])


if __name__ == "__main__":
    raise SystemExit(main())

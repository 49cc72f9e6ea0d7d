"""Where a sweep's replays run: a process pool on this machine, or Ray tasks on a cluster.

Both hand each worker the market data once (the pool through its initializer, Ray through its
object store), yield each combination's result as soon as it is done, and retry a replay whose
worker died (or, on Ray, raised) once before recording it as failed with its error. Leaving the
`results` loop early (Ctrl-C) cancels what is still running.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from runner.errors import ClusterError, ConfigError
from runner.feeds import Feed
from runner.manifest import DataInputs
from runner.sweep_worker import SweepTask, TaskResult, replay_combination

CONNECT_TIMEOUT_SECONDS = 5.0  # how long a Ray address may take to accept a connection
MISSING_RAY = "--executor ray needs Ray, which is not installed: pip install -e '.[distributed]'"


class Executor(Protocol):
    workers: int

    def results(self, tasks: Sequence[SweepTask]) -> Iterator[TaskResult]: ...

    def close(self) -> None: ...


def default_workers() -> int:
    """The CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# --- local --------------------------------------------------------------------------------------

_shared: tuple[Feed | None, DataInputs | None] = (None, None)  # one per worker process


def _share(feed: Feed | None, data: DataInputs | None) -> None:
    global _shared
    _shared = (feed, data)


def _replay_shared(task: SweepTask) -> TaskResult:
    return replay_combination(task, *_shared)


class LocalExecutor:
    """A pool of `workers` processes (started by a fork server, so no thread of the driver is
    copied into them); each gets the market data once, when it starts."""

    def __init__(self, feed: Feed | None, data: DataInputs | None, workers: int | None = None):
        self.workers = workers or default_workers()
        self._feed, self._data = feed, data

    def results(self, tasks: Sequence[SweepTask]) -> Iterator[TaskResult]:
        todo, tried = list(tasks), set()
        while todo:  # a second round re-runs, once, the replays a dying worker took down with it
            broken: list[SweepTask] = []
            pool = self._pool(len(todo))
            try:
                futures: dict[Future, SweepTask] = {pool.submit(_replay_shared, task): task for task in todo}
                while futures:
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for future in done:
                        task = futures.pop(future)
                        try:
                            yield future.result()
                        except BrokenProcessPool:
                            if task.number in tried:
                                yield TaskResult(task.number, task.run_id, "failed", "its worker process died twice")
                            else:
                                broken.append(task)
                        except Exception as exc:  # noqa: BLE001 - recorded with the combination
                            yield TaskResult(task.number, task.run_id, "failed", f"{type(exc).__name__}: {exc}")
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
            tried.update(task.number for task in broken)
            todo = broken

    def _pool(self, tasks: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            min(self.workers, tasks), mp_context=multiprocessing.get_context("forkserver"),
            initializer=_share, initargs=(self._feed, self._data),
        )

    def close(self) -> None:
        pass


# --- Ray ----------------------------------------------------------------------------------------


class RayExecutor:
    """Ray tasks, one a combination, at most `workers` at once (default: the cluster's CPUs).

    Joins the cluster at `address`, or starts a local Ray (stopped again by `close`) unless this
    process is already connected to one. The market data is put in the object store once.

    Raises:
        ConfigError: Ray is not installed.
        ClusterError: the address does not answer, or Ray cannot start or connect.
    """

    def __init__(self, feed: Feed | None, data: DataInputs | None, workers: int | None = None,
                 address: str | None = None):
        try:
            import ray
        except ImportError:
            raise ConfigError(MISSING_RAY) from None
        self._ray, self._started = ray, False
        if not ray.is_initialized():
            if address:
                _check_reachable(address)
            try:
                options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
                if address:
                    ray.init(address=address, **options)
                else:
                    ray.init(num_cpus=workers or default_workers(), **options)
            except Exception as exc:  # noqa: BLE001 - Ray raises many kinds when it cannot start or connect
                raise ClusterError(f"cannot {'join the Ray cluster at ' + address if address else 'start Ray'}: "
                                   f"{type(exc).__name__}: {exc}") from None
            self._started = True
        self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._feed, self._data = ray.put(feed), ray.put(data)
        self._remote = ray.remote(num_cpus=1, max_retries=1, retry_exceptions=True)(replay_combination)

    def results(self, tasks: Sequence[SweepTask]) -> Iterator[TaskResult]:
        ray, waiting, running = self._ray, iter(tasks), {}

        def submit() -> None:
            task = next(waiting, None)
            if task is not None:
                running[self._remote.remote(task, self._feed, self._data)] = task

        for _ in range(self.workers):
            submit()
        try:
            while running:
                (done, *_), _ = ray.wait(list(running), num_returns=1)
                task = running.pop(done)
                submit()
                try:
                    result = ray.get(done)
                except ray.exceptions.RayError as exc:  # raised or died twice (retried once)
                    result = TaskResult(task.number, task.run_id, "failed", _ray_error(exc))
                yield result
        finally:
            for reference in running:
                ray.cancel(reference, force=True)

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def _ray_error(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"


def _check_reachable(address: str) -> None:
    """Fail fast, with the address in the message, when nothing listens at host:port."""
    if address == "auto":
        return
    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address {address!r}: expected host:port, such as 10.0.0.5:6379, or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_SECONDS):
            pass
    except OSError as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def executor(kind: str, feed: Feed | None, data: DataInputs | None, workers: int | None,
             address: str | None) -> Executor:
    """The executor named `kind` (local or ray), ready to run tasks."""
    if kind == "ray":
        return RayExecutor(feed, data, workers, address)
    if address:
        raise ConfigError("--ray-address goes with --executor ray")
    return LocalExecutor(feed, data, workers)

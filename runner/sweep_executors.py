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
import signal
import socket
from collections.abc import Generator, Iterator, Sequence
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


def _start_worker(feed: Feed | None, data: DataInputs | None) -> None:
    """Keep the market data for this worker's replays. Ctrl-C reaches the whole process group:
    a worker then leaves at once and quietly (its replay's rows were only in its memory), and
    the driver marks what was unfinished."""
    global _shared
    _shared = (feed, data)
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))


def _replay_shared(task: SweepTask) -> TaskResult:
    return replay_combination(task, *_shared)


class LocalExecutor:
    """A pool of `workers` forked processes, which inherit the imported modules and the parsed
    market data (a fork server, which copies no driver thread, made a two-run sweep take 2.4 x
    as long on this machine: every worker imported the runner anew). The driver's only other
    thread then is the progress display's, which the workers never touch. When a worker process
    dies, the pool is lost with every replay it held: those are retried one at a time, so the
    replay that kills its worker fails alone, with its error, and the others complete."""

    def __init__(self, feed: Feed | None, data: DataInputs | None, workers: int | None = None):
        self.workers = workers or default_workers()
        self._feed, self._data = feed, data

    def results(self, tasks: Sequence[SweepTask]) -> Iterator[TaskResult]:
        broken = yield from self._round(tasks, self.workers)
        for task in broken:  # each alone, so a replay that kills its worker takes no other with it
            for lost in (yield from self._round([task], 1)):
                yield TaskResult(lost.number, lost.run_id, "failed", "its worker process died (retried once)")

    def _round(self, tasks: Sequence[SweepTask], workers: int) -> Generator[TaskResult, None, list[SweepTask]]:
        """Run `tasks` on a fresh pool; return those lost when a worker process died."""
        broken: list[SweepTask] = []
        pool = ProcessPoolExecutor(
            min(workers, len(tasks)), mp_context=multiprocessing.get_context("fork"),
            initializer=_start_worker, initargs=(self._feed, self._data),
        )
        try:
            futures: dict[Future, SweepTask] = {pool.submit(_replay_shared, task): task for task in tasks}
            while futures:
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: futures[f].number):
                    task = futures.pop(future)
                    try:
                        yield future.result()
                    except BrokenProcessPool:
                        broken.append(task)
                    except Exception as exc:  # noqa: BLE001 - recorded with the combination
                        yield TaskResult(task.number, task.run_id, "failed", f"{type(exc).__name__}: {exc}")
        finally:  # waits for no replay after Ctrl-C (its workers are gone); leaving without
            # waiting let the interpreter's exit race the pool's own threads (a traceback at exit)
            pool.shutdown(wait=True, cancel_futures=True)
        return sorted(broken, key=lambda task: task.number)

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
        if address:
            _check_reachable(address)
        if not ray.is_initialized():
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

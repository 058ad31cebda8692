"""Executors: run the independent cells of a suite's matrix in one process, in local worker
processes, or as tasks on a Ray cluster.

A *cell* is one model of the matrix (train or load, clean accuracy, every pending attack). A
cell writes its results into the run folder itself, atomically, so an executor only has to
call the cell function on each task and pass the small return value back to the driver; a
killed worker loses nothing but the cell it was running, and the same command resumes.

Three ways to run the same cells, with identical results for the same seeds, thread count and
device type:

- ``jobs=1`` (default): in this process, one cell after another.
- ``jobs=N``: ``N`` worker processes on this machine (``spawn``-started, so CUDA works in
  them), each with ``threads`` torch threads and, when several GPUs are visible, its own GPU.
- ``executor="ray"``: one Ray task per cell on an existing cluster (``ray_address``) or on a
  local Ray instance; a task asks for ``threads`` CPUs and one GPU when the suite runs on CUDA.
  The run folder and the checkpoint store must be on storage that every node sees.

Workers end with the run that started them. A local worker arms ``PR_SET_PDEATHSIG`` (Linux:
the kernel kills it with SIGKILL the moment its parent dies) and, on every platform, keeps a
thread that waits on the parent's process sentinel (a pipe the parent holds; Windows: its
process handle) and ends the worker when it closes; so ``kill -9`` of the driver, an
out-of-memory kill or a closed terminal leaves no worker computing for nobody. A driver
stopped by SIGINT or SIGTERM (an exception in this process, see the command line) stops its
workers before it exits. A killed worker can leave nothing half-written: every result file is
written under a hidden temporary name and renamed into place
(:func:`robustbench_win.atomic.write_atomic`), and the next run removes such leftovers.
What Ray does with the tasks of a dead driver is said in :func:`_run_ray`.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from tqdm.auto import tqdm

from robustbench_win.errors import UserError

EXECUTORS: tuple[str, ...] = ("local", "ray")

TaskT = TypeVar("TaskT")
ResultT = TypeVar("ResultT")


class ExecutorError(UserError, RuntimeError):
    """A worker died, or the executor cannot run here (e.g. Ray is not installed)."""


class RunFolderNotVisibleError(ExecutorError):
    """A worker cannot see the run folder the driver wrote (storage not shared by every node)."""


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker process does before its first cell.

    Attributes:
        run_folder: The run folder; a worker checks that it sees it (the driver created it).
        plugins: Plugin modules or ``.py`` files to import (absolute paths), so that models,
            data sets and attacks the user registered exist in the worker too.
        threads: torch intra-op threads per worker (results repeat exactly only for the same
            thread count).
        cuda: The suite runs on CUDA: give each local worker its own GPU when several are
            visible, and ask Ray for one GPU per task.
    """

    run_folder: Path
    plugins: tuple[str, ...] = ()
    threads: int = 1
    cuda: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise ValueError(f"threads per worker must be an integer >= 1, got {self.threads!r}")


@dataclass(frozen=True)
class Task(Generic[TaskT]):
    """One cell to run: a name for progress displays and the picklable payload of the cell function."""

    name: str
    payload: TaskT


@dataclass
class _Progress:
    """A progress bar over tasks whose postfix names the tasks running right now."""

    total: int
    enabled: bool
    desc: str
    running: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bar = tqdm(total=self.total, desc=self.desc, unit="model", disable=not self.enabled)

    def started(self, key: int, name: str) -> None:
        self.running[key] = name
        self._show()

    def finished(self, key: int) -> None:
        self.running.pop(key, None)
        self.bar.update(1)
        self._show()

    def close(self) -> None:
        self.bar.close()

    def _show(self) -> None:
        self.bar.set_postfix_str(" | ".join(self.running.values()) or "-", refresh=True)


def default_threads(jobs: int) -> int:
    """This machine's torch threads shared out among ``jobs`` workers (at least one each)."""
    return max(1, torch.get_num_threads() // max(1, jobs))


def run_cells(
    cell_fn: Callable[[TaskT], ResultT],
    tasks: Sequence[Task[TaskT]],
    setup: WorkerSetup,
    *,
    jobs: int = 1,
    executor: str = "local",
    ray_address: str | None = None,
    on_result: Callable[[Task[TaskT], ResultT], None] | None = None,
    progress: bool = True,
    desc: str = "cells",
) -> None:
    """Run ``cell_fn`` on every cell; ``on_result`` gets each result in the driver as it comes.

    Args:
        cell_fn: A module-level (picklable) function that runs one cell and writes its results
            into the run folder itself.
        cells: The tasks, in the order they should start.
        setup: What each worker does first (plugins, threads, GPU).
        jobs: Local worker processes (``executor="local"``); 1 runs in this process.
        executor: ``"local"`` or ``"ray"``.
        ray_address: Address of an existing Ray cluster; ``None`` starts a local instance.
        on_result: Called in the driver with each finished cell and its return value.
        progress: Show a progress bar naming the running cells.
        desc: Label of the progress bar.

    Raises:
        ValueError: Unknown executor or bad ``jobs``.
        ExecutorError: A worker died (the tasks it finished are kept), or Ray is missing.
        RunFolderNotVisibleError: A worker cannot see the run folder.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    report = on_result or (lambda cell, result: None)
    bar = _Progress(len(tasks), progress, desc)
    try:
        if executor == "ray":
            _run_ray(cell_fn, tasks, setup, ray_address, report, bar)
        elif jobs == 1:
            _run_here(cell_fn, tasks, setup, report, bar)
        else:
            _run_processes(cell_fn, tasks, setup, jobs, report, bar)
    finally:
        bar.close()


# --------------------------------------------------------------------------- in this process


def _run_here(cell_fn: Callable[[TaskT], ResultT], tasks: Sequence[Task[TaskT]], setup: WorkerSetup,
              report: Callable[[Task[TaskT], ResultT], None], bar: _Progress) -> None:
    with _torch_threads(setup.threads):
        for key, task in enumerate(tasks):
            bar.started(key, task.name)
            report(task, cell_fn(task.payload))
            bar.finished(key)


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


# --------------------------------------------------------------------------- worker start-up


def prepare_worker(setup: WorkerSetup, gpu: int | None = None) -> None:
    """Run in a fresh worker: check the run folder, set threads and GPU, import plugins."""
    check_run_folder_visible(setup.run_folder)
    torch.set_num_threads(setup.threads)
    if gpu is not None:
        torch.cuda.set_device(gpu)
    from robustbench_win.registry import load_plugin  # a worker's own registry needs the plugins

    for plugin in setup.plugins:
        load_plugin(plugin)


def check_run_folder_visible(run_folder: Path) -> None:
    """Raise :class:`RunFolderNotVisibleError` unless this process sees the run folder."""
    if not Path(run_folder).is_dir():
        raise RunFolderNotVisibleError(
            f"worker on host '{socket.gethostname()}' (pid {os.getpid()}) cannot see the run folder "
            f"'{run_folder}'. The run folder and the checkpoint store must be on storage that every "
            f"node of the cluster sees (a shared file system mounted at the same path); pass such a "
            f"path with --out and --checkpoint-dir"
        )


_prepared: WorkerSetup | None = None  # what this worker process has set up already
_worker_gpu: int | None = None  # the GPU this local worker was given, if any


def _local_worker_init(gpus: Any, parent_pid: int) -> None:
    # Only take a GPU and tie the worker to its parent here: an exception in a pool initializer
    # would break the whole pool without a message, so everything that can fail runs with the
    # first cell instead.
    global _worker_gpu
    end_with_parent(parent_pid)
    # Ctrl-C in a terminal reaches the whole process group: the driver alone decides what stops,
    # and stops the workers itself (an interrupted worker would only hand its cell back as failed).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # tqdm's default lock is a named multiprocessing semaphore, which a worker ended by a signal
    # leaves to the resource tracker (a warning on the run's stderr); a worker's bars are its own.
    tqdm.set_lock(threading.RLock())
    _worker_gpu = gpus.get() if gpus is not None else None


PR_SET_PDEATHSIG = 1  # prctl option: the signal this process gets when its parent dies (linux/prctl.h)
ORPHANED_EXIT_STATUS = 137  # a worker whose parent died ends as SIGKILL would end it (128 + 9), on any platform


def end_with_parent(parent_pid: int) -> None:
    """Make this worker process end within moments of the death of its parent, ``parent_pid``.

    On Linux the kernel sends SIGKILL to the worker when its parent dies (``prctl(PR_SET_PDEATHSIG)``),
    whatever the worker is doing. On every platform a daemon thread also waits on the parent's
    sentinel (:func:`multiprocessing.parent_process`; a pipe the parent holds open, or its
    process handle on Windows) and ends the worker when the parent is gone. A parent that died
    before this call (the worker is already orphaned) ends the worker at once.
    """
    if sys.platform.startswith("linux"):
        _arm_parent_death_signal()
    if os.getppid() != parent_pid and sys.platform != "win32":  # orphaned before the signal was armed
        os._exit(ORPHANED_EXIT_STATUS)
    exit_when_parent_exits()


def exit_when_parent_exits() -> None:
    """In a process started by :mod:`multiprocessing`: end it as soon as its parent has exited.

    A daemon thread waits on the parent's sentinel (a pipe the parent holds open; on Windows its
    process handle), which needs no polling and works on every platform. Does nothing in a
    process that :mod:`multiprocessing` did not start.
    """
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_when_gone, args=(parent,), name="end-with-parent", daemon=True).start()


def _arm_parent_death_signal() -> bool:
    """``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on this process; ``False`` where the C library refuses it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):  # no prctl in this C library: the sentinel thread still watches
        return False


def _exit_when_gone(parent: Any) -> None:
    parent.join()  # returns when the parent's sentinel closes: the parent has exited
    os._exit(ORPHANED_EXIT_STATUS)


def _worker_cell(cell_fn: Callable[[TaskT], ResultT], task: TaskT, setup: WorkerSetup) -> ResultT:
    """Run one cell in a worker process (local or Ray), setting the process up on first use."""
    global _prepared
    if _prepared != setup:
        prepare_worker(setup, _worker_gpu)
        _prepared = setup
    return cell_fn(task)


def _gpu_queue(context: Any, setup: WorkerSetup, jobs: int) -> Any:
    """One visible GPU per local worker, round robin; ``None`` on CPU or a single GPU."""
    if not setup.cuda or torch.cuda.device_count() < 2:
        return None
    gpus = context.Queue()
    for worker in range(jobs):
        gpus.put(worker % torch.cuda.device_count())
    return gpus


# --------------------------------------------------------------------------- local processes


def _run_processes(cell_fn: Callable[[TaskT], ResultT], tasks: Sequence[Task[TaskT]], setup: WorkerSetup,
                   jobs: int, report: Callable[[Task[TaskT], ResultT], None], bar: _Progress) -> None:
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_local_worker_init,
                               initargs=(_gpu_queue(context, setup, jobs), os.getpid()))
    pending = list(enumerate(tasks))[::-1]
    running: dict[Future[ResultT], int] = {}
    try:
        # At most ``jobs`` tasks in flight, so every submitted cell is running on a worker and
        # the progress bar names exactly what each worker does.
        while pending or running:
            while pending and len(running) < jobs:
                key, task = pending.pop()
                running[pool.submit(_worker_cell, cell_fn, task.payload, setup)] = key
                bar.started(key, task.name)
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                key = running.pop(future)
                report(tasks[key], _result(future, [tasks[k].name for k in [key, *running.values()]]))
                bar.finished(key)
    except BaseException:
        # Stopped (SIGINT, SIGTERM) or failed: the cells in flight are not waited for, their
        # workers are ended now; every finished cell is already in the run folder.
        stop_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


WORKER_STOP_SECONDS = 5.0  # a worker that has not ended this long after SIGTERM is killed


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """End every worker process of ``pool`` now (SIGTERM, then SIGKILL after :data:`WORKER_STOP_SECONDS`)."""
    # The pool's process table is the only handle on its workers before Python 3.14's
    # ProcessPoolExecutor.terminate_workers().
    processes = [p for p in list((getattr(pool, "_processes", None) or {}).values()) if p.is_alive()]
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(WORKER_STOP_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()


def _result(future: Future[ResultT], in_flight: list[str]) -> ResultT:
    try:
        return future.result()
    except BrokenProcessPool:
        raise ExecutorError(
            f"a worker process died while running {', '.join(in_flight)}; every finished cell is "
            f"kept in the run folder: run the same command again to resume"
        ) from None


# --------------------------------------------------------------------------- Ray


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ExecutorError(
            "the ray executor needs Ray: pip install 'robustbench-win[ray]' (or pip install ray)"
        ) from None
    return ray


def _run_ray(cell_fn: Callable[[TaskT], ResultT], tasks: Sequence[Task[TaskT]], setup: WorkerSetup,
             address: str | None, report: Callable[[Task[TaskT], ResultT], None], bar: _Progress) -> None:
    """One Ray task per cell; the tasks end with this driver.

    Stopped by an exception here (SIGINT, SIGTERM, a failed cell), the driver cancels every
    unfinished task with ``ray.cancel(force=True)``, which kills the worker process running it,
    before it disconnects. A driver that dies without running any code (``kill -9``, out of
    memory) relies on Ray, which owns the tasks through the driver (the *owner* of a task is the
    process that submitted it):

    - A local instance (no ``ray_address``) was started by this process: its GCS and raylet are
      started with kernel fate-sharing (Linux: ``PR_SET_PDEATHSIG``; elsewhere Ray's reaper
      process) and die with the driver, and the workers exit when their raylet is gone.
    - An existing cluster (``ray_address``) outlives the driver. The driver's socket to the raylet
      of its node closes; that raylet reports the job as finished to the GCS, and every raylet then
      force-kills the workers leased to the job's tasks and grants the job no more workers, so
      queued cells never start (``NodeManager::HandleJobFinished``, Ray 2.x). If the driver's
      whole node is lost instead, the GCS marks its jobs finished once health checks declare the
      node dead (about 30 s by default). Through Ray Client (``ray://``) the driver runs on the
      head node and is ended after the client stays disconnected for the reconnect grace period
      (30 s by default).

    Either way no cell runs on for nobody, and a cell killed mid-way leaves nothing half-written.
    """
    ray = _import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        _connect_ray(ray, address)
    refs: dict[Any, int] = {}
    try:
        remote = ray.remote(num_cpus=setup.threads, num_gpus=1 if setup.cuda else 0, max_retries=0)(_worker_cell)
        refs = {remote.remote(cell_fn, task.payload, setup): key for key, task in enumerate(tasks)}
        for key, task in enumerate(tasks):
            bar.started(key, task.name)  # queued or running: Ray schedules them
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            key = refs.pop(done[0])
            report(tasks[key], _ray_result(ray, done[0]))
            bar.finished(key)
    except BaseException:
        _cancel_ray_tasks(ray, list(refs))
        raise
    finally:
        if started_here:
            ray.shutdown()


def _cancel_ray_tasks(ray: Any, refs: list[Any]) -> None:
    """Cancel unfinished tasks, killing the workers that run them (a finished task is left as it is)."""
    for ref in refs:
        try:
            ray.cancel(ref, force=True)
        except Exception:  # noqa: BLE001 - best effort while stopping: Ray's own clean-up still follows
            pass


RAY_TOKEN_FILE = "~/.ray/auth_token"  # Ray's default token file (ray get-auth-token --generate writes it)


def _connect_ray(ray: Any, address: str | None) -> None:
    """``ray.init`` on ``address``; a refused connection to a cluster that wants a token says so and how to fix it.

    Raises:
        ExecutorError: The driver cannot connect because the cluster uses token authentication
            (Ray 2.59+ turns it on for ``ray start --head``) and this process does not.
    """
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError) as error:
        if address in (None, "auto") or os.environ.get("RAY_AUTH_MODE") == "token":
            raise
        raise ExecutorError(ray_auth_hint(address, ray.__version__, str(error))) from None


def ray_auth_hint(address: str, version: str, error: str) -> str:
    """What to do when connecting to ``address`` failed, most often for want of token authentication."""
    return (
        f"could not connect to the Ray cluster at {address} ({error.strip().splitlines()[0] if error.strip() else 'no reason given'}). "
        f"Ray {version} clusters started with `ray start --head` use token authentication (Ray 2.59+; its log says "
        f"InvalidAuthToken) and a driver must too: set RAY_AUTH_MODE=token in this environment, with the cluster's "
        f"token in {RAY_TOKEN_FILE} (the default on the head node), RAY_AUTH_TOKEN=<token> or "
        f"RAY_AUTH_TOKEN_PATH=<file> (`ray get-auth-token` on the head prints it); or, on the head node, use "
        f"--ray-address auto. If the cluster does not use tokens, check that HOST:PORT is its GCS address "
        f"(`ray status`)"
    )


def _ray_result(ray: Any, ref: Any) -> Any:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        cause = error.cause if isinstance(error.cause, BaseException) else None
        if cause is not None:
            raise cause from None  # e.g. RunFolderNotVisibleError: the user's error, not Ray's
        raise
    except ray.exceptions.WorkerCrashedError:
        raise ExecutorError(
            "a Ray worker died while running a cell; every finished cell is kept in the run "
            "folder: run the same command again to resume"
        ) from None

"""Executors: the same cells give the same results in-process, in worker processes and on Ray."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import executor_cells
from robustbench_win.run.executors import (
    ExecutorError, RunFolderNotVisibleError, Task, WorkerSetup, default_threads, run_cells,
)
from robustbench_win.run.folder_lock import RunFolderBusyError, hold_run_folder


def _cells(folder: Path, seeds: range) -> list[Task[tuple[str, int]]]:
    return [Task(f"cell {seed}", (str(folder), seed)) for seed in seeds]


def _collect(fn, cells, setup, **kwargs) -> dict[str, str]:
    results: dict[str, str] = {}
    run_cells(fn, cells, setup, on_result=lambda task, value: results.__setitem__(task.name, value), progress=False, **kwargs)
    return results


def test_worker_processes_match_a_sequential_run(tmp_path: Path) -> None:
    sequential, parallel = tmp_path / "seq", tmp_path / "par"
    for folder in (sequential, parallel):
        folder.mkdir()
    here = _collect(executor_cells.seeded_matmul, _cells(sequential, range(4)), WorkerSetup(sequential, threads=1))
    there = _collect(executor_cells.seeded_matmul, _cells(parallel, range(4)), WorkerSetup(parallel, threads=1), jobs=2)
    assert here == there and len(here) == 4
    for seed in range(4):
        assert (sequential / f"cell-{seed}.txt").read_bytes() == (parallel / f"cell-{seed}.txt").read_bytes()
        assert here[f"cell {seed}"].split()[1] == "1"  # each worker ran with the thread count asked for


def test_a_killed_worker_keeps_finished_cells_and_names_the_lost_one(tmp_path: Path) -> None:
    (tmp_path / "die").write_text("2")
    cells = _cells(tmp_path, range(4))
    with pytest.raises(ExecutorError, match=r"died while running .*cell 2.*run the same command again"):
        _collect(executor_cells.die_on_marker, cells, WorkerSetup(tmp_path, threads=1), jobs=2)
    assert (tmp_path / "cell-0.txt").is_file() and not (tmp_path / "cell-2.txt").exists()
    (tmp_path / "die").unlink()
    finished = {path.name: path.stat().st_mtime_ns for path in tmp_path.glob("cell-*.txt")}
    rerun = [cell for cell in cells if f"cell-{cell.payload[1]}.txt" not in finished]  # what a resume redoes
    _collect(executor_cells.die_on_marker, rerun, WorkerSetup(tmp_path, threads=1), jobs=2)
    assert sorted(p.name for p in tmp_path.glob("cell-*.txt")) == [f"cell-{s}.txt" for s in range(4)]
    assert all((tmp_path / name).stat().st_mtime_ns == mtime for name, mtime in finished.items())


def test_workers_import_the_plugins(tmp_path: Path) -> None:
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text(
        "from robustbench_win.registry import register_model\n"
        "@register_model('executor-plugin-net')\n"
        "def net(**kwargs):\n    'A plugin model.'\n    raise NotImplementedError\n"
    )
    setup = WorkerSetup(tmp_path, plugins=(str(plugin),), threads=1)
    found = _collect(executor_cells.registered_models, [Task("a", "executor-plugin-*"), Task("b", "executor-plugin-*")], setup, jobs=2)
    assert found == {"a": ["executor-plugin-net"], "b": ["executor-plugin-net"]}


def test_a_worker_that_cannot_see_the_run_folder_says_so(tmp_path: Path) -> None:
    setup = WorkerSetup(tmp_path / "not-shared", threads=1)
    with pytest.raises(RunFolderNotVisibleError, match="cannot see the run folder.*every\\s+node"):
        _collect(executor_cells.seeded_matmul, _cells(tmp_path, range(1)), setup, jobs=2)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="executor must be one of local, ray, got 'dask'"):
        run_cells(executor_cells.seeded_matmul, [], WorkerSetup(tmp_path), executor="dask")
    with pytest.raises(ValueError, match="jobs must be an integer >= 1, got 0"):
        run_cells(executor_cells.seeded_matmul, [], WorkerSetup(tmp_path), jobs=0)
    with pytest.raises(ValueError, match="threads per worker"):
        WorkerSetup(tmp_path, threads=0)
    assert default_threads(64) == 1


def test_a_second_run_on_a_busy_folder_is_refused(tmp_path: Path) -> None:
    with hold_run_folder(tmp_path):
        with pytest.raises(RunFolderBusyError, match=r"in use by another run \(pid \d+ on host"):
            with hold_run_folder(tmp_path):
                pass
    with hold_run_folder(tmp_path):  # released on exit: the same folder can be run again
        pass


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.cloudpickle.register_pickle_by_value(executor_cells)  # Ray workers do not see tests/ on sys.path
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_tasks_match_a_sequential_run(tmp_path: Path, local_ray) -> None:
    sequential, on_ray = tmp_path / "seq", tmp_path / "ray"
    for folder in (sequential, on_ray):
        folder.mkdir()
    here = _collect(executor_cells.seeded_matmul, _cells(sequential, range(3)), WorkerSetup(sequential, threads=1))
    there = _collect(executor_cells.seeded_matmul, _cells(on_ray, range(3)), WorkerSetup(on_ray, threads=1), executor="ray")
    assert here == there
    assert [p.read_bytes() for p in sorted(sequential.iterdir())] == [p.read_bytes() for p in sorted(on_ray.iterdir())]


def test_a_ray_worker_that_cannot_see_the_run_folder_says_so(tmp_path: Path, local_ray) -> None:
    setup = WorkerSetup(tmp_path / "only-on-the-driver", threads=1)
    with pytest.raises(RunFolderNotVisibleError, match="cannot see the run folder"):
        _collect(executor_cells.seeded_matmul, _cells(tmp_path, range(1)), setup, executor="ray")


def test_stopped_ray_tasks_are_cancelled_and_their_workers_end(tmp_path: Path, local_ray) -> None:
    def stop_after_first(task: Task, result: str) -> None:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("pid-*"))) < 3:  # both sleeping cells have started
            assert time.monotonic() < deadline, "the sleeping cells never started"
            time.sleep(0.1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_cells(executor_cells.record_pid_and_sleep, _cells(tmp_path, range(3)), WorkerSetup(tmp_path, threads=1),
                  executor="ray", progress=False, on_result=stop_after_first)
    sleeping = [int((tmp_path / f"pid-{seed}").read_text()) for seed in (1, 2)]
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in sleeping):  # ray.cancel(force=True) kills the worker process
        assert time.monotonic() < deadline, f"Ray workers {sleeping} still run their cancelled cells"
        time.sleep(0.1)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] if Path(f"/proc/{pid}/stat").exists() else "R"
    return state not in ("Z", "X")

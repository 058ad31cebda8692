"""Worker processes end with the run that started them.

A driver killed outright (``kill -9``: what an out-of-memory killer, a crashed terminal or a
scheduler does) leaves no worker running; SIGTERM and SIGINT stop the workers, print one line
and exit with 128 + the signal number; a stopped run resumes to the records of a run that was
never stopped. Processes are read from ``/proc`` (Linux).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import executor_cells
from robustbench_win.run.executors import Task, WorkerSetup, run_cells
from test_parallel_runs import SAME_FILES, SMALL_SUITE, run, sequential  # noqa: F401 - `sequential` is a fixture

pytestmark = [pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads processes from /proc"),
              pytest.mark.usefixtures("in_tmp_path")]
TESTS = Path(__file__).resolve().parent
GONE_WITHIN = 10.0  # seconds: how soon a worker must end after its driver is killed


# --------------------------------------------------------------------------- processes, from /proc


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, ``None`` when there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie has ended: only its exit status is left)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    """The living processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[1] == pid and stat[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return found


def is_worker(pid: int) -> bool:
    """Whether ``pid`` runs a worker started by multiprocessing (not its resource tracker)."""
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds:.0f} s for {what}")
        time.sleep(0.1)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    """Drivers started by a test; whatever a failed test leaves of them (and their group) is killed."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def start(processes: list[subprocess.Popen], *args: str, **kwargs: object) -> subprocess.Popen:
    """A Python process in its own session (a test's signals reach it alone), tests/ on its path."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, *args], env=env, start_new_session=True, **kwargs)  # type: ignore[call-overload]
    processes.append(process)
    return process


# --------------------------------------------------------------------------- the executor alone (fast)

DRIVER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import executor_cells
    from robustbench_win.run.executors import Task, WorkerSetup, run_cells

    if __name__ == "__main__":
        folder = Path(sys.argv[1])
        tasks = [Task(str(seed), (str(folder), seed)) for seed in (1, 2, 3)]
        run_cells(executor_cells.record_pid_and_sleep, tasks, WorkerSetup(folder, threads=1), jobs=2, progress=False)
""")


def test_workers_end_within_seconds_when_their_driver_is_killed(tmp_path: Path, processes: list) -> None:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    driver = start(processes, str(script), str(tmp_path))
    wait_for(lambda: len(list(tmp_path.glob("pid-*"))) == 2, 120, "both workers to start a cell")
    workers = [int(p.read_text()) for p in tmp_path.glob("pid-*")]
    assert all(alive(pid) for pid in workers) and set(workers) <= set(children(driver.pid))
    driver.kill()  # SIGKILL: the driver runs no code of its own any more
    wait_for(lambda: not any(alive(pid) for pid in workers), GONE_WITHIN, f"workers {workers} to end")


def test_the_portable_parent_watch_ends_a_process_without_the_linux_signal(tmp_path: Path, processes: list) -> None:
    # The watch used where prctl(PR_SET_PDEATHSIG) does not exist, checked here on its own.
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent("""
        import multiprocessing, sys, time
        import executor_cells

        if __name__ == "__main__":
            multiprocessing.get_context("spawn").Process(target=executor_cells.watch_parent_then_sleep,
                                                         args=(sys.argv[1],)).start()
            time.sleep(600)
    """))
    driver = start(processes, str(script), str(tmp_path))
    wait_for(lambda: any(tmp_path.glob("pid-*")), 120, "the child to start")
    child = int(next(tmp_path.glob("pid-*")).read_text())
    assert child in children(driver.pid)
    driver.kill()
    wait_for(lambda: not alive(child), GONE_WITHIN, f"process {child} to end")


def test_a_stopped_driver_stops_its_workers_at_once(tmp_path: Path) -> None:
    def stop_after_first(task: Task, result: str) -> None:
        wait_for(lambda: (tmp_path / "pid-1").is_file(), 120, "the second worker to start its cell")
        raise KeyboardInterrupt  # what Ctrl-C (or SIGTERM, through the command line) raises here

    tasks = [Task(str(seed), (str(tmp_path), seed)) for seed in (0, 1, 2)]
    with pytest.raises(KeyboardInterrupt):
        run_cells(executor_cells.record_pid_and_sleep, tasks, WorkerSetup(tmp_path, threads=1), jobs=2,
                  progress=False, on_result=stop_after_first)
    assert not alive(int((tmp_path / "pid-1").read_text()))  # ended before run_cells returned, not 10 minutes later
    assert not (tmp_path / "pid-2").exists()  # the cell not started yet never starts
    assert not multiprocessing.active_children()


# --------------------------------------------------------------------------- a whole run (slow)


def run_command(tmp_path: Path, name: str) -> list[str]:
    suite = tmp_path / "paper-cnn.toml"
    suite.write_text(SMALL_SUITE.format(model="paper-cnn"))
    return ["-m", "robustbench_win", "run", str(suite), "--out", str(tmp_path / name), "--checkpoint-dir",
            str(tmp_path / f"checkpoints-{name}"), "--jobs", "2", "--threads", "1", "--quiet"]


def busy(driver: subprocess.Popen, out: Path) -> list[int]:
    """Wait until both workers run a cell and one model is finished; return the driver's child processes."""
    wait_for(lambda: driver.poll() is not None or any((out / "runs").glob("*/clean.json")), 300,
             "the first model to finish")
    assert driver.poll() is None, "the run ended before it could be stopped"
    found = children(driver.pid)
    assert len([pid for pid in found if is_worker(pid)]) == 2
    return found  # the workers and multiprocessing's resource tracker


@pytest.mark.slow
def test_a_run_killed_outright_leaves_no_worker_and_resumes_to_the_same_records(
        tmp_path: Path, processes: list, sequential: Path) -> None:  # noqa: F811 - the fixture imported above
    driver = start(processes, *run_command(tmp_path, "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = busy(driver, tmp_path / "killed")
    driver.kill()
    wait_for(lambda: not any(alive(pid) for pid in workers), GONE_WITHIN, f"workers {workers} to end")
    code, out = run(tmp_path, "killed", "--jobs", "2", "--threads", "1")  # the same command again
    assert code == 0
    for name in SAME_FILES:
        assert (out / name).read_bytes() == (sequential / name).read_bytes(), name
    assert not list(out.rglob(".*.tmp"))  # no half-written file is left behind


@pytest.mark.slow
def test_sigterm_stops_the_workers_says_what_is_saved_in_one_line_and_exits_143(
        tmp_path: Path, processes: list) -> None:
    driver = start(processes, *run_command(tmp_path, "terminated"), stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, text=True)
    started = busy(driver, tmp_path / "terminated")
    workers = [pid for pid in started if is_worker(pid)]
    assert len(workers) == 2
    driver.send_signal(signal.SIGTERM)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 128 + signal.SIGTERM
    assert not any(alive(pid) for pid in workers)  # stopped before the driver exited
    wait_for(lambda: not any(alive(pid) for pid in started), GONE_WITHIN, "multiprocessing's resource tracker to end")
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    runs = tmp_path / "terminated" / "runs"
    models = len(list(runs.glob("*/clean.json")))
    assert lines[0].startswith(f"robustbench-win: stopped by SIGTERM: {models} model{'s' * (models != 1)} with "
                               f"clean accuracy and ")
    assert f"are saved in {runs}; run the same command again to resume" in lines[0]

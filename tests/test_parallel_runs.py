"""A suite run in one process, in worker processes and on Ray writes the same results; a dead
worker loses only its cell; a busy run folder is refused.

The whole-suite runs train and attack in worker processes started from scratch, so they run in
``make test-slow``; tests/test_executors.py checks the same properties on small cells in ``make test``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from robustbench_win.cli import main
from robustbench_win.registry import MODELS
from robustbench_win.run.folder_lock import hold_run_folder

SMALL_SUITE = """
name = "small"
description = "four tiny models, a few attacked digits"
dataset = "mnist5k"
train_size = 600
kernel_sizes = [3, 5]
windows = ["none", "hamming"]
seeds = [0]
attack_samples = 8
notes = ["test-sized"]

[model]
name = "{model}"
args = {{ depth = 2, width = 8 }}

[train]
epochs = 1
batch_size = 32
lr = 0.05
milestones = []

[[attacks]]
name = "deepfool"

[[attacks]]
name = "spatial-random"
"""
# Compared byte for byte: the per-sample records and every table computed from them.
SAME_FILES = ("samples.csv.gz", "table_clean_accuracy.csv", "table_deepfool.csv", "table_spatial.csv")
# A paper CNN whose factory kills its worker process (as `kill -9` would) while ``die`` exists
# beside the plug-in and the kernel size is 5. The driver, which builds each model once to
# check the suite, is spared.
DYING_PLUGIN = """
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from robustbench_win.models import PaperCNN
from robustbench_win.registry import register_model

@register_model("dying-cnn")
def dying_cnn(*, kernel_size: int = 3, **kwargs):
    '''A paper CNN that dies while being built for k = 5 (test plug-in).'''
    in_worker = multiprocessing.parent_process() is not None
    if in_worker and kernel_size == 5 and (Path(__file__).parent / "die").exists():
        os._exit(9)
    return PaperCNN(kernel_size=kernel_size, **kwargs)
"""


def run(root: Path, name: str, *extra: str, model: str = "paper-cnn") -> tuple[int, Path]:
    suite = root / f"{model}.toml"
    suite.write_text(SMALL_SUITE.format(model=model))
    out = root / name
    code = main(["run", str(suite), "--out", str(out), "--checkpoint-dir", str(root / f"checkpoints-{name}"),
                 "--quiet", *extra])
    return code, out


@pytest.fixture(scope="module")
def sequential(tmp_path_factory: pytest.TempPathFactory) -> Path:
    code, out = run(tmp_path_factory.mktemp("sequential"), "out", "--threads", "1")
    assert code == 0
    return out


@pytest.mark.slow
def test_worker_processes_write_the_same_results_as_one_process(sequential: Path, tmp_path: Path) -> None:
    code, out = run(tmp_path, "jobs2", "--jobs", "2", "--threads", "1")
    assert code == 0
    for name in SAME_FILES:
        assert (out / name).read_bytes() == (sequential / name).read_bytes(), name


@pytest.mark.slow
def test_ray_tasks_write_the_same_results_as_one_process(sequential: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    code, out = run(tmp_path, "ray", "--executor", "ray", "--threads", "1")
    assert code == 0
    for name in SAME_FILES:
        assert (out / name).read_bytes() == (sequential / name).read_bytes(), name


@pytest.mark.slow
def test_a_killed_worker_loses_only_unfinished_cells(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plugin = tmp_path / "dying.py"
    plugin.write_text(DYING_PLUGIN)
    (tmp_path / "die").touch()
    args = ("--jobs", "2", "--threads", "1", "--plugin", str(plugin))
    code, out = run(tmp_path, "out", *args, model="dying-cnn")
    assert code == 2
    assert "worker process died while running" in capsys.readouterr().err
    results = ("clean.json", "attack-deepfool.csv", "attack-spatial-random.csv")
    done = [d for d in (out / "runs").iterdir() if all((d / name).is_file() for name in results)]
    assert done and all("_k3_" in d.name for d in done)  # the k = 3 cells ran before the k = 5 ones
    before = {d / name: (d / name).stat().st_mtime_ns for d in done for name in results}
    (tmp_path / "die").unlink()
    code, out = run(tmp_path, "out", *args, model="dying-cnn")
    assert code == 0
    assert len(list((out / "runs").glob("*/clean.json"))) == 4
    assert {path: path.stat().st_mtime_ns for path in before} == before  # finished cells were not redone


@pytest.fixture(autouse=True)
def _plugin_models_unregistered() -> Iterator[None]:
    """A plug-in model registered by a test here is gone afterwards, so other tests list only the built-ins."""
    before = set(MODELS.names())
    yield
    for name in set(MODELS.names()) - before:
        MODELS._entries.pop(name)


def test_a_second_run_on_a_busy_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with hold_run_folder(tmp_path / "busy"):
        code, _ = run(tmp_path, "busy")
    assert code == 2
    err = capsys.readouterr().err
    assert "is in use by another run (pid" in err and "Traceback" not in err

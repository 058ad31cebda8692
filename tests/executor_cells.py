"""Cell functions for the executor tests: module level, so worker processes can import them."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch


def seeded_matmul(task: tuple[str, int]) -> str:
    """Write a seeded torch computation to ``folder/cell-<seed>.txt``; return the text."""
    folder, seed = task
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(64, 64, generator=generator)
    text = f"{seed} {torch.get_num_threads()} {(a @ a).sum().item():.9g}\n"
    Path(folder, f"cell-{seed}.txt").write_text(text)
    return text


def die_on_marker(task: tuple[str, int]) -> str:
    """Like :func:`seeded_matmul`, but the process dies at once (as under ``kill -9``) on the
    cell whose seed is in ``folder/die``, before writing anything."""
    folder, seed = task
    marker = Path(folder, "die")
    if marker.is_file() and int(marker.read_text()) == seed:
        os._exit(9)
    return seeded_matmul(task)


def registered_models(task: str) -> list[str]:
    """The model names registered in the worker (shows whether plugins were imported)."""
    from robustbench_win.registry import MODELS

    return MODELS.names(task)


def record_pid_and_sleep(task: tuple[str, int]) -> str:
    """Write this process's pid to ``folder/pid-<seed>``, then sleep (10 min) unless ``seed`` is 0."""
    folder, seed = task
    Path(folder, f"pid-{seed}").write_text(str(os.getpid()))
    if seed:
        time.sleep(600)
    return str(os.getpid())


def watch_parent_then_sleep(folder: str) -> None:
    """In a process started by another: only the portable parent watch (no Linux death signal), then sleep."""
    from robustbench_win.run.executors import exit_when_parent_exits

    exit_when_parent_exits()
    Path(folder, f"pid-{os.getpid()}").write_text(str(os.getpid()))
    time.sleep(600)

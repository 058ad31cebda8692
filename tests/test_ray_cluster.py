"""The cluster path as users meet it: a head started with `ray start --head` that uses token authentication.

Ray (2.59+) turns token authentication on for `ray start --head` when a token exists (as after any local
`ray.init()`, which writes ``~/.ray/auth_token``). A driver that connects by address without
``RAY_AUTH_MODE=token`` is refused; the run must say why and how to fix it, and work once told.
Everything runs under a private HOME and temp dir, and the head's processes are stopped by their ids
(`ray stop` would stop every Ray process of this user on the machine, other people's runs included).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray")

SUITE = """
name = "ray-tiny"
dataset = "mnist5k"
train_size = 200
kernel_sizes = [3]
windows = ["none"]
seeds = [0]
attack_samples = 2

[model]
name = "paper-cnn"
args = { depth = 2, width = 4 }

[train]
epochs = 1
milestones = []

[[attacks]]
name = "deepfool"
"""
RAY = [sys.executable, "-m", "ray.scripts.scripts"]  # the `ray` command, wherever the environment put its script


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(root: Path) -> None:
    """Stop the processes of this head only: those whose command line names its private temp dir."""
    found = subprocess.run(["pgrep", "-f", str(root)], capture_output=True, text=True).stdout.split()
    for signal_ in (signal.SIGTERM, signal.SIGKILL):
        for pid in found:
            try:
                os.kill(int(pid), signal_)
            except ProcessLookupError:
                pass
        time.sleep(1)


@pytest.fixture(scope="module")
def head() -> Iterator[tuple[str, dict[str, str], Path]]:
    root = Path(tempfile.mkdtemp(prefix="rbw", dir="/tmp"))  # short: Ray's socket paths have a length limit
    home = root / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | {"HOME": str(home)}
    subprocess.run([*RAY, "get-auth-token", "--generate"], env=env, check=True, capture_output=True,
                   timeout=120)
    port = _free_port()
    try:
        subprocess.run([*RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                        f"--temp-dir={root / 'r'}", "--num-cpus=2", "--include-dashboard=false",
                        "--disable-usage-stats"], env=env, check=True, capture_output=True, timeout=180)
        (root / "suite.toml").write_text(SUITE)
        yield f"127.0.0.1:{port}", env, root
    finally:
        _stop(root)
        shutil.rmtree(root, ignore_errors=True)


def _run(root: Path, address: str, env: dict[str, str], out: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "robustbench_win", "run", str(root / "suite.toml"), "--out",
                           str(root / out), "--checkpoint-dir", str(root / "ck"), "--quiet", "--threads", "1",
                           "--executor", "ray", "--ray-address", address],
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_token_cluster_refuses_a_driver_without_token_auth_and_says_how_to_fix_it(head) -> None:
    address, env, root = head
    refused = _run(root, address, env, "refused")
    assert refused.returncode != 0
    assert "RAY_AUTH_MODE=token" in refused.stderr and "auth_token" in refused.stderr, refused.stderr[-2000:]
    assert "Traceback" not in refused.stderr
    connected = _run(root, address, env | {"RAY_AUTH_MODE": "token"}, "connected")
    assert connected.returncode == 0, connected.stderr[-2000:]
    assert (root / "connected" / "summary.md").is_file()

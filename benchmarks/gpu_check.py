"""GPU check: the same batches, models and attacks on CUDA and on the CPU must agree.

Checks that training batches built on the GPU (data held on the device) are bit for bit those
built on the CPU; trains a small paper CNN on the embedded digits on the GPU with the speed
options off, as "auto" resolves them, and all on (channels-last, data on the device,
torch.compile), in fp32 and bf16 autocast; then attacks the same test images on both devices
and prints how closely the per-sample results agree, with the time each took. Needs a CUDA
device::

    python benchmarks/gpu_check.py [--samples 200] [--kernel-size 7] [--no-compile] [--smoke]
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from robustbench_win.train.batches import BatchSource
from robustbench_win.train.checkpoints import ModelSpec, build_model
from robustbench_win.data.datasets import load_dataset, stratified_subset
from robustbench_win.registry import ATTACKS
from robustbench_win.train.config import TrainConfig
from robustbench_win.train.loop import evaluate, seed_everything, train

SPEED_CHOICES = {  # label -> (channels_last, data_on_device, compile)
    "off": (False, False, False),
    "auto": ("auto", "auto", "auto"),
    "on": (True, True, True),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=200, help="test images attacked")
    parser.add_argument("--kernel-size", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--no-compile", action="store_true", help="skip the all-on runs (torch.compile takes a while)")
    parser.add_argument("--smoke", action="store_true", help="seconds: 8 images, k = 3, one epoch, no compile")
    args = parser.parse_args()
    if args.smoke:
        args.samples, args.kernel_size, args.epochs, args.no_compile = 8, 3, 1, True
    return args


def check_device_batches() -> bool:
    """Two epochs of augmented batches built on the GPU equal those built on the CPU, bit for bit."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (1000, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (1000,), generator=generator)
    on_gpu = BatchSource(images, labels, storage="cuda", target="cuda", channels_last=True)
    on_cpu = BatchSource(images, labels, storage="cpu", target="cuda")
    gpu_draws, cpu_draws = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    same = True
    for _ in range(2):
        for (x_gpu, y_gpu), (x_cpu, y_cpu) in zip(on_gpu.epoch(32, gpu_draws, True), on_cpu.epoch(32, cpu_draws, True)):
            same &= bool(torch.equal(x_gpu, x_cpu) and torch.equal(y_gpu, y_cpu))
    return same


def train_on(device: str, precision: str, speed: str, kernel_size: int, epochs: int) -> tuple[torch.nn.Module, dict[str, object]]:
    """Train on ``device``; return the model and a table row (speed options used, accuracy, seconds)."""
    data = load_dataset("mnist5k")
    channels_last, data_on_device, compile_ = SPEED_CHOICES[speed]
    config = TrainConfig(epochs=epochs, batch_size=64, lr=0.05, milestones=(epochs - 2,), precision=precision,  # type: ignore[arg-type]
                         channels_last=channels_last, data_on_device=data_on_device, compile=compile_)
    spec = ModelSpec("paper-cnn", {"kernel_size": kernel_size, "window": "hamming", "depth": 4, "width": 32}, "mnist5k", config)
    seed_everything(0)
    model = build_model(spec, data)
    start = time.perf_counter()
    result = train(model, data, config, seed=0, device=device, progress=False)
    seconds = time.perf_counter() - start
    used = ", ".join(name for name, on in result.speed.as_dict().items() if on) or "none"
    plain = all(p.dtype == torch.float32 and p.is_contiguous() for p in model.parameters())
    accuracy = float(evaluate(model, data, device=device).float().mean())
    return model, {"precision": precision, "speed options": f"{speed}: {used}", "fp32 contiguous weights": plain,
                   "test acc. (%)": 100 * accuracy, "train (s)": seconds}


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
    print(f"batches built on the GPU equal those built on the CPU: {check_device_batches()}\n")
    runs = [("fp32", "off"), ("fp32", "auto"), ("bf16", "auto")] + ([] if args.no_compile else [("fp32", "on"), ("bf16", "on")])
    trained = {run: train_on("cuda", *run, args.kernel_size, args.epochs) for run in runs}
    print_table([row for _, row in trained.values()])
    data = load_dataset("mnist5k")
    images, labels = data.test_tensors(stratified_subset(data.test_labels, args.samples, 1234))
    model = trained["fp32", "auto"][0].eval()
    print()
    print_table([compare_attack(name, model, images, labels)
                 for name in ("deepfool", "deepfool-foolbox", "spatial-grid", "spatial-random")])


def print_table(rows: list[dict[str, object]]) -> None:
    """A markdown table; floats with three significant digits."""
    print("| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()) + " |")


if __name__ == "__main__":
    main()

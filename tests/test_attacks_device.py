"""Every attack on a CUDA model gives the CPU results (skipped without a GPU)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from robustbench_win.registry import ATTACKS

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.filterwarnings("ignore:torch.meshgrid. in an upcoming release:UserWarning"),
]

KWARGS: dict[str, dict] = {
    "deepfool": {},
    "deepfool-foolbox": {},
    "deepfool-art": {},
    "spatial-grid": {},
    "spatial-random": {},
    "spatial-foolbox": {"num_rotations": 11},
    "spatial-art": {"num_rotations": 5, "num_translations": 3},
}


@pytest.mark.parametrize("name", sorted(KWARGS))
def test_cuda_matches_cpu(name, trained_digits_model, digits_test_batch, caplog):
    images, labels = (t[:48] for t in digits_test_batch)
    cuda_model = copy.deepcopy(trained_digits_model).cuda()
    state = {k: v.clone() for k, v in cuda_model.state_dict().items()}
    attack = ATTACKS.create(name, **KWARGS[name])
    allow_tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = True  # the attack must switch TF32 off, and back on
    try:
        on_gpu = attack(cuda_model, images, labels, batch_size=32)
        assert torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32 = allow_tf32
    on_cpu = attack(trained_digits_model, images, labels, batch_size=32)

    assert "failed verification" not in caplog.text
    assert all(v.device.type == "cuda" for v in cuda_model.state_dict().values())
    assert all(torch.equal(v, state[k]) for k, v in cuda_model.state_dict().items())
    assert all(r.x_adv is None or r.x_adv.device.type == "cpu" for r in on_gpu)
    assert [r.attacked for r in on_gpu] == [r.attacked for r in on_cpu]
    agree = np.mean([g.success == c.success for g, c in zip(on_gpu, on_cpu) if g.attacked])
    assert agree >= 0.95
    both = [(g.l2, c.l2) for g, c in zip(on_gpu, on_cpu) if g.success and c.success]
    if name.startswith("deepfool"):
        relative = [abs(g - c) / c for g, c in both]
        assert np.median(relative) < 1e-3

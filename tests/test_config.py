"""Config plumbing without Hydra subprocesses: group-name checks, devices, the data root, the preset."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir

from gsbench.config import CONFIG_DIR, check_overrides, data_dir, group_options, register_resolvers
from gsbench.errors import UserError
from gsbench.runner import resolve_device


def test_group_options_and_sweep_values_are_checked():
    assert "gi" in group_options("method") and "kodak" in group_options("dataset")
    check_overrides(["method=gi", "dataset=kodak,samples", "gaussians=5", "hydra/launcher=joblib"])
    with pytest.raises(UserError, match=r"unknown dataset 'kodac'; valid names: .*kodak"):
        check_overrides(["dataset=kodak,kodac"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_gpu_is_a_clear_error():
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(UserError, match="no CUDA device; use device=cpu"):
        resolve_device("cuda")
    with pytest.raises(UserError, match="valid: auto, cpu, cuda"):
        resolve_device("tpu")


def test_data_root_prefers_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GSBENCH_DATA", str(tmp_path))
    assert data_dir() == str(tmp_path)


def test_preset_quick_wins_over_top_level_defaults_and_loses_to_the_command_line():
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["preset=quick"])
        assert (cfg.gaussians, cfg.train.iterations, cfg.dataset.name) == (2000, 2000, "samples")
        cfg = compose("config", overrides=["preset=quick", "gaussians=7", "dataset=kodak"])
        assert (cfg.gaussians, cfg.dataset.name) == (7, "kodak")
        assert compose("config").train.iterations == 50000  # the paper's default without the preset

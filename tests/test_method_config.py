"""Each method's option dataclasses (``methods/<name>/config.py``): the YAML is the single source of the
defaults, partial mappings are filled from it, and a bad value fails with one line naming the key."""

from __future__ import annotations

import dataclasses

import pytest

from gsbench.errors import UserError
from gsbench.methods import get_method
from gsbench.methods.coin.config import CoinConfig
from gsbench.methods.gi.config import GICodecConfig, GIConfig
from gsbench.methods.gi_pp.config import GIPPCodecConfig, GIPPConfig
from gsbench.methods.image_gs.config import ImageGSConfig
from gsbench.methods.instant_gi.config import InstantGIConfig
from gsbench.methods.options import HYDRA_KEYS, ConfigError, yaml_defaults
from gsbench.methods.sgi.config import SGICodecConfig, SGIConfig

OPTIONS = [GIConfig, GICodecConfig, GIPPConfig, GIPPCodecConfig, CoinConfig, InstantGIConfig, SGIConfig,
           SGICodecConfig]  # fmt: skip


@pytest.mark.parametrize("cls", OPTIONS, ids=lambda c: c.__name__)
def test_fields_are_the_yaml_keys(cls):
    """One field per key of the YAML node, no more, no less: the YAML is where every default lives."""
    keys = set(yaml_defaults(cls.method, cls.node)) - HYDRA_KEYS
    assert {f.name for f in dataclasses.fields(cls)} == keys
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(cls))  # no default in code


def test_image_gs_reads_both_nodes():
    keys = (set(yaml_defaults("image_gs", "method")) | set(yaml_defaults("image_gs", "codec"))) - HYDRA_KEYS
    assert {f.name for f in dataclasses.fields(ImageGSConfig)} == keys


def test_partial_mapping_is_filled_from_the_yaml_and_frozen():
    cfg = GIConfig.from_mapping({"name": "gi", "lr": "0.01"})
    assert cfg == GIConfig(variant="cholesky", lr=0.01, lr_step=20000, lr_gamma=0.5, loss="l2")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0  # type: ignore[misc]
    codec = GIPPCodecConfig.from_mapping({"warmup": 3})
    assert codec.warmup == 3 and codec.iterations is None and codec.pipeline == "two_stage"
    assert get_method("gi", {"variant": "rs"}, {"iterations": 1}).config.variant == "rs"


def test_nested_nodes_merge_key_by_key():
    cfg = SGIConfig.from_mapping({"lr": {"offset": 0.5}})
    rates = cfg.learning_rates()
    assert rates["offset"] == [0.5, 0.5] and rates["mlp_color"] == [0.008, 5e-05]
    assert cfg.hash["table_log2"] == 13 and cfg.level_ends is None
    assert SGIConfig.from_mapping({"level_ends": [0.5, 0.75, 1.0]}).level_ends == (0.5, 0.75, 1.0)


def test_hydra_keys_and_interpolations():
    # instant_gi's checkpoint is ${init.checkpoint} in the YAML: resolved inside the file (null)
    assert yaml_defaults("instant_gi", "method")["checkpoint"] is None
    assert InstantGIConfig.from_mapping({"budget_tag": "x", "name": "instant_gi"}).checkpoint is None
    assert CoinConfig.from_mapping({"budget_tag": "h5x20", "hidden": 5}).hidden == 5


@pytest.mark.parametrize(
    ("cls", "given", "message"),
    [
        (GIConfig, {"variant": "polar"}, r"^method\.variant must be one of cholesky, rs, got 'polar'$"),
        (GIConfig, {"lr_step": 2.5}, r"^method\.lr_step must be an integer, got 2\.5$"),
        (GIConfig, {"lr": "fast"}, r"^method\.lr must be a number, got 'fast'$"),
        (GIConfig, {"rate": 1}, r"^unknown gi option\(s\) \['rate'\]; valid: variant, lr, lr_step"),
        (GICodecConfig, {"entropy": "yes"}, r"^codec\.entropy must be true or false, got 'yes'$"),
        (GICodecConfig, {"rvq_stages": 9}, r"^codec\.rvq_stages must be in 1\.\.8, got 9$"),
        (GICodecConfig, {"qat": 1}, r"^unknown gi codec option\(s\) \['qat'\]"),
        (GIPPCodecConfig, {"pipeline": "x"}, r"^codec\.pipeline must be one of two_stage, single, got 'x'$"),
        (InstantGIConfig, {"budget_mode": "all"}, r"^method\.budget_mode must be one of cap, target, free"),
        (SGIConfig, {"lr": {"colour": 0.1}}, r"unknown learning-rate key\(s\) \['colour'\]"),
        (SGIConfig, {"levels": 9}, r"levels must be in 1\.\.8"),
        (SGICodecConfig, {"q_offset": 0}, r"^codec\.q_offset must be > 0, got 0"),
    ],
)
def test_bad_values_fail_with_one_line_naming_the_key(cls, given, message):
    with pytest.raises(ConfigError, match=message) as info:
        cls.from_mapping(given)
    assert isinstance(info.value, ValueError) and isinstance(info.value, UserError)
    assert "\n" not in str(info.value)


def test_a_bad_option_fails_when_the_method_is_built():
    with pytest.raises(ValueError, match=r"method\.variant must be one of paper, code"):
        get_method("gi_pp", {"variant": "papr"}, {"iterations": 1})
    with pytest.raises(ValueError, match=r"codec\.cholesky_bits must be in 1\.\.16"):
        get_method("gi", {}, {"iterations": 1}, {"cholesky_bits": 0})

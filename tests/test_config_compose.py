"""Every option of every config group composes, resolves and names what it says (Hydra compose API, in
process, nothing is fitted); every method config builds its method; every ``_target_`` imports."""

from __future__ import annotations

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class
from omegaconf import OmegaConf

from gsbench.config import CONFIG_DIR, group_options, register_resolvers
from gsbench.errors import UserError
from gsbench.methods import METHODS, get_method
from helpers import compose_config

GROUPS = sorted(p.name for p in CONFIG_DIR.iterdir() if p.is_dir() and p.name != "hydra")
OPTIONS = [(group, option) for group in GROUPS for option in group_options(group)]
# groups whose option name is also the composed node's `name` key
NAMED = {"method", "dataset", "task", "logger"}
NEEDS_CHECKPOINT = {"instant_gi"}  # builds only with a trained init.checkpoint (tests/test_instant_gi.py)


def launcher_options() -> list[str]:
    """hydra/launcher options: Hydra's own, the installed plugins' and configs/hydra/launcher/*.yaml."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return GlobalHydra.instance().config_loader().get_group_options("hydra/launcher")


def test_every_group_has_options():
    assert {"method", "dataset", "task", "render", "metrics", "logger", "paths", "preset"} <= set(GROUPS)
    assert all(group_options(g) for g in GROUPS)


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_resolves(group, option):
    cfg = compose_config(f"{group}={option}")
    plain = OmegaConf.to_container(cfg, resolve=True)  # a broken interpolation fails here
    assert {"gaussians", "seed", "device", "method", "dataset", "task", "train"} <= set(plain)
    if group in NAMED:
        assert cfg[group].name == option


@pytest.mark.parametrize("option", group_options("method"))
def test_method_config_builds_its_method_for_each_task(option):
    cls = METHODS.get(option)
    for task in cls.tasks:
        cfg = compose_config(f"method={option}", f"task={task}")
        assert cfg.method.name == option
        if option in NEEDS_CHECKPOINT:
            continue
        try:
            method = get_method(cfg.method.name, cfg.method, cfg.train, cfg.get("codec"))
        except UserError as exc:  # a classical codec whose library is not installed here
            assert "installed" in str(exc), exc
            continue
        assert method.budget(int(cfg.gaussians)) > 0


def test_every_registered_method_has_a_config():
    assert set(METHODS.names()) == set(group_options("method"))


@pytest.mark.parametrize("launcher", launcher_options())
def test_launchers_and_callbacks_resolve_to_classes(launcher):
    cfg = compose_config(f"hydra/launcher={launcher}", hydra_node=True)
    assert get_class(cfg.hydra.launcher._target_)
    for callback in cfg.hydra.callbacks.values():
        assert get_class(callback._target_)

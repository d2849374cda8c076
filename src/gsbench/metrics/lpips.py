"""LPIPS-Alex v0.1 (Zhang et al. 2018) in plain torch, without torchvision or the ``lpips`` package.

The network mirrors the official ``lpips.LPIPS(net="alex", version="0.1")`` layer for layer so that the
official weights load unchanged: torchvision's ``alexnet().features`` trunk (taps after the ReLUs at
indices 1, 4, 7, 9, 11), the scaling layer, channel-wise unit normalisation, squared difference, 1x1 linear
heads without bias, spatial mean, sum over the 5 layers. If the official ``lpips`` package happens to be
installed it gives the same numbers; it is not needed.

Weights: one state dict with keys ``features.{0,3,6,8,10}.{weight,bias}`` and ``lin{0..4}.model.1.weight``
(see :func:`resolve_lpips_weights` for where it is looked for, :func:`fetch_lpips_alex_weights` to build it).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

import torch
from torch import nn

from gsbench.metrics._common import MetricUnavailable, full_fp32_convs, prepare_pair
from gsbench.metrics.registry import Metric, register

__all__ = [
    "ALEXNET_URL",
    "LIN_URL",
    "LPIPS_WEIGHTS_ENV",
    "AlexLPIPS",
    "fetch_lpips_alex_weights",
    "load_lpips_alex",
    "lpips",
    "resolve_lpips_weights",
]

LPIPS_WEIGHTS_ENV = "GSBENCH_LPIPS_WEIGHTS"
WEIGHTS_NAME = "lpips_alex_v0.1.pth"
ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
#: torchvision names its files ``<name>-<first 8 hex of sha256>.pth`` and checks that prefix; so do we.
ALEXNET_SHA256_PREFIX = "7be5be79"
LIN_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth"

_CHANNELS = (64, 192, 384, 256, 256)
_CONV_IDX = (0, 3, 6, 8, 10)
_TAP_IDX = (1, 4, 7, 9, 11)  # the ReLU after each conv: LPIPS compares these activations
_EPS = 1e-10  # as lpips.normalize_tensor


class _NetLin(nn.Module):
    """Official ``NetLinLayer`` layout (``model = Sequential(Dropout, Conv1x1)``) so keys read ``model.1``."""

    def __init__(self, chn_in: int) -> None:
        super().__init__()
        # Dropout is inactive at evaluation, so Identity keeps the index without the module.
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(chn_in, 1, kernel_size=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class AlexLPIPS(nn.Module):
    """LPIPS-Alex v0.1 distance network; load a state dict in the layout described in the module doc."""

    def __init__(self) -> None:
        super().__init__()
        # Exactly torchvision's alexnet().features[:12] so the conv indices (0, 3, 6, 8, 10) match the keys.
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
        )
        self.lin0, self.lin1, self.lin2, self.lin3, self.lin4 = (_NetLin(c) for c in _CHANNELS)
        # Non-persistent: the official checkpoints do not store them.
        self.register_buffer(
            "shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((2.0 * x - 1.0) - self.shift) / self.scale
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _TAP_IDX:
                taps.append(x / (x.square().sum(dim=1, keepdim=True).sqrt() + _EPS))
        return taps

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """LPIPS distance per image.

        Args:
            x0, x1: Bx3xHxW images in [0, 1] (mapped to [-1, 1] here, as ``lpips(..., normalize=True)``).

        Returns:
            Tensor of shape (B,).
        """
        lins = (self.lin0, self.lin1, self.lin2, self.lin3, self.lin4)
        total = x0.new_zeros(x0.shape[0])
        for lin, f0, f1 in zip(lins, self._taps(x0), self._taps(x1), strict=True):
            total = total + lin((f0 - f1).square()).mean(dim=(1, 2, 3))
        return total


def resolve_lpips_weights(path: str | Path | None = None) -> Path:
    """Find the LPIPS-Alex weight file.

    Order: ``path``; env ``GSBENCH_LPIPS_WEIGHTS``; ``<repo>/../shared/weights/lpips_alex_v0.1.pth``;
    ``~/.cache/gsbench/weights/lpips_alex_v0.1.pth``. An explicitly given path (argument or env var) that
    does not exist is an error rather than skipped, so a typo cannot silently pick up another file.

    Raises:
        FileNotFoundError: nothing found; the message says where to put the file and how to fetch it.
    """
    explicit = path if path is not None else (os.environ.get(LPIPS_WEIGHTS_ENV) or None)
    if explicit is not None:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise FileNotFoundError(
                f"LPIPS weights not found at {p} (from the argument or ${LPIPS_WEIGHTS_ENV})"
            )
        return p
    repo_root = Path(__file__).resolve().parents[3]
    cache = Path("~/.cache/gsbench/weights").expanduser() / WEIGHTS_NAME
    candidates = [repo_root.parent / "shared" / "weights" / WEIGHTS_NAME, cache]
    for p in candidates:
        if p.is_file():
            return p
    raise FileNotFoundError(
        "LPIPS-Alex v0.1 weights not found; looked in: "
        + ", ".join(str(p) for p in candidates)
        + f". Set ${LPIPS_WEIGHTS_ENV} to the file, or build it (downloads torchvision's AlexNet and the "
        "official LPIPS linear heads) with:\n"
        '  python -c "from gsbench.metrics.lpips import fetch_lpips_alex_weights as f; '
        f"f('{cache}')\""
    )


_NET_CACHE: dict[tuple[str, str], AlexLPIPS] = {}


def load_lpips_alex(weights: str | Path | None = None, device: torch.device | str = "cpu") -> AlexLPIPS:
    """The LPIPS network in eval mode on ``device``, cached per (resolved weight path, device)."""
    path = resolve_lpips_weights(weights).resolve()
    device = torch.device(device)
    key = (str(path), str(device))
    net = _NET_CACHE.get(key)
    if net is None:
        net = AlexLPIPS()
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
        net = net.to(device).eval().requires_grad_(False)
        _NET_CACHE[key] = net
    return net


LPIPS_MIN_SIDE = 32


def lpips(ref: torch.Tensor, rec: torch.Tensor, *, weights: str | Path | None = None) -> float:
    """LPIPS-Alex v0.1 distance between the render (clamped to [0, 1]) and the reference; lower is better.

    Args:
        ref: 3xHxW reference in [0, 1].
        rec: 3xHxW raw render.
        weights: weight file; ``None`` searches as :func:`resolve_lpips_weights` describes.

    Returns:
        LPIPS distance (0 for identical images).
    """
    ref, rec = prepare_pair(ref, rec)
    if min(ref.shape[-2:]) < LPIPS_MIN_SIDE:
        # AlexNet's strided convolutions and pools leave nothing of smaller inputs (the official code crashes)
        size = tuple(ref.shape[-2:])
        raise MetricUnavailable(f"LPIPS-Alex needs both sides >= {LPIPS_MIN_SIDE} px, got {size}")
    net = load_lpips_alex(weights, ref.device)
    with torch.no_grad(), full_fp32_convs(ref.device):
        return float(net(ref[None], rec[None])[0])


def _download(url: str, dest: Path, timeout: float) -> str:
    """Stream ``url`` to ``dest``; return the hex sha256 of the bytes."""
    sha = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=timeout) as resp, dest.open("wb") as f:
        while chunk := resp.read(1 << 20):
            sha.update(chunk)
            f.write(chunk)
    return sha.hexdigest()


def fetch_lpips_alex_weights(
    dest: str | Path,
    *,
    alexnet_url: str = ALEXNET_URL,
    lin_url: str = LIN_URL,
    alexnet_sha256_prefix: str | None = ALEXNET_SHA256_PREFIX,
    timeout: float = 60.0,
) -> Path:
    """Download torchvision's AlexNet and the official LPIPS v0.1 heads and save them merged to ``dest``.

    The result holds ``features.{0,3,6,8,10}.{weight,bias}`` from AlexNet (its classifier is dropped) and
    ``lin{0..4}.model.1.weight`` as in the official ``alex.pth``: the layout :func:`load_lpips_alex` reads.

    Args:
        dest: output file; parent folders are created, the file is replaced atomically.
        alexnet_url, lin_url: sources (overridable for mirrors and tests).
        alexnet_sha256_prefix: expected start of the AlexNet file's sha256 (torchvision's check);
            ``None`` skips it.
        timeout: seconds per connection attempt.

    Returns:
        ``dest`` as a Path.

    Raises:
        ValueError: a hash mismatch or a downloaded file without the expected keys.
    """
    dest = Path(dest).expanduser()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        alex_file, lin_file = Path(tmp) / "alexnet.pth", Path(tmp) / "lin.pth"
        digest = _download(alexnet_url, alex_file, timeout)
        if alexnet_sha256_prefix is not None and not digest.startswith(alexnet_sha256_prefix):
            raise ValueError(f"{alexnet_url}: sha256 {digest} does not start with {alexnet_sha256_prefix}")
        _download(lin_url, lin_file, timeout)
        alex = torch.load(alex_file, map_location="cpu", weights_only=True)
        lin = torch.load(lin_file, map_location="cpu", weights_only=True)
    merged: dict[str, torch.Tensor] = {}
    for i in _CONV_IDX:
        for part in ("weight", "bias"):
            key = f"features.{i}.{part}"
            if key not in alex:
                raise ValueError(f"{alexnet_url}: no {key!r} (is it torchvision's AlexNet?)")
            merged[key] = alex[key]
    for i in range(len(_CHANNELS)):
        key = f"lin{i}.model.1.weight"
        if key not in lin:
            raise ValueError(f"{lin_url}: no {key!r} (is it LPIPS v0.1 alex.pth?)")
        merged[key] = lin[key]
    AlexLPIPS().load_state_dict(merged, strict=True)  # shapes checked before anything is written
    partial = dest.with_name(dest.name + ".partial")
    torch.save(merged, partial)
    partial.replace(dest)
    return dest


register(
    Metric("lpips", "LPIPS", "lower", compute=lpips, takes_weights=True, order=50, headline=True,
           rd_plot=True)
)  # fmt: skip

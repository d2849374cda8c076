"""COIN's network: a SIREN from pixel coordinates in [-1, 1] to RGB (see :mod:`.method`)."""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

IN_DIM, OUT_DIM = 2, 3
RENDER_CHUNK = 1 << 16  # pixels per forward pass when rendering (bounds memory for large images)


def num_params(hidden: int, layers: int, in_dim: int = IN_DIM, out_dim: int = OUT_DIM) -> int:
    """Scalars of a COIN SIREN: ``layers`` sine layers of width ``hidden`` plus the linear output layer."""
    first = (in_dim + 1) * hidden
    middle = (layers - 1) * (hidden + 1) * hidden
    last = (hidden + 1) * out_dim
    return first + middle + last


class Siren(nn.Module):
    """``layers`` sine layers ``sin(w0 (W x + b))`` of width ``hidden``, then a linear layer to RGB."""

    def __init__(
        self,
        hidden: int,
        layers: int,
        w0: float = 30.0,
        w0_initial: float = 30.0,
        seed: int | None = 0,
        in_dim: int = IN_DIM,
        out_dim: int = OUT_DIM,
    ) -> None:
        super().__init__()
        if hidden < 1 or layers < 1:
            raise ValueError(f"COIN needs hidden >= 1 and layers >= 1, got {hidden} and {layers}")
        self.hidden, self.layers, self.w0, self.w0_initial = hidden, layers, float(w0), float(w0_initial)
        dims = [in_dim] + [hidden] * layers + [out_dim]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        if seed is not None:
            self.reset_parameters(seed)

    @torch.no_grad()
    def reset_parameters(self, seed: int) -> None:
        """The SIREN initialisation as in the COIN code (biases drawn like the weights)."""
        gen = torch.Generator().manual_seed(seed)
        for i, lin in enumerate(self.linears):
            fan_in = lin.in_features
            # the output layer is initialised as a hidden layer (COIN's last SirenLayer uses w0 too)
            bound = 1.0 / fan_in if i == 0 else math.sqrt(6.0 / fan_in) / self.w0
            for p in (lin.weight, lin.bias):
                p.copy_(torch.rand(p.shape, generator=gen) * 2 * bound - bound)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """``[P, 2]`` coordinates -> ``[P, 3]`` raw RGB."""
        x = coords
        for i, lin in enumerate(self.linears[:-1]):
            x = torch.sin((self.w0_initial if i == 0 else self.w0) * lin(x))
        return self.linears[-1](x)

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def render(self, height: int, width: int, chunk: int = RENDER_CHUNK) -> torch.Tensor:
        """The image ``[3, H, W]`` (raw), evaluated ``chunk`` pixels at a time."""
        coords = coordinates(height, width, self.linears[0].weight.device)
        out = torch.cat([self.forward(c) for c in coords.split(chunk)])
        return out.T.reshape(OUT_DIM, height, width)


def coordinates(height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Pixel centres as ``[H W, 2]`` (row, column), each axis mapped linearly onto [-1, 1], row-major.

    (COIN's code divides both axes by ``H - 1``, so a landscape image's columns reach past 1; gsbench
    maps each axis onto [-1, 1], as the paper describes.)
    """
    ys = torch.linspace(-1, 1, height, device=device) if height > 1 else torch.zeros(1, device=device)
    xs = torch.linspace(-1, 1, width, device=device) if width > 1 else torch.zeros(1, device=device)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1)
    return grid.reshape(-1, 2)

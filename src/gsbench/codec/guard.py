"""Checks a decoder runs on what it rebuilt, before anything is rendered.

A file can be well formed and still hostile: finite-looking symbols that dequantise to Inf, colours that
overflow when summed, or a few hundred bytes that describe Gaussians covering a large image a thousand
times over (seconds to minutes of rendering, gigabytes of tile lists). These checks refuse such files
with a :class:`BitstreamError` from cheap ``O(N)`` estimates, so a decode either finishes within a bounded
time and memory or fails cleanly. The renderer itself is not changed: the estimate mirrors its tiling.
"""

from __future__ import annotations

import torch

from .container import BitstreamError, Limits

TILE = 8  # the finest tiling of any backend (torch on CPU): an upper bound on tile-list memory
MAX_ABS_COLOR = 65536.0  # colours beyond this are corrupt (real ones are near [0, 1]); keeps sums finite
INTERSECTION_BYTES = 64  # tile-list memory per (Gaussian, tile) pair in the torch renderer
DET_EPS = 1e-12  # the renderer's degeneracy threshold (gaussians.params.cov_to_conic)


def check_finite(what: str, **tensors: torch.Tensor) -> None:
    """Refuse any NaN or infinite value in the named tensors."""
    for name, t in tensors.items():
        if t.numel() and not bool(torch.isfinite(t).all()):
            raise BitstreamError(f"corrupt {what}: {name} decode to non-finite values")


def flush_denormals(*tensors: torch.Tensor) -> None:
    """Set subnormal floats to zero in place: arithmetic on them is up to 100 times slower on CPUs, so a
    file full of them (a step or scale of 1e-40) would turn a one-second decode into a minute."""
    for t in tensors:
        if t.is_floating_point() and t.numel():
            tiny = torch.finfo(t.dtype).tiny
            t.masked_fill_((t != 0) & (t.abs() < tiny), 0.0)


def footprint_tiles(means: torch.Tensor, cov: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Tiles each Gaussian's 3-sigma box touches inside the image, ``[N]`` float64 (0 if degenerate)."""
    m, c = means.detach().double(), cov.detach().double()
    a, b, d = c.unbind(-1)
    valid = (a * d - b * b > DET_EPS) & (a > 0)
    mid = 0.5 * (a + d)
    lam = mid + torch.sqrt(torch.clamp(mid * mid - (a * d - b * b), min=0.0))
    r = torch.ceil(3.0 * torch.sqrt(torch.clamp(lam, min=0.0)))
    x0 = torch.clamp(m[:, 0] - r, min=0.0)
    x1 = torch.clamp(m[:, 0] + r, max=width - 1.0)
    y0 = torch.clamp(m[:, 1] - r, min=0.0)
    y1 = torch.clamp(m[:, 1] + r, max=height - 1.0)
    nx = torch.floor(x1 / TILE) - torch.floor(x0 / TILE) + 1
    ny = torch.floor(y1 / TILE) - torch.floor(y0 / TILE) + 1
    inside = valid & (x1 >= x0) & (y1 >= y0)
    return torch.where(inside, nx.clamp(min=0) * ny.clamp(min=0), torch.zeros_like(nx))


def check_render_budget(
    what: str,
    means: torch.Tensor,
    cov: torch.Tensor,
    colors: torch.Tensor,
    height: int,
    width: int,
    limits: Limits,
    file_bytes: int = 0,
) -> None:
    """Finite attributes, bounded colours, and render work and memory within ``limits``.

    Args:
        what: names the file in messages. means ``[N, 2]``, cov ``[N, 3]``, colors ``[N, C]``: what
            will be rendered, in pixels. height, width: the declared image size. file_bytes: the size
            of the file they came from (a larger file may ask for more work).
    Raises:
        BitstreamError: naming the first check that fails.
    """
    check_finite(what, positions=means, covariances=cov, colours=colors)
    flush_denormals(means, cov, colors)
    if colors.numel() and float(colors.abs().max()) > MAX_ABS_COLOR:
        raise BitstreamError(f"corrupt {what}: colours beyond +-{MAX_ABS_COLOR:g}")
    pixels = height * width
    tiles = float(footprint_tiles(means, cov, height, width).sum()) if means.shape[0] else 0.0
    evals = tiles * TILE * TILE
    bits = 8 * file_bytes
    budget = max(limits.min_eval_budget, limits.max_evals_per_pixel * pixels, limits.max_evals_per_bit * bits)
    if evals > budget:
        raise BitstreamError(
            f"implausible {what}: rendering it needs {evals:.3g} Gaussian-pixel evaluations "
            f"({evals / pixels:.0f} per pixel, {evals / max(bits, 1):.0f} per bit of file; the limit is "
            f"{limits.max_evals_per_pixel} per pixel or {limits.max_evals_per_bit} per bit, "
            "limits.max_evals_per_pixel)"
        )
    memory = pixels * max(colors.shape[1], 1) * 4 * 2 + tiles * INTERSECTION_BYTES
    check_memory(what, memory, limits)


def check_memory(what: str, estimate: float, limits: Limits) -> None:
    """Refuse a decode whose memory estimate (bytes) exceeds ``limits.max_memory_bytes``."""
    if estimate > limits.max_memory_bytes:
        raise BitstreamError(
            f"{what} needs about {estimate / 2**30:.1f} GiB to decode, over the limit of "
            f"{limits.max_memory_bytes / 2**30:.1f} GiB"
        )


def check_output(what: str, image: torch.Tensor) -> torch.Tensor:
    """The last line of defence: a decoded image with a NaN or Inf is a corrupt file, not a result."""
    if not bool(torch.isfinite(image).all()):
        raise BitstreamError(f"corrupt {what}: the decoded image has non-finite pixels")
    return image

"""Gaussians rebuilt from a file: what the ``gi``, ``gi_pp`` and ``sgi`` decoders return.

It sits with the methods, not in the bitstream package, because it renders itself (the bitstream
package reads and writes bytes and never imports the renderer).
"""

from __future__ import annotations

import torch

from ..codec.container import Limits, current_limits
from ..codec.guard import check_output, check_render_budget
from ..gaussians.render import RenderOptions, render


class DecodedGaussians:
    """Gaussians rebuilt from a file, rendered by accumulated summation.

    Attributes:
        means: ``[N, 2]`` pixels; cov: ``[N, 3]`` packed covariances; colors: ``[N, C]``.
    """

    def __init__(
        self,
        means: torch.Tensor,
        cov: torch.Tensor,
        colors: torch.Tensor,
        height: int,
        width: int,
        options: RenderOptions | None,
        limits: Limits | None = None,
        what: str = "bitstream",
        file_bytes: int = 0,
    ) -> None:
        # checked here, before any render: finite values, bounded colours, bounded work and memory
        limits = limits or current_limits()
        check_render_budget(what, means, cov, colors, height, width, limits, file_bytes)
        self.means, self.cov, self.colors = means, cov, colors
        self.height, self.width, self.what = height, width, what
        self.options = options or RenderOptions()  # decode_bitstream without options: the defaults
        self.num_gaussians = int(means.shape[0])

    @property
    def num_params(self) -> int:
        """Decoded scalars the renderer reads: means, packed covariances and colours."""
        return int(self.means.numel() + self.cov.numel() + self.colors.numel())

    @torch.no_grad()
    def render(self) -> torch.Tensor:
        """``[C, H, W]`` decoded image (raw); BitstreamError if it is not finite."""
        out = render(self.means, self.cov, self.colors, self.height, self.width, self.options)
        return check_output(self.what, out)

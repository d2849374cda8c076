"""Residual vector quantisation with EMA codebooks, as GaussianImage quantises its colours.

The public GaussianImage code uses ``vector_quantize_pytorch.ResidualVQ(dim=3, num_quantizers=2,
codebook_size=8, decay=0.8, commitment_weight=1, kmeans_init=True, kmeans_iters=5)``. This is the same
algorithm in ~100 lines (so the codec has no extra dependency and is deterministic under a seed):

* stage ``s`` quantises the residual left by stages ``< s`` to its nearest codeword;
* codebooks start from k-means (``kmeans_iters`` Lloyd steps from random samples) on the first batch;
* in training, each codebook follows an exponential moving average of the vectors assigned to it
  (cluster sizes Laplace-smoothed so no codeword divides by zero), not gradients;
* the output carries a straight-through gradient to the input, and the commitment loss
  ``sum_s mse(residual_s, codeword_s)`` pulls the input towards its codes.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualVQ(nn.Module):
    """``stages`` codebooks of ``codebook_size`` vectors of ``dim``.

    Args:
        dim: vector length (3 for RGB).
        stages: residual stages (2 in GaussianImage).
        codebook_size: codewords per stage (8).
        decay: EMA decay of the codebook statistics (0.8).
        kmeans_iters: Lloyd iterations of the k-means initialisation (5).
        seed: seeds the k-means initialisation.
    """

    def __init__(
        self,
        dim: int = 3,
        stages: int = 2,
        codebook_size: int = 8,
        decay: float = 0.8,
        kmeans_iters: int = 5,
        seed: int = 0,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.dim, self.stages, self.size = dim, stages, codebook_size
        self.decay, self.kmeans_iters, self.seed, self.eps = decay, kmeans_iters, seed, eps
        self.register_buffer("codebooks", torch.zeros(stages, codebook_size, dim))
        self.register_buffer("cluster_size", torch.zeros(stages, codebook_size))
        self.register_buffer("embed_sum", torch.zeros(stages, codebook_size, dim))
        self.register_buffer("initialised", torch.tensor(False))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise ``x`` ``[N, dim]``.

        Returns:
            ``x_hat`` ``[N, dim]`` (straight-through to ``x``), ``indices`` ``[N, stages]`` (int64) and the
            commitment loss (a scalar).
        """
        if not bool(self.initialised):
            self._kmeans_init(x.detach())
        residual = x  # keeps x's graph: each stage's commitment term pulls x towards its codes
        quantised = torch.zeros_like(x)
        indices, commit = [], x.new_zeros(())
        for s in range(self.stages):
            idx = torch.cdist(residual.detach(), self.codebooks[s]).argmin(dim=1)
            code = self.codebooks[s][idx]
            if self.training:
                self._ema_update(s, residual.detach(), idx)
            commit = commit + torch.mean((residual - code.detach()) ** 2)
            quantised = quantised + code
            residual = residual - code.detach()
            indices.append(idx)
        x_hat = x + (quantised - x).detach()
        return x_hat, torch.stack(indices, dim=1), commit

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """``[N, stages]`` indices to ``[N, dim]`` vectors: the sum of each stage's codeword."""
        out = torch.zeros(indices.shape[0], self.dim, device=self.codebooks.device)
        for s in range(self.stages):
            out = out + self.codebooks[s][indices[:, s]]
        return out

    @torch.no_grad()
    def _kmeans_init(self, x: torch.Tensor) -> None:
        gen = torch.Generator().manual_seed(self.seed)
        residual = x.clone()
        for s in range(self.stages):
            pick = torch.randint(0, x.shape[0], (self.size,), generator=gen).to(x.device)
            centres = residual[pick].clone()
            for _ in range(self.kmeans_iters):
                idx = torch.cdist(residual, centres).argmin(dim=1)
                counts = torch.bincount(idx, minlength=self.size).to(x.dtype)
                sums = torch.zeros_like(centres).index_add_(0, idx, residual)
                # An empty cluster keeps its centre (as vector-quantize-pytorch does).
                centres = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centres)
            self.codebooks[s] = centres
            self.cluster_size[s] = torch.bincount(
                torch.cdist(residual, centres).argmin(1), minlength=self.size
            )
            self.embed_sum[s] = centres * self.cluster_size[s][:, None]
            residual = residual - centres[torch.cdist(residual, centres).argmin(dim=1)]
        self.initialised.fill_(True)

    @torch.no_grad()
    def _ema_update(self, s: int, residual: torch.Tensor, idx: torch.Tensor) -> None:
        counts = torch.bincount(idx, minlength=self.size).to(residual.dtype)
        sums = torch.zeros(self.size, self.dim, dtype=residual.dtype, device=residual.device)
        sums.index_add_(0, idx, residual)
        self.cluster_size[s].mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum[s].mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size[s].sum()
        smoothed = (self.cluster_size[s] + self.eps) / (n + self.size * self.eps) * n
        self.codebooks[s] = self.embed_sum[s] / smoothed[:, None]

"""Top-K rendering (Image-GS): :func:`render_topk` lives in :mod:`.render` beside :func:`.render.render`.

Kept as a module so ``from gsbench.gaussians.topk import render_topk`` keeps working.
"""

from __future__ import annotations

from .render import MAX_K, TopKOptions, render_topk

DEFAULT_K = TopKOptions.k
DEFAULT_EPS = TopKOptions.eps  # Image-GS's own kernel adds 1e-4 (its method passes that)

__all__ = ["DEFAULT_EPS", "DEFAULT_K", "MAX_K", "render_topk"]

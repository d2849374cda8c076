"""Triton kernels for 2D Gaussian splatting: projection, tile binning, rasterize-sum and top-K.

Installed as ``gsbench.kernels``; it imports nothing else from gsbench. Importing this package is cheap
and never imports triton: the kernel modules (:mod:`.projection`, :mod:`.rasterize_sum`, ...) import it
themselves. That matters
because triton decides *when a kernel is decorated* (module import) whether it runs compiled on a GPU
or in the CPU interpreter (``TRITON_INTERPRET=1``). So set ``TRITON_INTERPRET=1`` before the first
kernel module is imported, not merely before ``import triton``. We deliberately do not set it for the
user: it is process-wide and would silently slow down any other triton code.

The helpers here check the inputs every public function receives.
"""

from __future__ import annotations

import torch

FLOATS = (torch.float32, torch.float64)  # float32 is the production dtype; float64 is for validation


def is_interpreted(kernel: object) -> bool:
    """True when ``kernel`` was decorated under ``TRITON_INTERPRET=1`` (runs on CPU tensors)."""
    return type(kernel).__name__ == "InterpretedFunction"


def check_inputs(kernel: object, **tensors: torch.Tensor) -> torch.device:
    """Check that the named float tensors share one float dtype and one device the kernel can use.

    Returns:
        The common device.
    Raises:
        ValueError: mixed devices or dtypes, non-float dtypes, or CPU tensors for a compiled kernel.
    """
    items = list(tensors.items())
    dev, dtype = items[0][1].device, items[0][1].dtype
    for name, t in items:
        if t.device != dev:
            raise ValueError(f"{name} is on {t.device}, expected {dev} like {items[0][0]}")
        if t.dtype not in FLOATS or t.dtype != dtype:
            raise ValueError(f"{name} has dtype {t.dtype}; all inputs must be float32 (or all float64)")
    if dev.type == "cpu" and not is_interpreted(kernel):
        raise ValueError(
            "the Triton kernels need CUDA tensors, "
            "or TRITON_INTERPRET=1 set before gsbench.kernels.* is imported"
        )
    return dev


def next_pow2(n: int) -> int:
    """The smallest power of two >= max(n, 1) (Triton block shapes must be powers of two)."""
    return 1 << max(0, int(n) - 1).bit_length()


__all__ = ["FLOATS", "check_inputs", "is_interpreted", "next_pow2"]

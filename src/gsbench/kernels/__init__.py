"""Triton kernels for 2D Gaussian splatting: projection, tile binning, rasterize-sum and top-K.

Installed as ``gsbench.kernels``; it imports nothing else from gsbench. Importing this package is cheap
and never imports triton: the kernel modules (:mod:`.projection`, :mod:`.rasterize_sum`, ...) import it
themselves. That matters because triton decides *when a kernel is decorated* (module import) whether it
runs compiled on a GPU or in the CPU interpreter (``TRITON_INTERPRET=1``). So set ``TRITON_INTERPRET=1``
before the first kernel module is imported, not merely before ``import triton``. We deliberately do not
set it for the user: it is process-wide and would silently slow down any other triton code.

Every kernel launch goes through a :class:`Launch` plan built by its module's ``plan_*`` function, and
is run by :func:`run`. The ahead-of-time compile check (:mod:`.aot`) calls the same ``plan_*`` functions
with placeholder (``meta``) tensors over the whole option space, so what it compiles is what the
launchers launch, by construction; :func:`recording` lets a test confirm it on real launches.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

FLOATS = (torch.float32, torch.float64)  # float32 is the production dtype; float64 is for validation
_TRITON_TYPES = {torch.float32: "fp32", torch.float64: "fp64", torch.int32: "i32", torch.int64: "i64"}


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


def kernel(fn: Callable) -> Any:
    """``@triton.jit`` with no specialisation on the runtime scalars (every parameter that is neither a
    ``*_ptr`` nor annotated ``tl.constexpr``).

    By default triton compiles a separate binary when an integer argument equals 1 (it becomes a
    constant) or is divisible by 16: a grey image (``n_ch = 1``), the cut-off flag or a one-tile-wide
    image would each run a binary that the ahead-of-time check never compiled. With the scalars left
    generic, only pointer alignment varies, and :mod:`.aot` compiles the aligned variant (what torch's
    allocator hands out)."""
    import triton

    params = inspect.signature(fn).parameters.values()
    scalars = [p.name for p in params if not p.name.endswith("_ptr") and "constexpr" not in str(p.annotation)]
    return triton.jit(do_not_specialize=scalars)(fn)


def arg_type(value: Any) -> str:
    """Triton signature type of a launch argument, as the JIT specialises it (tensors -> pointers)."""
    if isinstance(value, torch.Tensor):
        return "*" + _TRITON_TYPES[value.dtype]
    if isinstance(value, bool):
        return "i1"
    if isinstance(value, int):
        return "i32" if -(2**31) <= value < 2**31 else "i64"
    if isinstance(value, float):
        return "fp32"
    raise TypeError(f"unsupported launch argument {value!r}")


@dataclass(frozen=True)
class Launch:
    """One kernel launch: the @triton.jit ``kernel``, its ``grid``, runtime ``args`` (by name, in the
    kernel's order), ``constexprs`` and ``num_warps``."""

    kernel: Any
    grid: tuple[int, ...]
    args: dict[str, Any]
    constexprs: dict[str, Any]
    num_warps: int = 4

    @property
    def name(self) -> str:
        return self.kernel.fn.__name__

    def params(self) -> list[str]:
        """The kernel's parameter names, in order."""
        return list(inspect.signature(self.kernel.fn).parameters)

    def signature(self) -> dict[str, str]:
        """The compile signature, in parameter order: runtime arguments' types, ``constexpr`` for the rest.

        Raises:
            ValueError: the plan names an argument the kernel lacks or leaves one out.
        """
        if set(self.args) | set(self.constexprs) != set(self.params()):
            raise ValueError(f"{self.name}: plan arguments do not match the kernel's parameters")
        return {p: arg_type(self.args[p]) if p in self.args else "constexpr" for p in self.params()}

    def attrs(self) -> dict[tuple[int, ...], list]:
        """Compile attributes as the JIT derives them for 16-byte aligned tensors (see :func:`kernel`)."""
        params = self.params()
        return {
            (params.index(k),): [["tt.divisibility", 16]]
            for k, v in self.args.items()
            if isinstance(v, torch.Tensor)
        }

    def key(self) -> tuple:
        """What makes a distinct compiled binary (the grid and argument values do not)."""
        constexprs = tuple(sorted(self.constexprs.items()))
        return (self.name, tuple(self.signature().items()), constexprs, self.num_warps)


@dataclass
class _Recorder:
    launches: list[Launch] = field(default_factory=list)


_RECORDERS: list[_Recorder] = []


def run(plan: Launch) -> None:
    """Launch ``plan`` (skipped when the grid is empty), recording it for any active :func:`recording`."""
    for rec in _RECORDERS:
        rec.launches.append(plan)
    if all(plan.grid):
        plan.kernel[plan.grid](**plan.args, **plan.constexprs, num_warps=plan.num_warps)


@contextlib.contextmanager
def recording() -> Iterator[list[Launch]]:
    """Collect every :class:`Launch` run inside the block (for tests of the compile enumeration)."""
    rec = _Recorder()
    _RECORDERS.append(rec)
    try:
        yield rec.launches
    finally:
        _RECORDERS.remove(rec)


def placeholder(dtype: torch.dtype) -> torch.Tensor:
    """An empty ``meta`` tensor: stands for a kernel argument of ``dtype`` when enumerating launches."""
    return torch.empty(0, dtype=dtype, device="meta")


__all__ = [
    "FLOATS",
    "Launch",
    "arg_type",
    "check_inputs",
    "is_interpreted",
    "kernel",
    "next_pow2",
    "placeholder",
    "recording",
    "run",
]

"""Ahead-of-time compilation of every kernel launch, for GPU targets, on any machine (no GPU needed).

The launches come from each kernel module's ``launch_plans(space)``, which calls the same ``plan_*``
functions as the autograd Functions with placeholder tensors, over an :class:`OptionSpace`. Each distinct
``(kernel, signature, constexprs, num_warps)`` is compiled with ``triton.compile(ASTSource(...),
target=GPUTarget("cuda", cc, 32))`` and its cubin's resources (registers, stack frame, local memory) are
read with triton's bundled ``cuobjdump --dump-resource-usage``; ``ptxas -v`` on the PTX adds the spill
bytes when asked.

Run ``python -m gsbench.kernels.aot --space default|cover|full --targets 80,89,90,100`` (it needs the
compiler, so ``TRITON_INTERPRET`` must be unset or 0): one JSON object per compiled configuration.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import torch

from . import Launch, is_interpreted

TARGETS = (80, 89, 90, 100)  # Ampere, Ada, Hopper and (triton >= 3.x) datacenter Blackwell


@dataclass(frozen=True)
class OptionSpace:
    """The options a caller can give the Triton path, as far as they change what is compiled.

    Channels are bucketed to a power of two up to 16 per launch (more take several launches), K to a
    power of two up to 64; the cut-off, legacy cap, eps and image size are runtime arguments.
    """

    dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float64)
    tiles: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    channels: tuple[int, ...] = (*range(1, 18), 33)
    ks: tuple[int, ...] = tuple(range(1, 65))
    param_modes: tuple[str, ...] = ("cholesky", "scale_rot", "covariance")


FULL = OptionSpace()
# What the default render paths launch: float32, 16x16 tiles, grey / RGB / 9-channel texture stacks,
# Image-GS's K = 10, every parameterisation.
DEFAULT = OptionSpace(dtypes=(torch.float32,), tiles=(16,), channels=(1, 3, 9), ks=(10,))


def one_factor_spaces(base: OptionSpace = DEFAULT, full: OptionSpace = FULL) -> list[OptionSpace]:
    """``base``, then ``base`` with one axis at a time widened to ``full``: every value of every axis is
    compiled at least once, at a fraction of the full product's cost."""
    return [base] + [
        dataclasses.replace(base, **{f.name: getattr(full, f.name)}) for f in dataclasses.fields(OptionSpace)
    ]


def launch_plans(space: OptionSpace) -> list[Launch]:
    """Every kernel launch over ``space``, one per distinct compiled binary (see :meth:`Launch.key`)."""
    from . import binning, projection, rasterize_sum, rasterize_topk

    plans: dict[tuple, Launch] = {}
    for mod in (projection, binning, rasterize_sum, rasterize_topk):
        for plan in mod.launch_plans(space):
            plans.setdefault(plan.key(), plan)
    return list(plans.values())


def spaces(name: str) -> list[OptionSpace]:
    """``default`` (the default render paths), ``cover`` (every axis value once) or ``full``."""
    return {"default": [DEFAULT], "cover": one_factor_spaces(), "full": [FULL]}[name]


def unique_plans(space_name: str) -> list[Launch]:
    out: dict[tuple, Launch] = {}
    for space in spaces(space_name):
        for plan in launch_plans(space):
            out.setdefault(plan.key(), plan)
    return list(out.values())


def _tool(name: str) -> str:
    from triton.backends.nvidia import compiler as nvc

    return os.path.join(os.path.dirname(nvc.__file__), "bin", name)


def resources(cubin: bytes) -> dict[str, int]:
    """``{"regs", "stack", "local", "shared"}`` of the one function in ``cubin`` (cuobjdump)."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run(
            [_tool("cuobjdump"), "--dump-resource-usage", f.name], capture_output=True, text=True, check=True
        ).stdout
    found = dict(re.findall(r"\b(REG|STACK|LOCAL|SHARED):(\d+)", text))
    return {
        "regs": int(found["REG"]),
        "stack": int(found["STACK"]),
        "local": int(found["LOCAL"]),
        "shared": int(found["SHARED"]),
    }


def spill_bytes(ptx: str, cc: int) -> dict[str, int]:
    """``{"spill_stores", "spill_loads"}`` in bytes, from ``ptxas -v`` on ``ptx`` (as triton calls it)."""
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    arch, tool = sm_arch_from_capability(cc), get_ptxas(cc).path
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "k.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        log = subprocess.run(
            [
                tool,
                "-lineinfo",
                "-v",
                "--regAllocOptLevel=2",
                f"--gpu-name={arch}",
                src,
                "-o",
                os.path.join(d, "k.o"),
            ],
            capture_output=True,
            text=True,
        ).stderr
    m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    return {"spill_stores": int(m[1]), "spill_loads": int(m[2])} if m else {}


def compile_plan(plan: Launch, cc: int, spills: bool = False) -> dict:
    """Compile ``plan`` for ``sm_<cc>``; the result row (``ok``, ``error``, resources, seconds)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    if is_interpreted(plan.kernel):
        raise RuntimeError("kernels were imported under TRITON_INTERPRET=1: ahead-of-time compile needs it 0")
    row = describe(plan) | {"target": f"sm_{cc}"}
    t0 = time.perf_counter()
    try:
        src = ASTSource(plan.kernel, plan.signature(), dict(plan.constexprs), plan.attrs())
        compiled = triton.compile(
            src, target=GPUTarget("cuda", cc, 32), options={"num_warps": plan.num_warps}
        )
        row["ok"] = True
    except Exception as e:  # a compile error is a result to report, not a crash of the check
        row |= {"ok": False, "error": f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:300]}"}
        compiled = None
    if compiled is not None:
        try:  # the resource readers are separate tools: their absence is no compile failure
            row |= resources(compiled.asm["cubin"])
            if spills:
                row |= spill_bytes(compiled.asm["ptx"], cc)
        except (OSError, subprocess.CalledProcessError, KeyError) as e:
            row["resources_error"] = f"{type(e).__name__}: {e}"
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


def describe(plan: Launch) -> dict:
    """The configuration of ``plan`` as a JSON-friendly row."""
    ptr = sorted({t for t in plan.signature().values() if t.startswith("*fp")})
    return {
        "kernel": plan.name,
        "dtype": ptr[0][1:] if ptr else "-",
        "num_warps": plan.num_warps,
        "constexprs": {k: (bool(v) if isinstance(v, bool) else v) for k, v in plan.constexprs.items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", choices=("default", "cover", "full"), default="default")
    ap.add_argument("--targets", default=",".join(map(str, TARGETS)), help="compute capabilities, e.g. 80,90")
    ap.add_argument("--spills", action="store_true", help="also run ptxas -v for spill bytes")
    ap.add_argument("--out", help="write the JSON rows here (default: stdout, one per line)")
    args = ap.parse_args(argv)
    rows = [
        compile_plan(p, int(cc), args.spills)
        for cc in args.targets.split(",")
        for p in unique_plans(args.space)
    ]
    text = "\n".join(json.dumps(r) for r in rows)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    failed = [r for r in rows if not r["ok"]]
    print(f"aot: {len(rows) - len(failed)}/{len(rows)} configurations compiled", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

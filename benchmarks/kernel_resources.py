"""Registers, stack frame and spill bytes of every Triton kernel configuration, from the compiled cubin.

    python benchmarks/kernel_resources.py                         # default render paths, sm_90
    python benchmarks/kernel_resources.py --space cover --targets 80,90
    python benchmarks/kernel_resources.py --write-docs            # also refresh the table in docs/kernels.md

Compiles on this machine (no GPU needed) through :mod:`gsbench.kernels.aot`: the configurations are those
the launch code plans over an option space (``default``: float32, 16x16 tiles, 1/3/9 channels, K = 10;
``cover``: every value of every option axis once; ``full``: the whole product). Registers, stack and
shared memory come from triton's bundled ``cuobjdump --dump-resource-usage``, spill bytes from
``ptxas -v``. A configuration with a non-zero stack frame spills (or keeps an array in local memory).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ["TRITON_INTERPRET"] = "0"  # compile: must be set before the kernel modules are imported
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from gsbench.kernels import aot  # noqa: E402

BEGIN, END = "<!-- kernel-resources:begin -->", "<!-- kernel-resources:end -->"


def table(rows: list[dict]) -> str:
    """Markdown table of the compile rows."""
    lines = [
        "| kernel | dtype | constexprs | warps | target | registers | stack B | spill st/ld B | shared B |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cx = ", ".join(f"{k}={v}" for k, v in r["constexprs"].items())
        if not r["ok"]:
            lines.append(
                f"| `{r['kernel']}` | {r['dtype']} | {cx} | {r['num_warps']} | {r['target']} | "
                f"**compile error**: {r['error'][:80]} | | | |"
            )
            continue
        spill = f"{r.get('spill_stores', '?')}/{r.get('spill_loads', '?')}"
        lines.append(
            f"| `{r['kernel']}` | {r['dtype']} | {cx} | {r['num_warps']} | {r['target']} | "
            f"{r.get('regs', '?')} | {r.get('stack', '?')} | {spill} | {r.get('shared', '?')} |"
        )
    return "\n".join(lines)


def write_docs(text: str, path: Path) -> None:
    doc = path.read_text()
    if BEGIN not in doc:
        raise SystemExit(f"{path} has no {BEGIN} ... {END} block")
    head, rest = doc.split(BEGIN, 1)
    path.write_text(head + BEGIN + "\n" + text + "\n" + END + rest.split(END, 1)[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", choices=("default", "cover", "full"), default="default")
    ap.add_argument("--targets", default="90", help="compute capabilities, comma-separated")
    ap.add_argument("--write-docs", action="store_true", help="replace the table in docs/kernels.md")
    args = ap.parse_args()
    import triton

    plans = aot.unique_plans(args.space)
    rows = [aot.compile_plan(p, int(cc), spills=True) for cc in args.targets.split(",") for p in plans]
    text = table(rows)
    print(text)
    bad = [r for r in rows if not r["ok"] or r.get("stack") or r.get("spill_stores")]
    summary = (
        f"{len(rows)} configurations ({args.space} space, targets {args.targets}, triton "
        f"{triton.__version__}): {sum(r['ok'] for r in rows)} compiled, {len(bad)} with a compile error, "
        f"stack or spills."
    )
    print(summary)
    if args.write_docs:
        write_docs(f"{summary}\n\n{text}", ROOT / "docs" / "kernels.md")
        print("wrote docs/kernels.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

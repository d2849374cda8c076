"""``python -m gsbench.report RESULTS_ROOT``: every report from the records below a results root."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..records import load_raw
from .aggregate import content_conflicts, load_frame, summarize, write_tidy
from .bdrate import MIN_OVERLAP, bd_markdown, bd_table
from .compressai_json import write_compressai
from .contact import contact_sheets
from .paper import ExperimentError, write_paper_tables
from .plots import rd_plots, represent_plots
from .tables import speed_markdown, speed_table, summary_markdown
from .time_quality import time_to_quality_plot

EPILOG = """\
outputs (under --out, default <root>/report):
  records.csv / records.parquet   one row per record (metrics flattened, provenance kept)
  summary.csv / summary.md        mean and std over images per (method, setting, dataset, task, budget)
  plots/rd_<dataset>_<metric>.*   compress: bpp vs PSNR, MS-SSIM (dB), LPIPS (png and svg)
  plots/represent_<dataset>_*.*   represent: PSNR vs number of Gaussians and vs parameters
  bd_<anchor>.csv / .md           BD-rate and BD-PSNR / BD-MS-SSIM vs the anchor (cubic, pchip, akima)
  speed.csv / speed.md            render and decode FPS, fit/encode/decode seconds, peak memory, device
  paper/<experiment>.md / .csv    paper vs ours per experiment file; paper_vs_ours.md all of them
  compressai/<dataset>/*.json     RD curves in CompressAI's result format
  contact/contact_<dataset>_<image>_<task>.png   reference beside each method's reconstruction, with a crop

examples:
  python -m gsbench.report results
  python -m gsbench.report outputs/multiruns --out /tmp/report --anchor jpeg
  python -m gsbench.report results --experiment experiments/gipp_table1.yaml --experiment experiments/
See docs/reports.md for how means and BD values are computed.
"""


@dataclass
class Report:
    """What :func:`build_report` wrote, and the lines it printed."""

    out: Path
    files: list[Path] = field(default_factory=list)
    n_records: int = 0
    messages: list[str] = field(default_factory=list)


def build_report(
    root: Path,
    out: Path | None = None,
    anchor: str = "jpeg",
    experiments: list[Path] | None = None,
    rate: str = "bpp",
    min_overlap: float = MIN_OVERLAP,
    plots: bool = True,
    sheets: int = 4,
    sheet_targets: dict[str, float | None] | None = None,
) -> Report:
    """Aggregate every record below ``root`` and write all the reports into ``out``.

    Without records only the paper tables are written (all rows ``not run``), so an experiment's table
    can be read before anything has run.
    """
    root = Path(root)
    out = Path(out) if out is not None else root / "report"
    rep = Report(out=out)
    df = load_frame(root)
    rep.n_records = len(df)
    out.mkdir(parents=True, exist_ok=True)
    if df.empty:
        rep.messages.append(f"no gsbench records under {root}")
    else:
        n_failed = int((df["status"] != "ok").sum())
        rep.messages.append(f"{len(df)} records ({n_failed} failed) under {root}")
        conflicts = content_conflicts(df)
        if conflicts:
            rep.messages.append(
                f"WARNING: records of {len(conflicts)} image(s) scored different files under one name "
                f"(source_sha256 differs; see records.csv): {', '.join(conflicts[:5])}"
            )
        rep.files += write_tidy(df, out)
        summary = summarize(df)
        summary.to_csv(out / "summary.csv", index=False)
        (out / "summary.md").write_text(summary_markdown(summary))
        rep.files += [out / "summary.csv", out / "summary.md"]
        speed = speed_table(df)
        speed.to_csv(out / "speed.csv", index=False)
        (out / "speed.md").write_text(speed_markdown(speed))
        rep.files += [out / "speed.csv", out / "speed.md"]
        if (df["task"] == "compress").any():
            bd = bd_table(df, anchor, rate=rate, min_overlap=min_overlap)
            bd.to_csv(out / f"bd_{anchor}.csv", index=False)
            (out / f"bd_{anchor}.md").write_text(bd_markdown(bd, anchor))
            rep.files += [out / f"bd_{anchor}.csv", out / f"bd_{anchor}.md"]
            rep.files += write_compressai(df, out / "compressai", rate=rate)
            flagged = bd[bd["warnings"].fillna("") != ""]
            if len(flagged):
                rep.messages.append(
                    f"BD: {len(flagged)} of {len(bd)} comparisons carry warnings (see bd_{anchor}.md)"
                )
        if plots:
            rep.files += rd_plots(df, out / "plots", rate=rate)
            rep.files += represent_plots(df, out / "plots")
            rep.files += time_to_quality_plots(root, out / "plots")
            if sheets > 0:
                rep.files += contact_sheets(df, out / "contact", sheets, sheet_targets)
    if experiments:
        rep.files += write_paper_tables(df, [Path(e) for e in experiments], out / "paper")
    return rep


def time_to_quality_plots(root: Path, out: Path) -> list[Path]:
    """PSNR vs wall seconds of ``instant_gi`` against ``gi`` (represent records), one figure per dataset."""
    recs = [r for _, r in load_raw(root) if r.get("status") == "ok" and r.get("task") == "represent"]
    written = []
    for dataset in sorted({str(r.get("dataset")) for r in recs if r.get("method") == "instant_gi"}):
        group = [r for r in recs if r.get("dataset") == dataset and r.get("method") in ("instant_gi", "gi")]
        out.mkdir(parents=True, exist_ok=True)
        summary = time_to_quality_plot(group, out / f"time_to_quality_{dataset}.png")
        written.append(Path(summary["path"]))
    return written


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m gsbench.report``."""
    p = argparse.ArgumentParser(
        prog="python -m gsbench.report",
        description="Aggregate gsbench records below RESULTS_ROOT into tables, RD curves, BD-rate, speed "
        "tables, paper-vs-ours tables and CompressAI JSON.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("root", type=Path, metavar="RESULTS_ROOT", help="folder searched recursively for records")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: RESULTS_ROOT/report)")
    p.add_argument(
        "--anchor", default="jpeg", help="method that BD values are measured against (default: jpeg)"
    )
    p.add_argument(
        "--experiment",
        action="append",
        type=Path,
        default=[],
        metavar="YAML",
        help="experiments/*.yaml to compare with (repeatable); a folder takes every *.yaml in it",
    )
    p.add_argument(
        "--rate",
        choices=("bpp", "bpp_payload"),
        default="bpp",
        help="rate axis: bpp of the file on disk (default) or the paper-style analytic bpp_payload",
    )
    p.add_argument(
        "--min-overlap",
        type=float,
        default=MIN_OVERLAP,
        help="BD warns below this share of the anchor's quality range (default: 0.2)",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the figures (faster)")
    p.add_argument(
        "--sheets",
        type=int,
        default=4,
        metavar="N",
        help="contact sheets for up to N images per dataset and task (0: none; default 4)",
    )
    p.add_argument(
        "--sheet-bpp",
        type=float,
        default=None,
        help="rate the compress sheets compare at (default: the lowest rate every method reaches)",
    )
    p.add_argument(
        "--sheet-gaussians",
        type=float,
        default=None,
        help="budget the represent sheets compare at (default: the lowest every method reaches)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for a missing root or a bad experiment file)."""
    args = parser().parse_args(argv)
    if not args.root.is_dir():
        print(f"gsbench report: error: {args.root} is not a folder", file=sys.stderr)
        return 2
    experiments: list[Path] = []
    for e in args.experiment:
        experiments += sorted(e.glob("*.yaml")) if e.is_dir() else [e]
    try:
        targets = {"compress": args.sheet_bpp, "represent": args.sheet_gaussians}
        rep = build_report(
            args.root,
            args.out,
            args.anchor,
            experiments,
            args.rate,
            args.min_overlap,
            not args.no_plots,
            args.sheets,
            targets,
        )
    except ExperimentError as exc:
        print(f"gsbench report: error: {exc}", file=sys.stderr)
        return 2
    for line in rep.messages:
        print(line)
    print(f"wrote {len(rep.files)} files to {rep.out}")
    return 0

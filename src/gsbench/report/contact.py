"""Contact sheets: per image, the reference beside each method's reconstruction at a comparable rate
(compress) or budget (represent), labelled with bpp / Gaussians and PSNR, and a zoomed crop below each.

Which record stands for a method: the one whose rate (or budget) is closest, on a log scale, to a target
shared by the whole sheet. The default target is the lowest rate every method reaches (the largest of
the methods' smallest rates), so the method that cannot go lower sets the comparison (a method alone:
its median rate); ``target`` fixes it instead. The crop is the square of the reference with the most
detail (gradient energy), where methods differ most visibly.

Where the pixels come from: the record's reconstruction PNG; else the file a compress record wrote
(a JPEG/WebP/AVIF opens as an image; a gsbench container is decoded with its method on the CPU); else
the method is left out of the sheet, with a note.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from .aggregate import PIXEL_CODECS, curve_name, ok_rows
from .axes import plain_number

MAX_PANELS = 7  # methods per sheet besides the reference: more would make each panel unreadable
CROP_FRACTION = 0.22  # side of the zoomed square, as a share of the image's shorter side


def pick_records(rows: pd.DataFrame, task: str, target: float | None = None) -> tuple[pd.DataFrame, float]:
    """One row per (method, setting): the closest, on a log scale, to the sheet's target rate/budget.

    ``rows`` are the ok records of one image and one task. Returns the chosen rows and the target.
    """
    x = "bpp" if task == "compress" else "num_gaussians"
    rows = rows[pd.to_numeric(rows[x], errors="coerce") > 0]
    if rows.empty:
        return rows, math.nan
    groups = rows.groupby(["method", "setting"], sort=True, dropna=False)
    if target is None:  # one method alone: its middle rate, not its worst
        target = float(groups[x].min().max()) if groups.ngroups > 1 else float(np.median(rows[x]))
    chosen = [g.loc[(np.log(g[x].astype(float)) - math.log(target)).abs().idxmin()] for _, g in groups]
    return pd.DataFrame(chosen), target


def load_pixels(row: pd.Series) -> np.ndarray | None:
    """The reconstruction of a record as ``uint8 [H, W, 3]``, or None when none can be found."""
    for key in ("reconstruction_path", "bitstream_path"):
        path = row.get(key)
        if isinstance(path, str) and path and Path(path).is_file():
            if key == "reconstruction_path" or row["method"] in PIXEL_CODECS:
                return _read(Path(path))
            pixels = _decode(row, Path(path))
            if pixels is not None:
                return pixels
    return None


def _has_pixels(row: pd.Series) -> bool:
    """Whether a record kept a reconstruction PNG or its file (whether it decodes is seen later)."""
    return any(
        isinstance(row.get(k), str) and bool(row.get(k)) and Path(row[k]).is_file()
        for k in ("reconstruction_path", "bitstream_path")
    )


def _read(path: Path) -> np.ndarray | None:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError):
        return None


def _decode(row: pd.Series, path: Path) -> np.ndarray | None:
    """Decode a gsbench container with its method on the CPU (the record's config names it)."""
    import json

    import torch

    from ..gaussians.render import RenderOptions
    from ..methods import FitContext, get_method

    try:
        config = json.loads(Path(str(row["record_path"])).read_text()).get("config") or {}
        method = get_method(str(row["method"]), config.get("method") or {}, config.get("train") or {},
                            config.get("codec"))  # fmt: skip
        render = RenderOptions.from_config({**(config.get("render") or {}), "backend": "torch"})
        ctx = FitContext(device=torch.device("cpu"), seed=int(row.get("seed") or 0), render=render)
        with torch.no_grad():
            image = method.decode(path.read_bytes(), ctx).render()[:3]
        return (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    except Exception:  # a sheet is a convenience: a file that does not decode here leaves its panel out
        return None


def detail_crop(reference: np.ndarray, fraction: float = CROP_FRACTION) -> tuple[int, int, int]:
    """``(top, left, side)`` of the square with the most gradient energy in ``reference``."""
    grey = reference.astype(np.float32).mean(axis=2)
    h, w = grey.shape
    side = max(8, int(min(h, w) * fraction))
    energy = np.zeros_like(grey)
    energy[:, 1:] += np.abs(np.diff(grey, axis=1))
    energy[1:, :] += np.abs(np.diff(grey, axis=0))
    integral = np.pad(energy, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    step = max(1, side // 4)
    best, where = -1.0, (0, 0)
    for top in range(0, h - side + 1, step):
        for left in range(0, w - side + 1, step):
            s = (integral[top + side, left + side] - integral[top, left + side] - integral[top + side, left]
                 + integral[top, left])  # fmt: skip
            if s > best:
                best, where = s, (top, left)
    return where[0], where[1], side


def panel_label(row: pd.Series, task: str) -> str:
    """``jpeg q30`` / ``gi_pp 5000 G`` then ``0.52 bpp · 28.10 dB`` (compress); ``gi`` then
    ``1987 Gaussians · 31.20 dB`` (represent: the fitted count, which adaptive methods choose)."""
    name = curve_name(row["method"], row["setting"])
    psnr = f"{row['psnr']:.2f} dB" if pd.notna(row["psnr"]) else "PSNR n/a"
    if task != "compress":
        return f"{name}\n{int(row['num_gaussians'])} Gaussians · {psnr}"
    if pd.isna(row["budget"]):
        budget = ""
    elif row["budget_name"] == "gaussians":
        budget = f" {int(row['budget'])} G"
    else:
        budget = f" {str(row['budget_name'])[0]}{int(row['budget'])}"
    return f"{name}{budget}\n{row['bpp']:.3g} bpp · {psnr}"


def contact_sheet(reference: np.ndarray | None, panels: list[tuple[str, np.ndarray]], title: str,
                  notes: list[str]) -> Figure:  # fmt: skip
    """The figure: reference then each panel, full images on top and the same zoomed crop below."""
    shown = [("reference", reference), *panels] if reference is not None else panels
    base = reference if reference is not None else panels[0][1]
    top, left, side = detail_crop(base)
    h, w = base.shape[:2]
    col_w = 2.6
    fig = Figure(figsize=(col_w * len(shown), col_w * (h / w) + col_w + 0.9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(shown), squeeze=False, height_ratios=[h / w, 1.0])
    for i, (label, pixels) in enumerate(shown):
        full, crop = axes[0][i], axes[1][i]
        full.imshow(pixels, interpolation="lanczos")
        full.add_patch(Rectangle((left, top), side, side, fill=False, edgecolor="yellow", linewidth=1.2))
        full.set_title(label, fontsize="small")
        crop.imshow(pixels[top : top + side, left : left + side], interpolation="nearest")
        for ax in (full, crop):
            ax.set_xticks([])
            ax.set_yticks([])
    axes[1][0].set_ylabel(f"zoom: {side}x{side} px", fontsize="x-small")
    fig.suptitle(title, fontsize="medium")
    if notes:
        fig.supxlabel("\n".join(notes), fontsize="x-small", color="0.3")
    return fig


def contact_sheets(
    df: pd.DataFrame, out: Path, max_images: int = 4, targets: dict[str, float | None] | None = None
) -> list[Path]:
    """``contact_<dataset>_<image>_<task>.png`` for up to ``max_images`` images per dataset and task,
    those with the most methods first (then by name). ``targets`` maps a task to its target rate (bpp,
    compress) or budget (Gaussians, represent); missing or None takes the default rule."""
    targets = targets or {}
    written: list[Path] = []
    ok = ok_rows(df)
    if ok.empty:
        return written
    ok = ok.assign(_pixels=ok.apply(_has_pixels, axis=1))
    for (dataset, task), g in ok.groupby(["dataset", "task"], sort=True):
        counts = g[g["_pixels"]].groupby("image")["method"].nunique().sort_index()
        images = counts.sort_values(ascending=False, kind="stable").index[:max_images]
        for image in images:
            rows = g[g["image"] == image]
            path = _one_sheet(rows, str(dataset), str(image), str(task), out, targets.get(str(task)))
            if path is not None:
                written.append(path)
    return written


def _one_sheet(rows: pd.DataFrame, dataset: str, image: str, task: str, out: Path,
               target: float | None) -> Path | None:  # fmt: skip
    # only records with pixels to show compete: a sweep run without saved reconstructions or files
    # must not take the place of a run that kept them
    names = pd.Series([curve_name(m, st) for m, st in zip(rows["method"], rows["setting"], strict=True)],
                      index=rows.index)  # fmt: skip
    has = rows["_pixels"]
    notes = [f"{n}: no reconstruction PNG or codec file kept" for n in sorted(set(names) - set(names[has]))]
    chosen, at = pick_records(rows[has], task, target)
    panels = []
    for _, row in chosen.head(MAX_PANELS).iterrows():
        pixels = load_pixels(row)
        if pixels is None:
            notes.append(
                f"{curve_name(row['method'], row['setting'])}: no reconstruction PNG or decodable file"
            )
            continue
        panels.append((panel_label(row, task), pixels))
    if not panels:
        return None
    source = rows["source"].dropna()
    reference = _read(Path(source.iloc[0])) if len(source) and Path(source.iloc[0]).is_file() else None
    if reference is None:
        notes.append("reference image not found at the record's source path")
    elif any(p.shape != reference.shape for _, p in panels):
        notes.append("reference size differs from a reconstruction: reference left out")
        reference = None
    if len(chosen) > MAX_PANELS:
        notes.append(f"{len(chosen) - MAX_PANELS} more methods not shown")
    unit = "bpp" if task == "compress" else "Gaussians"
    near = plain_number(float(f"{at:.3g}"))
    title = f"{dataset} / {image} ({task})\neach method's record nearest {near} {unit}"
    fig = contact_sheet(reference, panels, title, notes)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"contact_{dataset}_{image}_{task}.png"
    fig.savefig(path, dpi=110)
    return path

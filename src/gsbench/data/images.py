"""Load one image file as a float32 RGB tensor, with an explicit policy for odd inputs.

Every image becomes a ``3 x H x W`` float32 tensor in ``[0, 1]`` on the CPU.  Conversions that
change the data (greyscale replicated, alpha dropped, 16-bit scaled, CMYK converted, EXIF rotation
applied, ...) are reported as human-readable *notes* (returned and logged at INFO); inputs that
cannot be turned into a faithful RGB target raise :class:`ImageError` naming the file and the reason.
The policy is documented in ``docs/datasets.md``.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

#: Largest accepted image, in pixels (width * height), unless ``limits.max_pixels`` says otherwise.
#: 100 MP ~ 1.2 GB as float32 RGB. Pillow's own decompression-bomb limit is switched off while gsbench
#: reads a file, so this limit (and its message) is the only one, and it can be raised.
MAX_PIXELS = 100_000_000

# PNG raw modes of 16-bit-per-channel images that Pillow silently reduces to 8 bits, mapped to
# (raw mode giving the high bytes, raw mode giving the low bytes, channels).  Both raw modes have the
# same bit count, so Pillow's PNG unfiltering is identical; only the unpacking picks other bytes.
_PNG16_RAWMODES = {
    "RGB;16B": ("RGB;16B", "RGB;16L", 3),
    "RGBA;16B": ("RGBA;16B", "RGBA;16L", 4),
}
_EXIF_ORIENTATION = 0x0112
_ORIENTATION_NAMES = {
    2: "mirrored",
    3: "rotated 180°",
    4: "flipped vertically",
    5: "transposed",
    6: "rotated 90° clockwise",
    7: "transversed",
    8: "rotated 90° counter-clockwise",
}


_PIL_LIMIT_LOCK = threading.Lock()


@contextmanager
def own_size_limit() -> Iterator[None]:
    """Pillow's decompression-bomb check off (it would refuse > 179 MP with its own message, whatever
    ``max_pixels`` says); gsbench checks the size from the header, before any pixel is decoded."""
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


class ImageError(Exception):
    """An image file that cannot be used; the message names the file and the reason."""


class DatasetError(Exception):
    """A dataset that is missing, incomplete, corrupt or badly configured; the message says what to do."""


def load_image(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> tuple[torch.Tensor, list[str]]:
    """Read ``path`` as a float32 RGB ``3 x H x W`` tensor in ``[0, 1]`` plus notes on conversions.

    Raises :class:`ImageError` (message: path and reason) for missing, empty, corrupt, unsupported,
    zero-size or too large (> ``max_pixels``) images and for images with real transparency.
    """
    path = Path(path)
    _check_file(path)
    notes: list[str] = []
    try:
        with warnings.catch_warnings(), own_size_limit():
            # our own, explicit size limit (max_pixels) instead of Pillow's warning and error
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                _check_size(path, im.size, max_pixels)
                arr = _decode(path, im, notes)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path}: image too large ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{path}: not a readable image (unknown format or corrupt header)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{path}: corrupt or truncated image data ({exc})") from exc
    for note in notes:
        log.info("%s: %s", path, note)
    tensor = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    return tensor, notes


def _check_file(path: Path) -> None:
    """Refuse paths that are not non-empty regular files."""
    if not path.exists():
        raise ImageError(f"{path}: file not found")
    if not path.is_file():
        raise ImageError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")


def _check_size(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    """Refuse zero-size and over-large images before any pixel is decoded."""
    w, h = size
    if w <= 0 or h <= 0:
        raise ImageError(f"{path}: zero-size image ({w}x{h})")
    if w * h > max_pixels:
        raise ImageError(
            f"{path}: image too large ({w}x{h} = {w * h / 1e6:.1f} MP > {max_pixels / 1e6:g} MP, gsbench's "
            "limit); downscale it first, or raise limits.max_pixels"
        )


def _decode(path: Path, im: Image.Image, notes: list[str]) -> np.ndarray:
    """Decode the (first frame of the) opened image to float32 ``H x W x 3`` in [0, 1]."""
    if getattr(im, "n_frames", 1) > 1:
        notes.append(f"{im.n_frames} frames/pages; using the first")
    png16 = _png16_rawmode(im)  # before anything (e.g. getexif on a PNG) loads the image
    orientation = _orientation(im)
    arr = _png16(path, png16, notes) if png16 is not None else _to_rgb(path, im, notes)
    if orientation in _ORIENTATION_NAMES:
        arr = _apply_orientation(arr, orientation)
        notes.append(f"EXIF orientation {orientation} applied ({_ORIENTATION_NAMES[orientation]})")
    return arr


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation tag (1 when absent or unreadable)."""
    try:
        return int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # malformed EXIF must not make a readable image unusable
        return 1


def _apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Transform an ``H x W x C`` array like ``PIL.ImageOps.exif_transpose`` does."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(ops[orientation](arr))


def _to_rgb(path: Path, im: Image.Image, notes: list[str]) -> np.ndarray:
    """Dispatch on the Pillow mode; returns float32 ``H x W x 3`` in [0, 1]."""
    mode = im.mode
    if im.format == "TIFF" and mode in ("RGB", "RGBA") and _tiff_bits(im) > 8:
        return _tiff_high_depth(path, im, notes)
    if mode == "RGB":
        return _rgb8(path, im, np.asarray(im), notes)
    if mode in ("L", "1"):
        notes.append(f"greyscale ({mode}) replicated to 3 channels")
        return _rgb8(path, im, np.asarray(im.convert("L"))[..., None], notes)
    if mode.startswith("I;16") or mode == "I":
        return _grey16(path, im, notes)
    if mode == "F":
        return _float_grey(path, im, notes)
    if mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        return _drop_alpha(path, im, notes)
    if mode == "P":
        return _palette(path, im, notes)
    if mode == "CMYK":
        notes.append("CMYK converted to RGB by Pillow's formula (ICC profile ignored, colours approximate)")
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    if mode == "YCbCr":
        notes.append("YCbCr converted to RGB")
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    raise ImageError(f"{path}: unsupported image mode {mode!r}; convert it to 8- or 16-bit RGB first")


def _rgb8(path: Path, im: Image.Image, arr: np.ndarray, notes: list[str]) -> np.ndarray:
    """8-bit RGB or greyscale (``H x W x 1``) array -> float RGB, honouring a tRNS colour key."""
    _check_colour_key(path, im, arr, notes)
    out = arr.astype(np.float32) / 255.0
    return np.repeat(out, 3, axis=2) if out.shape[2] == 1 else out


def _check_colour_key(path: Path, im: Image.Image, arr: np.ndarray, notes: list[str]) -> None:
    """A PNG ``tRNS`` colour key marks pixels of one colour as transparent: refuse if any pixel has it."""
    key = im.info.get("transparency")
    if key is None or isinstance(key, bytes):
        return
    key_arr = np.asarray(key if isinstance(key, tuple) else (key,), dtype=arr.dtype)
    n = int(np.all(arr == key_arr, axis=2).sum())
    if n:
        _refuse_transparency(path, n, arr.shape[0] * arr.shape[1])
    notes.append("transparency colour key present but unused; ignored")


def _refuse_transparency(path: Path, n_transparent: int, n_total: int) -> None:
    """Raise the standard error for images that really use transparency."""
    raise ImageError(
        f"{path}: image has transparency ({n_transparent} of {n_total} pixels not fully opaque); "
        "fitting transparent pixels is ill-defined. Flatten it onto a background first, e.g. "
        "`magick in.png -background white -alpha remove -alpha off out.png`"
    )


def _drop_alpha(path: Path, im: Image.Image, notes: list[str]) -> np.ndarray:
    """Drop a fully opaque alpha channel (with a note); refuse any real transparency."""
    mode = im.mode
    rgba = np.asarray(im.convert("RGBA"))  # premultiplied modes (La, RGBa) are un-premultiplied here
    alpha = rgba[..., 3]
    n = int((alpha < 255).sum())
    if n:
        _refuse_transparency(path, n, alpha.size)
    notes.append(f"fully opaque alpha channel dropped ({mode})")
    if mode in ("LA", "La"):
        notes.append(f"greyscale ({mode}) replicated to 3 channels")
    return rgba[..., :3].astype(np.float32) / 255.0


def _palette(path: Path, im: Image.Image, notes: list[str]) -> np.ndarray:
    """Palette images: expand to RGB; with transparency, apply the alpha rule."""
    notes.append("palette (P) image converted to RGB")
    if "transparency" in im.info:
        rgba = np.asarray(im.convert("RGBA"))
        n = int((rgba[..., 3] < 255).sum())
        if n:
            _refuse_transparency(path, n, rgba.shape[0] * rgba.shape[1])
        notes.append("palette transparency present but unused; ignored")
        return rgba[..., :3].astype(np.float32) / 255.0
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def _grey16(path: Path, im: Image.Image, notes: list[str]) -> np.ndarray:
    """16-bit (``I;16*``) or 32-bit integer (``I``) greyscale: scale by 1/65535 and replicate."""
    arr = np.asarray(im)
    if im.mode == "I" and arr.size and (arr.min() < 0 or arr.max() > 65535):
        raise ImageError(
            f"{path}: 32-bit integer image with values outside 0..65535 "
            f"({arr.min()}..{arr.max()}); its white level is unknown, convert it to 8/16-bit first"
        )
    _check_colour_key(path, im, arr[..., None], notes)
    notes.append(f"16-bit greyscale ({im.mode}) scaled by 1/65535 and replicated to 3 channels")
    out = arr.astype(np.float32) / 65535.0
    return np.repeat(out[..., None], 3, axis=2)


def _float_grey(path: Path, im: Image.Image, notes: list[str]) -> np.ndarray:
    """32-bit float greyscale: accepted only when finite and within [0, 1]."""
    arr = np.asarray(im, dtype=np.float32)
    if not np.isfinite(arr).all() or (arr.size and (arr.min() < 0 or arr.max() > 1)):
        raise ImageError(f"{path}: float image with values outside [0, 1] (or NaN/inf); its range is unknown")
    notes.append("32-bit float greyscale (F) replicated to 3 channels")
    return np.repeat(arr[..., None], 3, axis=2)


def _png16_rawmode(im: Image.Image) -> str | None:
    """The PNG raw mode if ``im`` is a 16-bit colour PNG that Pillow would truncate to 8 bits."""
    if im.format != "PNG" or len(getattr(im, "tile", ())) != 1:
        return None
    args = im.tile[0][3]
    rawmode = args if isinstance(args, str) else (args[0] if args else None)
    return rawmode if rawmode in _PNG16_RAWMODES or rawmode == "LA;16B" else None


def _decode_png_as(path: Path, rawmode: str) -> np.ndarray:
    """Decode a PNG with a substitute raw mode of the same bit depth (see ``_PNG16_RAWMODES``)."""
    with Image.open(path) as im:
        im.tile = [im.tile[0]._replace(args=rawmode)]
        im.load()
        return np.asarray(im).astype(np.uint16)


def _png16(path: Path, rawmode: str, notes: list[str]) -> np.ndarray:
    """16-bit colour PNG at full precision: decode high and low bytes separately and combine."""
    if rawmode == "LA;16B":  # grey+alpha, 4 bytes/pixel: read the raw bytes as 8-bit RGBA
        raw = _decode_png_as(path, "RGBA")
        arr = np.stack([raw[..., 0] * 256 + raw[..., 1], raw[..., 2] * 256 + raw[..., 3]], axis=2)
        grey = True
    else:
        hi_mode, lo_mode, _ = _PNG16_RAWMODES[rawmode]
        arr = _decode_png_as(path, hi_mode) * 256 + _decode_png_as(path, lo_mode)
        grey = False
    if arr.shape[2] in (2, 4):
        n = int((arr[..., -1] < 65535).sum())
        if n:
            _refuse_transparency(path, n, arr.shape[0] * arr.shape[1])
        notes.append("fully opaque alpha channel dropped (16-bit)")
        arr = arr[..., :-1]
    else:
        with Image.open(path) as im:
            _check_colour_key(path, im, arr, notes)
    if grey:
        notes.append("greyscale (16-bit) replicated to 3 channels")
        arr = np.repeat(arr, 3, axis=2)
    notes.append("16-bit per channel PNG scaled by 1/65535 (full precision kept)")
    return arr.astype(np.float32) / 65535.0


def _tiff_bits(im: Image.Image) -> int:
    """Largest BitsPerSample of a TIFF (8 when unknown)."""
    bits = getattr(im, "tag_v2", {}).get(258, 8)
    return max(bits) if isinstance(bits, tuple) else int(bits)


def _tiff_high_depth(path: Path, im: Image.Image, notes: list[str]) -> np.ndarray:
    """16-bit RGB(A) TIFF, which Pillow truncates to 8 bits: read the first page with tifffile."""
    import tifffile

    arr = np.asarray(tifffile.imread(path, key=0))
    if arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ImageError(f"{path}: unsupported TIFF layout {arr.dtype} {arr.shape}; save it as 8/16-bit RGB")
    if arr.shape[2] == 4:
        n = int((arr[..., 3] < 65535).sum())
        if n:
            _refuse_transparency(path, n, arr.shape[0] * arr.shape[1])
        notes.append("fully opaque alpha channel dropped (16-bit)")
        arr = arr[..., :3]
    notes.append("16-bit per channel TIFF scaled by 1/65535 (full precision kept)")
    return arr.astype(np.float32) / 65535.0

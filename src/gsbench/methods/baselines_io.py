"""The libraries behind the classical codecs of :mod:`.baselines`: Pillow and imagecodecs.

A :class:`Backend` is one library's encoder and decoder for one codec; the helpers here build them
(imports are lazy: a library that is not installed is reported by the backend's ``missing``).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

Settings = Mapping[str, Any]


@dataclass(frozen=True)
class Backend:
    """One library's encoder and decoder for one codec.

    Attributes:
        library: the library's name as printed (``Pillow``, ``imagecodecs``).
        package: what to ``pip install`` when it is missing.
        missing: ``() -> reason or None``: why this library cannot encode the codec here (None: it can).
        version: ``() -> str``: the library's version and the codec library underneath.
        encode: ``(pixels uint8 [H, W, 3], quality, settings) -> bytes``.
        decode: ``(bytes) -> uint8 [H, W, 3]``.
        applied: ``(settings) -> dict``: the settings this library really uses (for the record).
    """

    library: str
    package: str
    missing: Callable[[], str | None]
    version: Callable[[], str]
    encode: Callable[[np.ndarray, int, Settings], bytes]
    decode: Callable[[bytes], np.ndarray]
    applied: Callable[[Settings], dict[str, Any]]


# ---- Pillow -------------------------------------------------------------------------------------------


def pil_version() -> str:
    import PIL

    return PIL.__version__


def pil_missing(feature: str, need: str) -> Callable[[], str | None]:
    def missing() -> str | None:
        try:
            from PIL import features
        except ImportError:
            return "Pillow is not installed"
        if not features.check(feature):
            return f"this Pillow ({pil_version()}) was built without {feature.upper()} support; {need}"
        return None

    return missing


def pil_lib_version(feature: str, name: str) -> Callable[[], str]:
    def version() -> str:
        from PIL import features

        return f"Pillow {pil_version()} ({name} {features.version(feature)})"

    return version


def pil_save(fmt: str, **fixed: Any) -> Callable[[np.ndarray, int, Settings], bytes]:
    def encode(pixels: np.ndarray, quality: int, settings: Settings) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(buf, fmt, quality=quality, **fixed, **dict(settings))
        return buf.getvalue()

    return encode


def pil_decode(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im.convert("RGB"))


# ---- imagecodecs --------------------------------------------------------------------------------------


def ic_missing(codec: str) -> Callable[[], str | None]:
    def missing() -> str | None:
        try:
            import imagecodecs
        except ImportError:
            return "imagecodecs is not installed"
        if not getattr(imagecodecs, codec).available:
            return f"this imagecodecs ({imagecodecs.__version__}) was built without {codec}"
        return None

    return missing


def ic_version(codec: str) -> Callable[[], str]:
    def version() -> str:
        import imagecodecs

        return f"imagecodecs {imagecodecs.__version__} ({getattr(imagecodecs, f'{codec}_version')()})"

    return version


def ic_jxl_encode(pixels: np.ndarray, quality: int, s: Settings) -> bytes:
    import imagecodecs

    # level is libjxl's JxlEncoderDistanceFromQuality (cjxl -q): 90 -> distance 1.0, 75 -> 2.35
    return bytes(
        imagecodecs.jpegxl_encode(
            pixels, level=quality, effort=int(s["effort"]), numthreads=int(s["threads"])
        )
    )


def ic_jxl_decode(data: bytes) -> np.ndarray:
    import imagecodecs

    return rgb8(imagecodecs.jpegxl_decode(data))


def ic_avif_encode(pixels: np.ndarray, quality: int, s: Settings) -> bytes:
    import imagecodecs

    fmt = getattr(imagecodecs.AVIF.PIXEL_FORMAT, "YUV" + str(s["subsampling"]).replace(":", ""))
    out = imagecodecs.avif_encode(
        pixels, level=quality, speed=int(s["speed"]), pixelformat=fmt, numthreads=int(s["threads"])
    )
    return bytes(out)


def ic_avif_decode(data: bytes) -> np.ndarray:
    import imagecodecs

    return rgb8(imagecodecs.avif_decode(data))


def ic_webp_encode(pixels: np.ndarray, quality: int, s: Settings) -> bytes:
    import imagecodecs

    # imagecodecs' WebP is lossless unless told otherwise
    return bytes(imagecodecs.webp_encode(pixels, level=quality, lossless=False, method=int(s["method"])))


def ic_webp_decode(data: bytes) -> np.ndarray:
    import imagecodecs

    return rgb8(imagecodecs.webp_decode(data))


def rgb8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"decoder returned {arr.dtype} {arr.shape}, expected uint8 [H, W, 3]")
    return arr

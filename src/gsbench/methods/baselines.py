"""Classical image codecs as methods: ``jpeg``, ``webp``, ``avif``, ``jxl`` (task ``compress`` only).

Each codec is a row of :data:`CODECS`: the file suffix, the config keys it reads (their defaults are in
``configs/method/<codec>.yaml``, read by :func:`.options.yaml_defaults`), and
the libraries that can encode it, in order of preference (``method.library=auto`` takes the first one
installed). A library is a :class:`.baselines_io.Backend`: how to tell whether it is installed, its
version string, encode ``uint8 [H, W, 3] -> bytes`` and decode ``bytes -> uint8 [H, W, 3]``. The budget
is the codec's quality (``method.quality``, 0..100), so ``-m method=jpeg task=compress
method.quality=10,40,75`` is a sweep; every record names the quality, the library and its version and
the settings used in ``method_info`` (``description`` is the one-line summary). Settings are the
libraries' defaults (4:2:0 chroma subsampling for all four) except where written in docs/baselines.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from .base import METHODS, Decoded, Encoded, FitContext, Fitted, Method
from .baselines_io import (
    Backend,
    ic_avif_decode,
    ic_avif_encode,
    ic_jxl_decode,
    ic_jxl_encode,
    ic_missing,
    ic_version,
    ic_webp_decode,
    ic_webp_encode,
    pil_decode,
    pil_lib_version,
    pil_missing,
    pil_save,
)
from .options import yaml_defaults


@dataclass(frozen=True)
class CodecSpec:
    """A codec: its label, file suffix, setting keys (defaults: its YAML), and the backends that encode it."""

    name: str
    label: str
    suffix: str
    settings: tuple[str, ...]  # the codec's own config keys, beside quality and library
    backends: tuple[Backend, ...]
    install: str  # what to tell a user who has none of the backends
    quality_range: tuple[int, int] = (0, 100)


# ---- the table -----------------------------------------------------------------------------------------

_PILLOW_JPEG = Backend(
    library="Pillow",
    package="pillow",
    missing=pil_missing("jpg", "install a Pillow wheel from PyPI"),
    version=pil_lib_version("libjpeg_turbo", "libjpeg-turbo"),
    encode=pil_save("JPEG"),
    decode=pil_decode,
    applied=lambda s: {
        "subsampling": s["subsampling"],
        "optimize": bool(s["optimize"]),
        "progressive": bool(s["progressive"]),
        "quantisation_tables": "IJG standard tables scaled by quality (libjpeg jpeg_set_quality)",
    },
)

CODECS: dict[str, CodecSpec] = {
    "jpeg": CodecSpec(
        name="jpeg",
        label="JPEG",
        suffix=".jpg",
        settings=("subsampling", "optimize", "progressive"),
        backends=(_PILLOW_JPEG,),
        install="pip install pillow",
    ),
    "webp": CodecSpec(
        name="webp",
        label="WebP (lossy)",
        suffix=".webp",
        settings=("method",),
        backends=(
            Backend(
                library="Pillow",
                package="pillow",
                missing=pil_missing("webp", "install a Pillow wheel from PyPI, or imagecodecs"),
                version=pil_lib_version("webp", "libwebp"),
                encode=pil_save("WEBP", lossless=False),
                decode=pil_decode,
                applied=lambda s: {"method": int(s["method"]), "lossless": False, "subsampling": "4:2:0"},
            ),
            Backend(
                library="imagecodecs",
                package="imagecodecs",
                missing=ic_missing("WEBP"),
                version=ic_version("webp"),
                encode=ic_webp_encode,
                decode=ic_webp_decode,
                applied=lambda s: {"method": int(s["method"]), "lossless": False, "subsampling": "4:2:0"},
            ),
        ),
        install="pip install pillow (or imagecodecs)",
    ),
    "avif": CodecSpec(
        name="avif",
        label="AVIF",
        suffix=".avif",
        settings=("speed", "subsampling", "threads"),
        backends=(
            Backend(
                library="Pillow",
                package="pillow>=11.3",
                missing=pil_missing("avif", "Pillow>=11.3 wheels include AVIF; or pip install imagecodecs"),
                version=pil_lib_version("avif", "libavif"),
                encode=lambda px, q, s: pil_save("AVIF")(
                    px,
                    q,
                    {"speed": int(s["speed"]), "subsampling": s["subsampling"], "max_threads": s["threads"]},
                ),
                decode=pil_decode,
                applied=lambda s: {
                    "speed": int(s["speed"]),
                    "subsampling": s["subsampling"],
                    "range": "full",
                    "codec": "auto (libaom in the PyPI wheels)",
                    "threads": int(s["threads"]),
                },
            ),
            Backend(
                library="imagecodecs",
                package="imagecodecs",
                missing=ic_missing("AVIF"),
                version=ic_version("avif"),
                encode=ic_avif_encode,
                decode=ic_avif_decode,
                applied=lambda s: {
                    "speed": int(s["speed"]),
                    "subsampling": s["subsampling"],
                    "threads": int(s["threads"]),
                },
            ),
        ),
        install="pip install 'pillow>=11.3' (or imagecodecs)",
    ),
    "jxl": CodecSpec(
        name="jxl",
        label="JPEG XL",
        suffix=".jxl",
        settings=("effort", "threads"),
        backends=(
            Backend(
                library="imagecodecs",
                package="imagecodecs",
                missing=ic_missing("JPEGXL"),
                version=ic_version("jpegxl"),
                encode=ic_jxl_encode,
                decode=ic_jxl_decode,
                applied=lambda s: {
                    "effort": int(s["effort"]),
                    "distance": "from quality as cjxl -q (libjxl JxlEncoderDistanceFromQuality)",
                    "colour": "XYB (lossy default; no chroma subsampling in JPEG XL)",
                    "container": False,
                    "threads": int(s["threads"]),
                },
            ),
        ),
        install="pip install imagecodecs (or pip install -e '.[codecs]')",
    ),
}


def pick_backend(spec: CodecSpec, library: str = "auto") -> Backend:
    """The first installed backend of ``spec`` (or the one named ``library``).

    Raises:
        UserError: naming the package to install when none is.
    """
    if library != "auto":
        chosen = [b for b in spec.backends if b.library.lower() == library.lower()]
        if not chosen:
            valid = ", ".join(["auto", *(b.library for b in spec.backends)])
            raise UserError(f"method.library={library!r} cannot encode {spec.label}; valid: {valid}")
    else:
        chosen = list(spec.backends)
    reasons = []
    for backend in chosen:
        reason = backend.missing()
        if reason is None:
            return backend
        reasons.append(reason)
    raise UserError(
        f"method {spec.name!r} needs a {spec.label} encoder, and none is installed here "
        f"({'; '.join(reasons)}): {spec.install}"
    )


class DecodedPixels(Decoded):
    """An image decoded by a classical codec: the pixels themselves."""

    num_gaussians = 0
    num_params = 0  # pixels, not a model

    def __init__(self, pixels: np.ndarray, device: torch.device) -> None:
        self.height, self.width = int(pixels.shape[0]), int(pixels.shape[1])
        self.image = torch.from_numpy(np.array(pixels)).to(device).permute(2, 0, 1).float() / 255

    def render(self) -> torch.Tensor:
        return self.image


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """``[3, H, W]`` float in [0, 1] -> ``uint8 [H, W, 3]`` (round to nearest; exact for 8-bit inputs)."""
    pixels = (image.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0)
    return np.ascontiguousarray(pixels.cpu().numpy())


class ClassicalCodec(Method):
    """A codec from :data:`CODECS`; config keys: ``quality`` (the budget), ``library`` and the codec's own."""

    spec: CodecSpec
    budget_name = "quality"
    tasks = ("compress",)  # what a job may ask of it (represent: nothing to fit)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # sets self.cfg (the method node) and self.train_cfg
        unknown = set(self.cfg) - {"name", "quality", "library", "budget_tag", *self.spec.settings}
        if unknown:
            keys = ", ".join(["quality", "library", *self.spec.settings])
            raise UserError(f"unknown {self.name} option(s) {', '.join(sorted(unknown))}; valid: {keys}")
        defaults = yaml_defaults(self.name, "method")  # the YAML is the one place a default is written
        self.settings = {k: self.cfg.get(k, defaults[k]) for k in self.spec.settings}
        self.backend = pick_backend(self.spec, str(self.cfg.get("library", defaults["library"])))

    def budget(self, gaussians: int) -> int:
        """The quality (``method.quality``); the ``gaussians`` key is ignored."""
        q = self.cfg.get("quality")
        lo, hi = self.spec.quality_range
        if isinstance(q, bool) or not isinstance(q, int) or not lo <= q <= hi:
            raise UserError(f"method.quality must be an integer in {lo}..{hi} for {self.name}, got {q!r}")
        return q

    def fit(self, image: torch.Tensor, budget: int, ctx: FitContext) -> Fitted:
        raise UserError(
            f"{self.name} is a classical codec: there is nothing to fit; run it with task=compress "
            f"(python -m gsbench method={self.name} task=compress method.quality=...)"
        )

    def describe(self, quality: int) -> dict[str, Any]:
        """What the record says about the encoder: library, versions, quality and settings."""
        version = self.backend.version()
        applied = self.backend.applied(self.settings)
        settings = ", ".join(f"{k}={v}" for k, v in applied.items())
        return {
            "description": f"{self.spec.label}, quality {quality}, via {version}; {settings}",
            "codec": self.name,
            "quality": quality,
            "library": self.backend.library,
            "library_version": version,
            "settings": applied,
        }

    def compress(self, image: torch.Tensor, budget: int, ctx: FitContext) -> Encoded:
        pixels = to_uint8(image)
        data = self.backend.encode(pixels, budget, self.settings)
        info = self.describe(budget)
        exact = torch.equal(torch.from_numpy(pixels).permute(2, 0, 1).to(image.device).float() / 255, image)
        if not exact:
            info["input_note"] = "the input was rounded to 8 bits before encoding"
        return Encoded(data=data, num_gaussians=0, bpp_payload=None, info=info)

    def decode(self, data: bytes, ctx: FitContext) -> DecodedPixels:
        return DecodedPixels(self.backend.decode(data), ctx.device)


def _register() -> None:
    for name, spec in CODECS.items():
        cls = type(
            f"{spec.name.capitalize()}Codec",
            (ClassicalCodec,),
            {"name": name, "spec": spec, "file_suffix": spec.suffix, "__doc__": f"{spec.label} baseline."},
        )
        METHODS.add(name, cls)


_register()

__all__ = ["CODECS", "Backend", "ClassicalCodec", "CodecSpec", "DecodedPixels", "pick_backend", "to_uint8"]

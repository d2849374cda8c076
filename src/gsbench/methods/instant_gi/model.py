"""Instant-GI's initialisation network in plain PyTorch: a ConvNeXt-UNet and the MLP fields.

Structure as the public code (``generalizable_model/``): a 3x3 conv stem, a ConvNeXt encoder whose
first downsampling has stride 2 (so the U-Net has skips at 1, 1/2, 1/4 and 1/8), a U-Net decoder
(transposed convs + double 3x3 conv with BatchNorm) to a 64-channel feature map, then per pixel a
position field (the PPM) and per triangle a BC field (barycentric weights: the position), a Sigma field
(scales relative to the triangle's ellipse and a rotation offset) and a colour field (a factor on the
image colour). The encoder's width and depth are configurable: ``base`` is the code's ConvNeXt-B
(trained from ImageNet weights there; none can be downloaded here), ``small`` the gsbench default.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .points import Triangulation

ARCHS = {
    "tiny": {"dims": (16, 32, 64, 128), "depths": (1, 1, 2, 1)},
    "small": {"dims": (32, 64, 128, 256), "depths": (2, 2, 4, 2)},
    "base": {"dims": (128, 256, 512, 1024), "depths": (3, 3, 27, 3)},  # the code's convnext_base
}


@dataclass
class NetConfig:
    """What builds an :class:`InitNet` (stored in checkpoints)."""

    arch: str = "small"
    dims: tuple[int, ...] = field(default_factory=lambda: ARCHS["small"]["dims"])
    depths: tuple[int, ...] = field(default_factory=lambda: ARCHS["small"]["depths"])
    feature_dim: int = 64
    kernel_size: int = 3  # dithering cell: at most one point per k x k pixels

    @classmethod
    def for_arch(cls, arch: str, **kw) -> NetConfig:
        if arch not in ARCHS:
            raise ValueError(f"unknown arch {arch!r}; valid: {', '.join(ARCHS)}")
        return cls(arch=arch, **ARCHS[arch], **kw)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of ``[B, C, H, W]`` (ConvNeXt's channels_first norm)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7 -> LayerNorm -> 4x MLP (GELU) -> layer scale, residual."""

    def __init__(self, dim: int, layer_scale: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1, self.pw2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.gamma * self.pw2(F.gelu(self.pw1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Up(nn.Module):
    """Transposed conv x2, pad to the skip's size, concatenate, double conv."""

    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
        self.conv = _double_conv(cin // 2 + cskip, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        dy, dx = skip.shape[2] - x.shape[2], skip.shape[3] - x.shape[3]
        x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([skip, x], dim=1))


class ConvNeXtUNet(nn.Module):
    """``[B, 3, H, W]`` -> ``[B, out, H, W]`` (any H, W: odd sizes are padded in the decoder)."""

    def __init__(self, dims, depths, out_channels: int) -> None:
        super().__init__()
        d0 = dims[0] // 2
        self.stem = nn.Sequential(
            nn.Conv2d(3, d0, 3, padding=1, bias=False), nn.BatchNorm2d(d0), nn.ReLU(True)
        )
        ins = [d0, *dims[:-1]]
        self.down = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(ins[0], dims[0], 2, stride=2), LayerNorm2d(dims[0]))]
            + [
                nn.Sequential(LayerNorm2d(ins[i]), nn.Conv2d(ins[i], dims[i], 2, stride=2))
                for i in range(1, 4)
            ]
        )
        self.stages = nn.ModuleList(
            [nn.Sequential(*[ConvNeXtBlock(dims[i]) for _ in range(depths[i])]) for i in range(4)]
        )
        self.ups = nn.ModuleList([Up(dims[i + 1], ins[i + 1], ins[i + 1]) for i in reversed(range(3))])
        self.ups.append(Up(dims[0], d0, d0))
        self.out = nn.Conv2d(d0, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        skips = []
        for down, stage in zip(self.down, self.stages, strict=True):
            skips.append(x)
            x = stage(down(x))
        for up, skip in zip(self.ups, reversed(skips), strict=True):
            x = up(x, skip)
        return self.out(x)


def _mlp(cin: int, cout: int, hidden: int | None = None) -> list[nn.Module]:
    hidden = hidden or cin
    return [nn.Linear(cin, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, cout)]


def scaling_activation(x: torch.Tensor) -> torch.Tensor:
    """The code's scale factor on the ellipse's semi-axes: (0, 0.5) for x < 0, [0.5, 3) above."""
    x = 50 * torch.tanh(0.02 * x)
    return torch.where(x < 0, 0.5 * torch.exp(0.5 * x), F.softplus(0.25 * x - 2.5, beta=-2, threshold=4) + 3)


def to_grid(px: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel coordinates (x, y) -> grid_sample coordinates (align_corners=False), same shape."""
    size = torch.tensor([width, height], dtype=px.dtype, device=px.device)
    return (2 * px + 1) / size - 1


def sample(fmap: torch.Tensor, px: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``fmap`` ``[1, C, H, W]`` at pixel points ``[..., 2]`` -> ``[..., C]``."""
    h, w = fmap.shape[-2:]
    grid = to_grid(px, h, w).reshape(1, 1, -1, 2)
    out = F.grid_sample(fmap, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[0, :, 0].T.reshape(*px.shape[:-1], fmap.shape[1])


@dataclass
class InitGaussians:
    """The network's Gaussians for one image (``T`` = number of triangles).

    Attributes:
        xy: ``[T, 2]`` positions in [-1, 1] (``-1`` = pixel centre 0, ``+1`` = W, as GaussianImage).
        scale: ``[T, 2]`` standard deviations in pixels.
        rotation: ``[T]`` angle as a fraction of 2 pi, in (0, 1).
        color: ``[T, 3]``.
    """

    xy: torch.Tensor
    scale: torch.Tensor
    rotation: torch.Tensor
    color: torch.Tensor

    def pixel_means(self, height: int, width: int) -> torch.Tensor:
        """``[T, 2]`` means in pixels, as :class:`GaussianImageModel` maps its tanh positions."""
        return 0.5 * torch.tensor([width, height], dtype=self.xy.dtype, device=self.xy.device) * (self.xy + 1)


class InitNet(nn.Module):
    """PPM and Gaussians from an image; see the module docstring."""

    def __init__(self, cfg: NetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or NetConfig()
        c = cfg.feature_dim
        self.feature_net = ConvNeXtUNet(cfg.dims, cfg.depths, c)
        self.position_field = nn.Sequential(*_mlp(c, 1), nn.Sigmoid())
        self.feature_reduction = nn.Sequential(
            nn.Linear(4 * c, 4 * c),
            nn.ReLU(),
            nn.Linear(4 * c, 2 * c),
            nn.ReLU(),
            nn.Linear(2 * c, c),
            nn.LayerNorm(c),
        )
        self.bc_field = nn.Sequential(*_mlp(4 + 6 + 12 + c, 3), nn.Softmax(dim=1))
        self.scale_rot_field = nn.Sequential(*_mlp(8 + 4 + 6 + 12 + c, 3))
        self.color_field = nn.Sequential(*_mlp(8 + 4 + 6 + 12 + c, 1), nn.Sigmoid())
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def features(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature map ``[1, C, H, W]`` and PPM ``[H, W]`` (in (0, 1)) of ``image`` ``[1, 3, H, W]``."""
        fmap = self.feature_net(image)
        ppm = self.position_field(fmap[0].permute(1, 2, 0))[..., 0]
        return fmap, ppm

    def gaussians(self, image: torch.Tensor, fmap: torch.Tensor, tri: Triangulation) -> InitGaussians:
        """Gaussians of the triangles ``tri`` (differentiable in the network's weights).

        Args:
            image: ``[1, 3, H, W]``; fmap: ``[1, C, H, W]`` from :meth:`features`.
        """
        h, w = image.shape[-2:]
        dev = fmap.device
        size = torch.tensor([w, h], dtype=fmap.dtype, device=dev)
        tri_px, centers = tri.triangles.to(dev), tri.centers.to(dev)
        semi, angle = tri.semi_axes.to(dev), tri.angles.to(dev)
        tri_n = 2 * tri_px / size - 1  # [-1, 1] as GaussianImage's positions
        pts = torch.cat([tri_px, centers[:, None]], dim=1)  # [T, 4, 2]: vertices then centre
        mapped = self.feature_reduction(sample(fmap, pts).reshape(len(pts), -1))
        colors = sample(image, pts).reshape(len(pts), -1)  # [T, 12]
        angle_frac = (angle / (2 * math.pi)).clamp(1e-5, 1 - 1e-5)
        ell = torch.cat(
            [
                (2 * centers / size - 1).clamp(-0.99999, 0.99999),
                semi[:, :1] / (semi[:, 1:] + 1e-4),
                angle_frac[:, None],
            ],
            dim=1,
        )
        feat = torch.cat([ell, _normalised_triangles(tri_n), colors, mapped], dim=1)  # [T, 86]
        bc = self.bc_field(feat)
        xy = torch.einsum("tk,tkd->td", bc, tri_n).clamp(-1 + 1e-6, 1 - 1e-6)
        nb = tri.neighbors.to(dev)
        # the code feeds the neighbours' positions too ("almost no effect"), detached
        neighbours = torch.cat([xy, xy[nb[:, 0]], xy[nb[:, 1]], xy[nb[:, 2]]], dim=1).detach()
        feat = torch.cat([neighbours, feat], dim=1)  # [T, 94]
        sr = self.scale_rot_field(feat)
        scale = scaling_activation(sr[:, :2]) * semi
        rotation = torch.sigmoid(torch.tanh(sr[:, 2]) + torch.logit(angle_frac))
        pix = 0.5 * size * (xy + 1)  # where the Gaussian sits, in pixels
        color = self.color_field(feat) * sample(image, pix.detach())
        return InitGaussians(xy, scale, rotation, color)


def _normalised_triangles(tri: torch.Tensor) -> torch.Tensor:
    """``[T, 3, 2]`` -> ``[T, 6]``: centred and scaled to unit area (shape only, as the code)."""
    d = tri[:, 1:] - tri[:, :1]
    area = 0.5 * (d[:, 0, 0] * d[:, 1, 1] - d[:, 0, 1] * d[:, 1, 0]).abs()
    return ((tri - tri.mean(dim=1, keepdim=True)) / area.clamp(min=1e-12).sqrt()[:, None, None]).reshape(
        -1, 6
    )

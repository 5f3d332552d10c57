"""zoo's own YOLOv5 architecture, built from a model yaml (as a dict): Conv, Bottleneck, C3, SPPF, Concat,
nn.Upsample and Detect with anchors and grid decoding.

Module and parameter names follow ultralytics/yolov5 (`model.0.conv.weight`, `model.24.anchors`), so the
official checkpoints' tensors load as they are. Nothing here is evaluated from the yaml: module names and
arguments are looked up in fixed tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from zoo import UnsupportedError

__all__ = ["C3", "SPPF", "Bottleneck", "Concat", "Conv", "Detect", "YOLOv5", "build"]


def autopad(k: int, p: int | None = None, d: int = 1) -> int:
    """'same' padding for kernel `k` and dilation `d`."""
    if d > 1:
        k = d * (k - 1) + 1
    return k // 2 if p is None else p


class Conv(nn.Module):
    """Conv2d (no bias) + BatchNorm2d + SiLU; `fuse()` folds the batch norm into the convolution."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None, g: int = 1, d: int = 1,
                 act: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p, d), groups=g, dilation=d, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act: nn.Module = nn.SiLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the batch norm into the convolution's weight and bias (inference only)."""
        if isinstance(self.bn, nn.Identity):
            return
        conv, bn = self.conv, self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                          conv.dilation, conv.groups, bias=True, device=conv.weight.device)  # fmt: skip
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
        self.conv, self.bn = fused.requires_grad_(False), nn.Identity()


class Bottleneck(nn.Module):
    """1x1 then 3x3 Conv, with a residual connection when the shapes allow."""

    def __init__(self, c1: int, c2: int, shortcut: bool = True, g: int = 1, e: float = 0.5) -> None:
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_, c2, 3, 1, g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))


class C3(nn.Module):
    """CSP bottleneck with 3 convolutions."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5) -> None:
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c1, c_, 1, 1)
        self.cv3 = Conv(2 * c_, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut, g, e=1.0) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained max-pools concatenated."""

    def __init__(self, c1: int, c2: int, k: int = 5) -> None:
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class Concat(nn.Module):
    """Concatenate a list of tensors along `d`."""

    def __init__(self, d: int = 1) -> None:
        super().__init__()
        self.d = d

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(x, self.d)


class Detect(nn.Module):
    """YOLOv5 head: a 1x1 conv per level, decoded against the grid and anchors in eval mode.

    Eval mode returns one tensor (batch, boxes, 5 + classes): center x, center y, width, height in input
    pixels, objectness, class probabilities. Train mode returns the raw per-level maps.
    """

    def __init__(
        self, nc: int, anchors: Sequence[Sequence[float]], ch: Sequence[int], strides: Sequence[float]
    ) -> None:
        super().__init__()
        self.nc, self.no = nc, nc + 5
        self.nl, self.na = len(anchors), len(anchors[0]) // 2
        self.stride = tuple(float(s) for s in strides)
        grid = torch.tensor(anchors, dtype=torch.float32).view(self.nl, -1, 2)
        self.register_buffer("anchors", grid / torch.tensor(self.stride).view(-1, 1, 1))  # in grid units
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)
        self._grids: dict[tuple[int, int, int, torch.dtype, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        outs, z = [], []
        for i in range(self.nl):
            x = self.m[i](xs[i])
            bs, _, ny, nx = x.shape
            x = x.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2)
            if self.training:
                outs.append(x.contiguous())
                continue
            grid, anchor_grid = self._grid(i, nx, ny, x.dtype, x.device)
            xy, wh, conf = x.sigmoid().split((2, 2, self.nc + 1), 4)
            xy = (xy * 2 + grid) * self.stride[i]
            wh = (wh * 2) ** 2 * anchor_grid
            z.append(torch.cat((xy, wh, conf), 4).view(bs, self.na * nx * ny, self.no))
        return outs if self.training else torch.cat(z, 1)

    def _grid(
        self, i: int, nx: int, ny: int, dtype: torch.dtype, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        key = (i, nx, ny, dtype, device)
        # a graph being captured (ONNX, torch.export, TorchScript) computes its grids from the input's shape: a
        # cached grid would be baked in as a constant of one size
        capturing = torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()
        cached = None if capturing else self._grids.get(key)
        if cached is None:
            y, x = torch.arange(ny, device=device, dtype=dtype), torch.arange(nx, device=device, dtype=dtype)
            yv, xv = torch.meshgrid(y, x, indexing="ij")
            grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2) - 0.5
            anchor_grid = (self.anchors[i] * self.stride[i]).to(dtype).view(1, self.na, 1, 1, 2)
            cached = (grid, anchor_grid)
            if not capturing:
                self._grids[key] = cached
        return cached

    def _apply(self, fn: Any, recurse: bool = True) -> Detect:
        self._grids = {}  # moved or cast: the cached grids are stale
        return super()._apply(fn, recurse)


class YOLOv5(nn.Module):
    """A YOLOv5 detection model: layers in `model`, run in order with the skip connections of the yaml.

    Attributes:
        yaml: the architecture it was built from.
        stride: the stride of each detection level (8, 16, 32 for P3-P5).
        names: class names, when known.
    """

    def __init__(
        self, cfg: Mapping[str, Any], ch: int = 3, nc: int | None = None, names: Sequence[str] | None = None
    ) -> None:
        super().__init__()
        self.yaml = dict(cfg)
        if nc is not None:
            self.yaml["nc"] = nc
        self.model, self.save, strides = parse_model(self.yaml, ch)
        self.stride = strides
        self.names = list(names) if names is not None else [str(i) for i in range(self.yaml["nc"])]

    def forward(self, x: torch.Tensor) -> Any:
        y: list[torch.Tensor | None] = []
        for m in self.model:
            if m.f != -1:
                x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
            x = m(x)
            y.append(x if m.i in self.save else None)
        return x

    def fuse(self) -> YOLOv5:
        """Fold every batch norm into its convolution (faster inference, same outputs); returns self."""
        for module in self.modules():
            if isinstance(module, Conv):
                module.fuse()
        return self


#: Module names a YOLOv5 yaml may use, and whether their first argument is an output width to scale.
_MODULES: dict[str, type[nn.Module]] = {
    "Conv": Conv, "Bottleneck": Bottleneck, "C3": C3, "SPPF": SPPF, "Concat": Concat, "Detect": Detect,
    "nn.Upsample": nn.Upsample,
}  # fmt: skip
_REPEATED = {C3}


def make_divisible(x: float, divisor: int = 8) -> int:
    """`x` rounded up to a multiple of `divisor`."""
    return int(math.ceil(x / divisor) * divisor)


def _arg(value: Any, names: Mapping[str, Any]) -> Any:
    return names.get(value, value) if isinstance(value, str) else value


def parse_model(d: Mapping[str, Any], ch: int) -> tuple[nn.Sequential, list[int], tuple[float, ...]]:
    """Build the layers of a YOLOv5 yaml dict; returns (layers, indices whose outputs are kept, strides)."""
    anchors, nc, gd, gw = d["anchors"], d["nc"], d["depth_multiple"], d["width_multiple"]
    if d.get("activation") not in (None, "nn.SiLU()"):
        raise UnsupportedError(f"YOLOv5 activation {d['activation']!r} is not supported: only nn.SiLU().")
    if isinstance(anchors, int):
        raise UnsupportedError("YOLOv5 yamls with auto-anchors (an anchor count) need the checkpoint's anchors.")
    names = {"None": None, "nc": nc, "anchors": anchors, "True": True, "False": False}
    no = (len(anchors[0]) // 2) * (nc + 5)
    layers, save, chans, strides = [], [], [ch], [1.0]
    for i, (f, n, kind, args) in enumerate(d["backbone"] + d["head"]):
        m = _MODULES.get(kind)
        if m is None:
            raise UnsupportedError(f"YOLOv5 yaml layer {i} uses {kind!r}; zoo's YOLOv5 supports {', '.join(_MODULES)}.")
        args = [_arg(a, names) for a in args]
        n = max(round(n * gd), 1) if n > 1 else n
        c_in = chans[f] if isinstance(f, int) else None
        stride = strides[f] if isinstance(f, int) else strides[f[0]]
        if m in (Conv, Bottleneck, C3, SPPF):
            c2 = make_divisible(args[0] * gw, 8) if args[0] != no else args[0]
            args = [c_in, c2, *args[1:]]
            if m in _REPEATED:
                args.insert(2, n)
                n = 1
            if m is Conv:
                stride *= args[3] if len(args) > 3 else 1
        elif m is Concat:
            c2 = sum(chans[x] for x in f)
        elif m is Detect:
            args = [args[0], args[1], [chans[x] for x in f], [strides[x] for x in f]]
            c2 = c_in or 0
        else:  # nn.Upsample(None, scale, mode)
            c2 = c_in
            stride /= float(args[1])
        module = nn.Sequential(*(m(*args) for _ in range(n))) if n > 1 else m(*args)
        module.i, module.f = i, f
        save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)
        layers.append(module)
        if i == 0:
            chans, strides = [], []
        chans.append(c2)
        strides.append(stride)
    detect = layers[-1]
    if not isinstance(detect, Detect):
        raise UnsupportedError("The YOLOv5 yaml does not end with a Detect layer.")
    return nn.Sequential(*layers), sorted(save), detect.stride


def build(cfg: Mapping[str, Any], *, nc: int | None = None, names: Sequence[str] | None = None) -> YOLOv5:
    """A YOLOv5 model from its yaml dict (random init; load weights into it)."""
    return YOLOv5(cfg, nc=nc, names=names).eval()

"""VolcOutpaint's expansion types in ratio mode (seed 000): 四边扩展 fraction per side (Volcengine's
own top/bottom/left/right), pixels per side, 等比扩展 scale, 画幅扩展 aspect_ratio and target_size.

Every type other than fraction is planned by the shared geometry (the same plan_expansion as
MaskCanvasBuilder) and sent as the side fractions of that placement, so the node, the CLI and the
geometry preview send and show the same canvas. Canvas mode (a mask) ignores all of this.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from . import geometry
from .errors import InputError
from .volc import VolcParams
from .volc_answers import VENDOR
from .widgets import VOLC as _W

# the widgets each type reads (fraction reads VolcParams' top/bottom/left/right)
READS = {
    "fraction": ("top", "bottom", "left", "right"),
    "pixels": ("pixels_left", "pixels_top", "pixels_right", "pixels_bottom"),
    "scale": ("x_scale", "y_scale", "anchor"),
    "aspect_ratio": ("aspect_ratio", "anchor"),
    "target_size": ("target_width", "target_height", "anchor"),
}


@dataclass(frozen=True)
class VolcExpansion:
    """The expansion widgets of VolcOutpaint (widgets.VOLC, after watermark_text)."""

    expand_mode: str = _W["expand_mode"].default
    pixels_left: int = _W["pixels_left"].default
    pixels_top: int = _W["pixels_top"].default
    pixels_right: int = _W["pixels_right"].default
    pixels_bottom: int = _W["pixels_bottom"].default
    x_scale: float = _W["x_scale"].default
    y_scale: float = _W["y_scale"].default
    aspect_ratio: str = _W["aspect_ratio"].default
    target_width: int = _W["target_width"].default
    target_height: int = _W["target_height"].default
    anchor: str = _W["anchor"].default

    def validate(self) -> None:
        """The mode and the widgets it reads, each by its widget's own rule."""
        _W["expand_mode"].check(self.expand_mode, VENDOR)
        for name in READS[self.expand_mode]:
            if hasattr(self, name):  # fraction's sides are VolcParams' (checked by VolcParams.validate)
                _W[name].check(getattr(self, name), VENDOR)

    def given_by(self) -> str:
        """'expand_mode scale (x_scale 3.0, y_scale 1.5, anchor left)': what an error names."""
        shown = ", ".join(f"{name} {getattr(self, name)}" for name in READS[self.expand_mode])
        return f"expand_mode {self.expand_mode} ({shown})"

    def placement(self, width: int, height: int) -> geometry.Placement:
        """Where a width x height image lands on the canvas this expansion asks for."""
        self.validate()
        try:
            return geometry.plan_expansion(
                width, height, self.expand_mode, left=self.pixels_left, top=self.pixels_top,
                right=self.pixels_right, bottom=self.pixels_bottom, x_scale=self.x_scale, y_scale=self.y_scale,
                aspect_ratio=self.aspect_ratio, target_width=self.target_width, target_height=self.target_height,
                anchor=self.anchor)
        except InputError as exc:
            raise InputError(f"{self.given_by()}: {exc}") from None

    def fractions(self, width: int, height: int) -> dict[str, float]:
        """Volcengine's {top, bottom, left, right} for a width x height image (not for fraction mode)."""
        placement = self.placement(width, height)
        if placement.padding == (0, 0, 0, 0):
            raise InputError(f"{self.given_by()} asks for the {width}x{height} image's own size: nothing to "
                             "outpaint")
        return geometry.volc_fractions(placement, self.given_by())


WIDGETS = tuple(f.name for f in fields(VolcExpansion))


def ratio_params(params: VolcParams, expansion: VolcExpansion, width: int, height: int) -> VolcParams:
    """The params to send for a width x height image in ratio mode: fraction mode keeps its own
    top/bottom/left/right, every other type replaces them with the fractions of its placement."""
    expansion.validate()
    if expansion.expand_mode == "fraction":
        return params
    return replace(params, **expansion.fractions(width, height))

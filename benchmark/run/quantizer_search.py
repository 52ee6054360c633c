"""Finding an undeclared input quantiser from the outside: the diagnostic behind the ``quantized`` flag.

A model that quantises its input elementwise (``(x >= 0.5).float()``, bit-depth reduction) has logits that
are piecewise constant along every pixel axis: moving one pixel changes nothing until it crosses a
threshold, then the logits jump.  A network without such a step changes its logits almost everywhere
along an axis it uses.  So, on a few test points and the pixels that vary most over the test slice, each
pixel is swept over a grid of values with score queries; if the logits change on at most half of the grid
intervals of the axes that change at all, every interval where they change is bisected down to a bracket
(``below``, ``above``) of the threshold, and the brackets of all points and pixels are grouped into
thresholds.  A shared elementwise quantiser puts every pixel's crossing in the same place: brackets of one
threshold must overlap and be seen on at least half the axes, else the model is piecewise constant for
some other reason (or its thresholds differ between pixels: declare those) and no quantiser is reported.
The cost is fixed and small: ``points × pixels × grid`` queries plus ``bisections`` per crossing.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from foundation.quantizers import Quantizer

#: Probing budget: points, pixels per point, grid values per pixel, bisection steps per crossing.
POINTS, PIXELS, GRID, BISECTIONS = 4, 8, 33, 24
#: Axes whose logits change on more than this share of grid intervals are continuous there: no quantiser.
CONSTANT_SHARE = 0.5
#: Brackets whose middles lie further apart than this belong to different thresholds.
SEPARATION = 1e-3


def _changed(a: Tensor, b: Tensor) -> Tensor:
    """Whether two logit vectors differ beyond float rounding (last dimension)."""
    scale = torch.maximum(a.abs(), b.abs()).amax(dim=-1).clamp_min(1.0)
    return (a - b).abs().amax(dim=-1) > 1e-5 * scale


def _with_pixel(images: Tensor, pixels: Tensor, values: Tensor) -> Tensor:
    """Flattened copies of ``images`` (n, D) with pixel ``pixels[i]`` set to ``values[i]``."""
    flat = images.clone()
    flat[torch.arange(len(flat), device=flat.device), pixels] = values.to(flat.dtype)
    return flat


def find_input_quantizer(logits_of: Callable[[Tensor], Tensor], x: Tensor) -> Quantizer | None:
    """The elementwise quantiser in front of the model ``logits_of`` (score queries on images like ``x``), or
    ``None`` where its logits are not piecewise constant along pixel axes with shared thresholds."""
    if len(x) == 0:
        return None
    shape, flat = x.shape[1:], x.flatten(1)
    points = flat[:POINTS]
    pixels = flat.var(dim=0).topk(min(PIXELS, flat.shape[1])).indices if len(flat) > 1 else torch.arange(PIXELS)
    grid = torch.linspace(0.0, 1.0, GRID, device=x.device)
    count, axes = len(points), len(pixels)
    # Every (point, pixel, grid value): one image each.
    point_of = torch.arange(count, device=x.device).repeat_interleave(axes * GRID)
    pixel_of = pixels.repeat_interleave(GRID).repeat(count)
    value_of = grid.repeat(count * axes)

    def query(rows: Tensor, pixel: Tensor, value: Tensor) -> Tensor:
        return logits_of(_with_pixel(points[rows], pixel, value).view(-1, *shape)).detach().float()

    logits = query(point_of, pixel_of, value_of).view(count, axes, GRID, -1)
    changes = _changed(logits[:, :, 1:], logits[:, :, :-1])
    used = changes.any(dim=2)
    if not used.any() or changes[used].float().mean() > CONSTANT_SHARE:
        return None
    point, axis, step = changes.nonzero(as_tuple=True)
    pixel = pixels[axis]
    low, high, reference = grid[step], grid[step + 1], logits[point, axis, step]
    for _ in range(BISECTIONS):
        middle = (low + high) / 2
        same = ~_changed(query(point, pixel, middle), reference)
        low, high = torch.where(same, middle, low), torch.where(same, high, middle)
    return _thresholds(low, high, point * axes + axis, int(used.sum()), count, axes)


def _thresholds(low: Tensor, high: Tensor, axis: Tensor, used: int, points: int, axes: int) -> Quantizer | None:
    """Group the brackets (found on ``axis``, of ``used`` axes that change at all) into thresholds; ``None``
    where the brackets of one threshold do not overlap or a threshold is seen on fewer than half the axes
    (thresholds that differ between pixels: not a shared elementwise quantiser)."""
    order = ((low + high) / 2).argsort()
    low, high, axis = low[order], high[order], axis[order]
    middles = (low + high) / 2
    starts = torch.cat([torch.ones(1, dtype=torch.bool, device=low.device), (middles[1:] - middles[:-1]) > SEPARATION])
    group = starts.cumsum(0) - 1
    below = torch.full((int(group.max()) + 1,), -1.0, device=low.device).scatter_reduce(0, group, low, "amax")
    above = torch.full_like(below, 2.0).scatter_reduce(0, group, high, "amin")
    if (below > above).any() or below.min() <= 0 or above.max() >= 1:
        return None
    seen_on = [len(axis[group == index].unique()) for index in range(len(below))]
    if min(seen_on) * 2 < used:
        return None
    source = f"found by the diagnostics: {points} points × {axes} pixels, {GRID}-value grid, {BISECTIONS} bisections"
    return Quantizer(below.cpu(), above.cpu(), source)

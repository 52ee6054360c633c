"""``sparse-rs``: Sparse-RS, the score-based random search for L0 adversarial examples (pixel version, untargeted).

Croce, Singh, Andriushchenko & Hein, "Sparse-RS: a versatile framework for query-efficient sparse black-box
adversarial attacks", AAAI 2022 (code: github.com/fra31/sparse-rs, ``rs_attacks.py``, ``norm='L0'``).

Each point the model gets right starts from k = ⌊ε⌋ random pixel positions set to random vertices of the colour
cube {0, 1}^C.  Every iteration proposes to swap m_i = max(⌊α_i·k⌋, 1) pixels of the current set for as many pixels
outside it (the dropped ones go back to their clean values, the new ones get random vertices), queries the model
once per standing point and keeps the proposal where the margin loss (logit of the label minus the largest other
logit) does not increase.  α_i follows the paper's L0 schedule, rescaled to the query budget.  It reads logits
only, never gradients, so masked gradients do not stop it.

As in the paper's code: the margin loss, one restart, the L0 schedule (α_init/2 after the first query, then /4,
/5, /6, /8, /10, /12, /15, /20 past 50, 200, 500, 1000, 2000, 4000, 6000, 8000 of 10,000 iterations, rescaled),
m_i = max(⌊α_i·k⌋, 1), the initial draw counted as the first of ``queries`` queries per image, points the model
already gets wrong left unchanged, and points dropped from the search once fooled.  Different:

* every drawn vertex differs from its clean pixel (where it equals it on all channels one random channel is
  flipped), so each example changes exactly k pixels; the paper's code can draw a black pixel for a black MNIST
  pixel and waste part of its budget;
* a proposal is accepted when the margin does not increase (≤; the code needs a strict decrease), so the search
  can drift across plateaus of the margin, e.g. on models that quantise their input;
* each image draws its own positions to swap (the code draws the same slots of every image's lists);
* the call's criterion decides which points are fooled, and under a stochastic criterion (a randomized defense)
  no point leaves the search early;
* ε = all pixels (no pixel outside the set) recolours m_i pixels of the set instead of swapping;
* every draw comes from the cell's generator, so a seed gives the same examples on the same device.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attacks.base import Attack, ThreatModel, register_attack
from attacks.quantized import margins

#: Images per forward pass.
QUERY_CHUNK_ROWS = 1024
#: The paper code's L0 schedule on its 10,000-iteration scale: α_init is divided by ``ALPHA_DIVISORS[j]`` on
#: iterations in (``ALPHA_BREAKPOINTS[j-1]``, ``ALPHA_BREAKPOINTS[j]``] (the last divisor past the last breakpoint).
ALPHA_BREAKPOINTS = (0, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
ALPHA_DIVISORS = (1, 2, 4, 5, 6, 8, 10, 12, 15, 20)
SCHEDULE_SCALE = 10_000


@dataclass(frozen=True)
class SparseRSConfig:
    """Sparse-RS's query budget per image and initial fraction α_init of the pixel set swapped per step (the
    paper's L0 settings)."""

    queries: int = 10_000
    p_init: float = 0.3

    def __post_init__(self) -> None:
        if self.queries < 1:
            raise ValueError(f"queries must be at least 1; got {self.queries}")
        if not 0 < self.p_init <= 1:
            raise ValueError(f"p_init must lie in (0, 1]; got {self.p_init}")


def alpha(p_init: float, iteration: int, queries: int) -> float:
    """α_i of the paper code's L0 schedule, its iterations rescaled from 10,000 to ``queries``."""
    scaled = int(iteration / queries * SCHEDULE_SCALE)
    return p_init / ALPHA_DIVISORS[bisect.bisect_left(ALPHA_BREAKPOINTS, scaled)]


def pixel_view(x: Tensor) -> Tensor:
    """(N, C, P) view of a batch: the C channels of each of P pixel positions ((N, C, H, W) images; any other
    shape has one channel, each value being a pixel, as ``attacks.base.changed_pixels`` counts)."""
    return x.flatten(2) if x.ndim == 4 else x.flatten(1).unsqueeze(1)


def draw_positions(keys: Tensor, eligible: Tensor, count: int) -> Tensor:
    """Per row, ``count`` positions drawn uniformly without replacement among the eligible ones (the largest of
    the rows' uniform ``keys``); each row needs at least ``count`` eligible positions."""
    return keys.masked_fill(~eligible, -1.0).topk(count, dim=1).indices


def gather_pixels(pixels: Tensor, positions: Tensor) -> Tensor:
    """The (n, C, m) values of pixels (n, C, P) at ``positions`` (n, m)."""
    return pixels.gather(2, positions.unsqueeze(1).expand(-1, pixels.shape[1], -1))


def scatter_pixels(pixels: Tensor, positions: Tensor, values: Tensor) -> Tensor:
    """A copy of pixels (n, C, P) with ``values`` (n, C, m) at ``positions`` (n, m)."""
    return pixels.scatter(2, positions.unsqueeze(1).expand(-1, pixels.shape[1], -1), values)


def random_vertices(original: Tensor, generator: torch.Generator) -> Tensor:
    """Uniform vertices of {0, 1}^C for pixels (n, C, m); where one equals its ``original`` pixel on every
    channel, a random channel is flipped, so every vertex changes its pixel."""
    count, channels, width = original.shape
    vertices = (torch.rand(original.shape, generator=generator, device=original.device) < 0.5).to(original.dtype)
    channel = torch.randint(channels, (count, 1, width), generator=generator, device=original.device)
    unchanged = (vertices == original).all(dim=1, keepdim=True)
    flip = unchanged & (torch.arange(channels, device=original.device).view(1, -1, 1) == channel)
    return torch.where(flip, 1 - vertices, vertices)


def query_logits(model: nn.Module, x: Tensor) -> Tensor:
    """The model's logits of x, in chunks of ``QUERY_CHUNK_ROWS`` images (call under ``no_grad``)."""
    return torch.cat([model(chunk) for chunk in x.split(QUERY_CHUNK_ROWS)])


@register_attack("sparse-rs")
class SparseRS(Attack):
    """Sparse-RS, L0 pixels, untargeted (see the module docstring): a fixed budget of k = ⌊ε⌋ changed pixels."""

    description = "Sparse-RS, L0, score-based random search over sets of k changed pixels on the margin (native)"
    Config = SparseRSConfig
    norms = frozenset({"l0"})
    threat_model: ThreatModel = "l0"
    requires = frozenset({"queries"})
    profile_overrides = {"smoke": {"queries": 300}, "quick": {"queries": 1000}}

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        x, k = x.detach(), int(eps)
        result = x.clone()
        if k == 0 or len(x) == 0:
            return result
        with torch.no_grad():
            wrong = self.fooled(x, y, logits=query_logits(model, x), model=model)
            attacked = (~wrong).nonzero().squeeze(1)
            if len(attacked):
                result[attacked] = self._search(model, x[attacked], y[attacked], k, generator)
        return result

    def _search(self, model: nn.Module, x: Tensor, y: Tensor, k: int, generator: torch.Generator) -> Tensor:
        """The random search on points the model gets right: each point's best example (exactly k changed pixels)."""
        cfg: SparseRSConfig = self.config
        clean = pixel_view(x)
        count, _, pixels = clean.shape
        device = x.device
        stop = self.can_stop_early()

        everywhere = torch.ones(count, pixels, dtype=torch.bool, device=device)
        start = draw_positions(torch.rand(count, pixels, generator=generator, device=device), everywhere, k)
        best = scatter_pixels(clean, start, random_vertices(gather_pixels(clean, start), generator))
        chosen = torch.zeros(count, pixels, dtype=torch.bool, device=device).scatter_(1, start, True)
        logits = query_logits(model, best.view_as(x))
        margin = margins(logits, y)
        done = self.fooled(best.view_as(x), y, logits=logits, model=model) & stop

        for iteration in range(1, cfg.queries):
            rows = (~done).nonzero().squeeze(1)
            if len(rows) == 0:
                break
            swap = max(int(alpha(cfg.p_init, iteration, cfg.queries) * k), 1)
            if pixels > k:
                swap = min(swap, pixels - k)
            keys = torch.rand(len(rows), pixels, generator=generator, device=device)
            in_set, own = chosen[rows], clean[rows]
            dropped = draw_positions(keys, in_set, swap)
            added = draw_positions(keys, ~in_set, swap) if pixels > k else dropped
            candidate = scatter_pixels(best[rows], dropped, gather_pixels(own, dropped))
            candidate = scatter_pixels(candidate, added, random_vertices(gather_pixels(own, added), generator))
            candidate_logits = query_logits(model, candidate.view(-1, *x.shape[1:]))
            candidate_margin = margins(candidate_logits, y[rows])

            accept = candidate_margin <= margin[rows]
            accepted = rows[accept]
            best[accepted] = candidate[accept]
            margin[accepted] = candidate_margin[accept]
            chosen[accepted] = in_set[accept].scatter(1, dropped[accept], False).scatter(1, added[accept], True)
            if stop:
                examples = candidate[accept].view(-1, *x.shape[1:])
                done[accepted] = self.fooled(examples, y[accepted], logits=candidate_logits[accept], model=model)
        return best.view_as(x)

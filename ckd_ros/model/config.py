"""Architecture of the CKD inference network as a typed dataclass (defaults = the paper's ViT-B/16)."""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    """Every architectural number of CKDNet. Defaults: the paper's network with candidate elimination off."""

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    patch_size: int = 16
    template_size: int = 128
    search_size: int = 256
    head_channels: int = 256
    ce_loc: tuple[int, ...] = field(default_factory=tuple)  # 0-based block indices
    ce_keep_ratio: tuple[float, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        # lists arrive from JSON / checkpoints; store tuples so the config stays hashable and immutable
        object.__setattr__(self, "ce_loc", _int_tuple(self.ce_loc, "ce_loc"))
        object.__setattr__(self, "ce_keep_ratio", _keep_ratios(self.ce_keep_ratio, len(self.ce_loc)))
        problems = []
        if self.embed_dim <= 0 or self.depth <= 0 or self.num_heads <= 0:
            problems.append("embed_dim, depth and num_heads must be positive")
        elif self.embed_dim % self.num_heads:
            problems.append(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        for name in ("template_size", "search_size"):
            if getattr(self, name) % self.patch_size or getattr(self, name) <= 0:
                problems.append(f"{name} {getattr(self, name)} is not a positive multiple of "
                                f"patch_size {self.patch_size}")
        if self.head_channels % 8 or self.head_channels <= 0:
            problems.append(f"head_channels {self.head_channels} must be a positive multiple of 8 "
                            "(branch widths ch, ch/2, ch/4, ch/8)")
        if len(self.ce_loc) != len(self.ce_keep_ratio):
            problems.append(f"ce_loc {self.ce_loc} and ce_keep_ratio {self.ce_keep_ratio} differ in length")
        if any(not 0 <= i < self.depth for i in self.ce_loc) or list(self.ce_loc) != sorted(set(self.ce_loc)):
            problems.append(f"ce_loc {self.ce_loc} must be increasing block indices in [0, {self.depth})")
        if any(not 0.0 < r <= 1.0 for r in self.ce_keep_ratio):
            problems.append(f"ce_keep_ratio {self.ce_keep_ratio} must lie in (0, 1]")
        if problems:
            raise ValueError("invalid ModelConfig: " + "; ".join(problems))

    # ---- derived numbers -------------------------------------------------------------------------------
    @property
    def template_grid(self) -> int:
        return self.template_size // self.patch_size

    @property
    def search_grid(self) -> int:
        return self.search_size // self.patch_size

    @property
    def num_template_tokens(self) -> int:
        return self.template_grid ** 2

    @property
    def num_search_tokens(self) -> int:
        return self.search_grid ** 2

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def mlp_hidden(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)

    @property
    def legacy_pos_tokens(self) -> int:
        """Length of the unused `pos_embed` the official ViT keeps (built for 224 px plus a cls token)."""
        return (224 // self.patch_size) ** 2 + 1

    @property
    def ce_enabled(self) -> bool:
        return any(r < 1.0 for r in self.ce_keep_ratio)

    def search_tokens_per_stage(self) -> list[int]:
        """Search-token counts entering the first block and after each CE layer (256 -> 180 -> 126 -> 89)."""
        import math

        counts = [self.num_search_tokens]
        for ratio in self.ce_keep_ratio:
            counts.append(math.ceil(ratio * counts[-1]) if ratio < 1.0 else counts[-1])
        return counts

    # ---- presets and (de)serialisation -------------------------------------------------------------------
    def mce_layers(self) -> tuple[int, ...]:
        """The paper's placement of candidate elimination scaled to this depth: blocks at 1/4, 1/2 and 3/4
        of it (3, 6, 9 for 12 blocks); block 0 never (no attention map has been computed before it) unless
        the network is too shallow for anything else."""
        d = self.depth
        return tuple(sorted({d // 4, d // 2, 3 * d // 4} - {0})) or (0,)

    @classmethod
    def paper_mce(cls, **overrides: Any) -> "ModelConfig":
        """The paper's MCE variant: elimination after blocks 3, 6, 9 keeping 70 % each time."""
        config = cls(**{k: v for k, v in overrides.items() if k not in ("ce_loc", "ce_keep_ratio")})
        return config.with_ce(overrides.get("ce_loc", config.mce_layers()), overrides.get("ce_keep_ratio", 0.7))

    def with_ce(self, ce_loc: tuple[int, ...] | list[int], ce_keep_ratio: float | tuple[float, ...]
                | list[float]) -> "ModelConfig":
        """Same weights layout, other elimination schedule (CE does not change any tensor shape); one keep
        ratio applies to every layer."""
        return dataclasses.replace(self, ce_loc=tuple(ce_loc), ce_keep_ratio=ce_keep_ratio)  # type: ignore[arg-type]

    def without_ce(self) -> "ModelConfig":
        return dataclasses.replace(self, ce_loc=(), ce_keep_ratio=())

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["ce_loc"] = list(self.ce_loc)
        d["ce_keep_ratio"] = list(self.ce_keep_ratio)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown ModelConfig fields {unknown}; known: {sorted(names)}")
        return cls(**d)

    def same_architecture(self, other: "ModelConfig") -> bool:
        """True when both describe the same tensors (the CE schedule does not change weights)."""
        return self.without_ce() == other.without_ce()


def _int_tuple(values: Any, name: str) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"ModelConfig.{name} must be a sequence of block indices (e.g. (3, 6, 9)), "
                        f"got {type(values).__name__} {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) and not (
                isinstance(v, numbers.Real) and float(v).is_integer()):
            raise TypeError(f"ModelConfig.{name} must hold integer block indices, got {v!r} in {values!r}")
        out.append(int(v))
    return tuple(out)


def _keep_ratios(value: Any, layers: int) -> tuple[float, ...]:
    """One keep ratio for every elimination layer (the natural call, ``ce_keep_ratio=0.7``) or one per layer."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return (float(value),) * layers
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError("ModelConfig.ce_keep_ratio must be a number in (0, 1] (used at every ce_loc layer) or "
                        f"one number per ce_loc layer, got {type(value).__name__} {value!r}")
    values = list(value)
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, numbers.Real)]
    if bad:
        raise TypeError(f"ModelConfig.ce_keep_ratio must hold numbers, got {bad[0]!r} in {values!r}")
    return tuple(float(v) for v in values)

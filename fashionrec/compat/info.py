"""What a trained compatibility model records about itself, stored with it as JSON.

A model carries its kind, the backbone and encoder whose vectors it expects, their size, the
groups it was trained on and its kind's own settings; each use checks them, so a model of another
backbone, size or set of groups is refused with an error that says what to do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from fashionrec.core.errors import ModelError
from fashionrec.core.groups import DEFAULT_GROUPS
from fashionrec.vectors import ItemVectors


@dataclass(frozen=True)
class ModelInfo:
    kind: str  # a key of compat.kinds.KINDS
    backbone: str  # the backbone whose embeddings the model expects
    encoder_key: str  # backbone + weights + embedding version
    embed_dim: int
    groups: tuple[str, ...] = DEFAULT_GROUPS  # the groups it was trained on, in order
    config: dict[str, Any] = field(default_factory=dict)  # the kind's own settings (asdict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["groups"] = list(self.groups)
        return out

    def summary(self) -> dict[str, Any]:
        """``to_dict`` without the long vocabularies a model may carry (item ids...): for MLflow
        metadata and logs; the model's own info.json keeps everything."""
        out = self.to_dict()
        out["config"] = {k: (f"<{len(v)} entries>" if isinstance(v, list) and len(v) > 20 else v)
                         for k, v in out["config"].items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelInfo":
        """The stored JSON -> info; models stored before the settings moved under ``config``
        (flat ``hidden_dim`` / ``space_dim`` / ``space`` keys) load too."""
        data = dict(data)
        kind = data.pop("kind", "mlp")
        known = {"backbone", "encoder_key", "embed_dim", "groups", "config"}
        config = dict(data.pop("config", {}) or {})
        legacy = {k: data.pop(k) for k in list(data) if k not in known}
        if kind == "type_aware":
            legacy.pop("hidden_dim", None)  # was a copy of space_dim
        config = {**legacy, **config}
        try:
            return cls(kind=kind, config=config, **data)
        except TypeError as exc:
            raise ModelError(f"stored model info {data} is not a fashionrec model's: {exc}") from exc

    def check_backbone(self, backbone: str, dim: int) -> None:
        """Refuse embeddings of another backbone (or size) than the model was trained on."""
        if dim != self.embed_dim or backbone != self.backbone:
            raise ModelError(
                f"the compatibility model was trained on {self.backbone} embeddings "
                f"({self.embed_dim}-d) but this run uses {backbone} ({dim}-d). Run with "
                f"--backbone {self.backbone}, or train a model on {backbone} embeddings first "
                f"(fashionrec train --backbone {backbone} ...)."
            )

    def check_vectors(self, vectors: ItemVectors) -> None:
        """Refuse vectors of another encoder (backbone, weights or size) than the model's."""
        if vectors.shape[0] and (vectors.encoder_key != self.encoder_key or vectors.dim != self.embed_dim):
            raise ModelError(
                f"the {self.kind} compatibility model was trained on {self.backbone} embeddings "
                f"({self.encoder_key}, {self.embed_dim}-d) but was given {vectors.encoder_key} "
                f"embeddings ({vectors.dim}-d). Embed the catalogue with --backbone {self.backbone}, or "
                f"train a model on these embeddings first (fashionrec train --backbone ...)."
            )
        self.check_groups(set(vectors.groups))

    def check_groups(self, groups: Iterable[str]) -> None:
        """Refuse items of groups the model was not trained on."""
        unknown = sorted(set(groups) - set(self.groups))
        if unknown:
            raise ModelError(
                f"the compatibility model was trained on the groups {', '.join(self.groups)}, but the "
                f"catalogue's groups also include {', '.join(unknown)}: train a model on a catalogue with "
                f"these groups (fashionrec train --catalog ...), or map the catalogue onto the model's groups"
            )

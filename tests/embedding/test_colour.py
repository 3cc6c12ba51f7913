"""Similar items by kind and colour: the colour descriptor of the product region, stored with
each image's CNN vector by the embedding stage, and mixed into the similar-items cosine."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from PIL import Image

from fashionrec.catalog.sample import draw_item
from fashionrec.core import schemas as S
from fashionrec.core.config import TopKConfig
from fashionrec.core.errors import ConfigError
from fashionrec.embedding.backbones import encoder_key
from fashionrec.embedding.colour import COLOUR_DIM, ColourSpec, colour_histogram, foreground_mask
from fashionrec.embedding.config import EmbedConfig
from fashionrec.embedding.stage import embed_items
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.neighbors import similarity_vectors
from fashionrec.tables.topk import similar_topk
from tests.conftest import TEST_BACKBONE


def _shot(colour, box=(20, 20, 44, 60), size=(64, 80)) -> Image.Image:
    img = Image.new("RGB", size, (255, 255, 255))
    img.paste(Image.new("RGB", (box[2] - box[0], box[3] - box[1]), colour), box[:2])
    return img


def test_colour_descriptor_ignores_the_white_background():
    small = colour_histogram(_shot((20, 40, 120), box=(26, 30, 38, 50)))
    large = colour_histogram(_shot((20, 40, 120), box=(4, 4, 60, 76)))
    other = colour_histogram(_shot((20, 20, 20), box=(4, 4, 60, 76)))
    assert small.shape == (ColourSpec().dim,) == (COLOUR_DIM,)
    assert np.isclose(np.linalg.norm(small), 1.0)
    # the same navy on more or less white background: the same descriptor; black is far
    assert float(small @ large) > 0.99
    assert float(large @ other) < 0.3


def test_white_item_keeps_its_pixels_and_background_is_border_connected():
    # a white shirt outlined in grey: the outline encloses white pixels that are the product
    img = Image.new("RGB", (60, 80), (255, 255, 255))
    img.paste(Image.new("RGB", (30, 50), (150, 150, 150)), (15, 15))
    img.paste(Image.new("RGB", (26, 46), (250, 250, 250)), (17, 17))
    mask = foreground_mask(np.asarray(img, np.float32) / 255.0)
    assert mask[40, 30] and not mask[2, 2]
    white = colour_histogram(img)
    grey = colour_histogram(_shot((150, 150, 150)))
    assert float(white @ grey) < 0.9  # the enclosed white counts, so it is not a grey item
    # an all-white image (nothing left after removing the background) is still described
    blank = colour_histogram(Image.new("RGB", (60, 80), (255, 255, 255)))
    assert np.isfinite(blank).all() and np.isclose(np.linalg.norm(blank), 1.0)


def test_colour_weight_is_checked():
    with pytest.raises(ConfigError, match="colour_weight"):
        TopKConfig(colour_weight=1.5)


# Pairs of sample styles with the same pattern and different colours, so that only colour tells
# them apart: dots navy/white vs black/red, plain orange/brown vs beige/brown.
STYLES = (1, 5, 3, 7)
KINDS = {"top": "tops", "bag": "bags"}
PER_STYLE = 3


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    root = tmp_path_factory.mktemp("drawn")
    rng = np.random.default_rng(11)
    rows = []
    for kind, group in KINDS.items():
        for style in STYLES:
            for n in range(PER_STYLE):
                item_id = f"{kind}-{style}-{n}"
                path = root / f"{item_id}.jpg"
                draw_item(kind, style, 128, rng).save(path, quality=92)
                rows.append({S.ITEM_ID: item_id, S.RAW_CATEGORY: kind, S.SEMANTIC_CATEGORY: group,
                             S.GROUP: group, S.IMAGE: str(path)})
    items = pl.DataFrame(rows)
    data = DataDir.open(root / "data")
    outcome = embed_items(items, data, EmbedConfig(backbone=TEST_BACKBONE, shard_size=64))
    assert outcome.missing.height == 0
    return outcome.vectors, data.embeddings(encoder_key(TEST_BACKBONE))


def _same_style_share(similar) -> float:
    frame = pl.from_arrow(similar).filter(pl.col(S.RANK) <= PER_STYLE - 1)
    style = lambda c: pl.col(c).str.split("-").list.get(1)  # noqa: E731
    return frame.select((style(S.ITEM_ID) == style(S.NEIGHBOR_ID)).mean()).item()


def test_embedding_stage_stores_each_image_s_colour_beside_its_vector(drawn):
    vectors, store = drawn
    part = pq.read_table(next(store.glob("part-*.parquet")))
    assert part.schema.field(S.COLOUR).type.list_size == COLOUR_DIM
    assert vectors.colours.shape == (vectors.vectors.shape[0], COLOUR_DIM)
    np.testing.assert_allclose(np.linalg.norm(vectors.colours, axis=1), 1.0, atol=1e-5)
    # the fused vectors' cosine is the weighted mix of the two cosines
    fused = similarity_vectors(vectors, TopKConfig(colour_weight=0.3).image_weights)
    np.testing.assert_allclose(
        fused @ fused.T,
        0.7 * vectors.vectors @ vectors.vectors.T + 0.3 * vectors.colours @ vectors.colours.T,
        atol=1e-5,
    )


def test_same_colour_and_kind_rank_above_same_kind_in_another_colour(drawn):
    vectors, _ = drawn
    similar = similar_topk(vectors)  # the product's default colour weight
    assert set(pl.from_arrow(similar)[S.GROUP].unique()) == {"tops", "bags"}
    # every item's nearest neighbours of its own kind are the other items of its colours, ahead
    # of every item of that kind in other colours (same pattern)
    share = _same_style_share(similar)
    assert share == 1.0, f"only {share:.0%} of the nearest same-kind neighbours share the colour"
    # the CNN alone does not separate these colours as well: the colour part is what does it
    assert _same_style_share(similar_topk(vectors, TopKConfig(colour_weight=0.0))) < share

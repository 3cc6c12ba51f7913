"""Every column name and Arrow schema of fashionrec, declared once.

Tables written by the product and read by downstream consumers use these names; code elsewhere
refers to the constants, never to string literals.
"""

from __future__ import annotations

import pyarrow as pa

# --- items (the filtered catalogue) ------------------------------------------------------------
ITEM_ID = "item_id"
RAW_CATEGORY = "raw_category"
SEMANTIC_CATEGORY = "semantic_category"
# The item's GROUP (tops, bottoms, ...: a name of the catalogue's group mapping). Published as
# "category" for the tables' readers; the catalogue's own category is RAW_CATEGORY.
GROUP = "category"
IMAGE = "image"
IMAGE_SHA256 = "image_sha256"
TITLE = "title"  # the product's name where the catalogue has one (shop.toml title_column; Polyvore's title)

# --- embeddings --------------------------------------------------------------------------------
BACKBONE = "backbone"
VECTOR = "vector"
COLOUR = "colour"  # the product's colour descriptor (fashionrec.colour)

# --- the stat cache of the embedding store: what an image file looked like when it was hashed ----
FILE_SIZE = "size"
FILE_MTIME_NS = "mtime_ns"  # local files: st_mtime_ns
FILE_ETAG = "etag"  # objects on s3:// (or any fsspec store that lists one): the ETag
# --- text vectors of titles (fashionrec.embedding.text), keyed by the title's hash -----------
TITLE_SHA256 = "title_sha256"
TFIDF = "tfidf"  # the title's TF-IDF (word + character n-grams) reduced by SVD, unit norm
COLOUR_WORDS = "colour_words"  # the title's colour words (found without labels), unit norm or zero

# --- published tables --------------------------------------------------------------------------
RANK = "rank"
NEIGHBOR_ID = "neighbor_id"
NEIGHBOR_CATEGORY = "neighbor_category"
SCORE = "score"
SAME_CATEGORY = "same_category"  # similar items: the neighbour shares the item's fine category

# --- rejects -----------------------------------------------------------------------------------
REASON = "reason"

# --- triplets ----------------------------------------------------------------------------------
ANCHOR = "anchor"
POSITIVE = "positive"
NEGATIVE = "negative"
SET_ID = "set_id"
OUTFIT_INDEX = "index"  # an item's 1-based position in its outfit (Polyvore's "<set_id>_<index>" tokens)

SIMILAR_TABLE = "similar_items"
COMPATIBLE_TABLE = "compatible_items"
REJECTS_TABLE = "rejects"
ITEMS_TABLE = "items"  # the run's items with a vector (RUN_ITEMS_SCHEMA)

ITEMS_SCHEMA = pa.schema(
    [
        pa.field(ITEM_ID, pa.string(), nullable=False),
        pa.field(RAW_CATEGORY, pa.string()),
        pa.field(SEMANTIC_CATEGORY, pa.string()),
        pa.field(GROUP, pa.string(), nullable=False),
        pa.field(IMAGE, pa.string(), nullable=False),
        pa.field(TITLE, pa.string()),
    ]
)

# the run's items with a vector, as published (tables/<run>/items/): what readers look items up in
RUN_ITEMS_SCHEMA = pa.schema(
    [
        pa.field(ITEM_ID, pa.string(), nullable=False),
        pa.field(GROUP, pa.string(), nullable=False),
        pa.field(RAW_CATEGORY, pa.string()),  # the catalogue's own (fine) category
        pa.field(IMAGE, pa.string(), nullable=False),
        pa.field(IMAGE_SHA256, pa.string(), nullable=False),
        pa.field(TITLE, pa.string()),
    ]
)


def embeddings_schema(dim: int, colour_dim: int) -> pa.Schema:
    """Schema of an embeddings part, per image: the backbone's L2-normalised float32 vector of
    ``dim`` and the product's colour descriptor of ``colour_dim`` (unit norm too)."""
    return pa.schema(
        [
            pa.field(ITEM_ID, pa.string(), nullable=False),
            pa.field(IMAGE_SHA256, pa.string(), nullable=False),
            pa.field(BACKBONE, pa.string(), nullable=False),
            pa.field(VECTOR, pa.list_(pa.float32(), dim), nullable=False),
            pa.field(COLOUR, pa.list_(pa.float32(), colour_dim), nullable=False),
        ]
    )


# one row per image file hashed by the last run (embedding.store.read_stat_cache): a file whose
# (path, size, mtime_ns) or (URL, size, ETag) is unchanged is not read again, its hash is reused
STAT_CACHE_SCHEMA = pa.schema(
    [
        pa.field(IMAGE, pa.string(), nullable=False),
        pa.field(FILE_SIZE, pa.int64(), nullable=False),
        pa.field(FILE_MTIME_NS, pa.int64()),
        pa.field(FILE_ETAG, pa.string()),
        pa.field(IMAGE_SHA256, pa.string(), nullable=False),
    ]
)
def text_embeddings_schema(tfidf_dim: int, colour_words_dim: int) -> pa.Schema:
    """Schema of a text-vectors part, per distinct title (keyed by its SHA-256): the two text
    vectors of one fitted text model (``fashionrec.embedding.text``)."""
    return pa.schema(
        [
            pa.field(TITLE_SHA256, pa.string(), nullable=False),
            pa.field(TFIDF, pa.list_(pa.float32(), tfidf_dim), nullable=False),
            pa.field(COLOUR_WORDS, pa.list_(pa.float32(), colour_words_dim), nullable=False),
        ]
    )


SIMILAR_SCHEMA = pa.schema(
    [
        pa.field(ITEM_ID, pa.string(), nullable=False),
        pa.field(GROUP, pa.string(), nullable=False),
        pa.field(RANK, pa.int32(), nullable=False),
        pa.field(NEIGHBOR_ID, pa.string(), nullable=False),
        pa.field(SCORE, pa.float32(), nullable=False),
        pa.field(SAME_CATEGORY, pa.bool_(), nullable=False),
    ]
)

COMPATIBLE_SCHEMA = pa.schema(
    [
        pa.field(ITEM_ID, pa.string(), nullable=False),
        pa.field(GROUP, pa.string(), nullable=False),
        pa.field(RANK, pa.int32(), nullable=False),
        pa.field(NEIGHBOR_ID, pa.string(), nullable=False),
        pa.field(NEIGHBOR_CATEGORY, pa.string(), nullable=False),
        pa.field(SCORE, pa.float32(), nullable=False),
    ]
)

# a run's private deep top-K lists (DataDir.topk_state, an Arrow IPC file read memory-mapped), one
# row per query item and candidate group: the item's row in the run's items table (ITEMS_TABLE,
# item id order), its group and the candidate group (dictionary-encoded names), its best K +
# TopKConfig.depth_margin candidates as rows of that table (best first, -1 padding) and their
# ranking values (SCORES: the model's raw value, before its monotone map to the published score;
# -inf padding), so the next refresh updates them with integer arithmetic, not string joins
ITEM_ROW = "item_row"
NEIGHBOR_ROWS = "neighbor_rows"
SCORES = "scores"
_GROUP_NAME = pa.dictionary(pa.int8(), pa.string())


def topk_state_schema(depth: int) -> pa.Schema:
    """Schema of a run's deep lists of ``depth`` candidates per list."""
    return pa.schema(
        [
            pa.field(ITEM_ROW, pa.int32(), nullable=False),
            pa.field(GROUP, _GROUP_NAME, nullable=False),
            pa.field(NEIGHBOR_CATEGORY, _GROUP_NAME, nullable=False),
            pa.field(NEIGHBOR_ROWS, pa.list_(pa.int32(), depth), nullable=False),
            pa.field(SCORES, pa.list_(pa.float32(), depth), nullable=False),
        ]
    )


REJECTS_SCHEMA = pa.schema(
    [
        pa.field(ITEM_ID, pa.string(), nullable=False),
        pa.field(IMAGE, pa.string()),
        pa.field(REASON, pa.string(), nullable=False),
    ]
)

TRIPLETS_SCHEMA = pa.schema(
    [
        pa.field(ANCHOR, pa.string(), nullable=False),
        pa.field(POSITIVE, pa.string(), nullable=False),
        pa.field(NEGATIVE, pa.string(), nullable=False),
        pa.field(SET_ID, pa.string(), nullable=False),  # the outfit of (anchor, positive)
    ]
)

TABLE_SCHEMAS: dict[str, pa.Schema] = {
    SIMILAR_TABLE: SIMILAR_SCHEMA,
    COMPATIBLE_TABLE: COMPATIBLE_SCHEMA,
}

# published columns with few distinct values (a group, a fine category): the only ones Parquet
# dictionary-encodes. An id column's dictionary, rebuilt for every 2,000-row group, made the
# compatible table's write 2.2x slower and its file 21% larger (benchmarks/parquet_write.py)
LOW_CARDINALITY = (GROUP, NEIGHBOR_CATEGORY, RAW_CATEGORY, REASON)
# the column readers look rows up by (the tables are sorted by it): the only one with statistics
LOOKUP_KEY = ITEM_ID

"""Text vectors of product names, fitted on the catalogue itself (scikit-learn; no download).

Two vectors per distinct title, both unit norm (zero for an item without one):

- ``tfidf``: TF-IDF over word 1-2 grams and char_wb 3-5 grams, reduced by a truncated SVD to
  ``TextConfig.tfidf_dim`` (what the name says, brand and style words included);
- ``colour_words``: the title's *colour words* only. Brand and style words outweigh colour words
  in a plain TF-IDF, so the model finds the colour words without labels: a ridge regression from
  the title's words to the photo's own colour descriptor (centred per group, so the group's
  usual colours do not count) gives each word a weight; the words with the largest weights are
  the ones that predict the product's colour.

The fitted model is kept in the data dir as plain arrays (``model.npz``, loaded with
``allow_pickle=False``), and its vectors in a store keyed by the title's SHA-256, like images:
a title already embedded by the current model is not embedded again; a changed title is. The
model is refitted only when more than ``TextConfig.refit_share`` of the catalogue's titles are
new to it (new words enter the vocabulary); a refit re-embeds every title (seconds).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from fashionrec.core import schemas as S
from fashionrec.core.config import TextConfig
from fashionrec.embedding.store import _fixed_rows, write_atomic
from fashionrec.storage.data_dir import DataDir
from fashionrec.vectors import ItemVectors

log = logging.getLogger(__name__)

_WORD = dict(analyzer="word", ngram_range=(1, 2), lowercase=True)
_CHAR = dict(analyzer="char_wb", ngram_range=(3, 5), lowercase=True)
_COLOUR = dict(analyzer="word", ngram_range=(1, 1), lowercase=True, binary=True)


def title_sha256(title: str) -> str:
    return hashlib.sha256(title.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TextModel:
    """A fitted text model as plain arrays (what model.npz holds)."""

    model_id: str
    word_vocab: np.ndarray  # str, in column order
    word_idf: np.ndarray
    char_vocab: np.ndarray
    char_idf: np.ndarray
    svd: np.ndarray  # (tfidf_dim, n_word + n_char) components
    colour_words: np.ndarray  # str: the colour words, in the colour_words vector's order
    config: str = ""  # the TextConfig it was fitted with (JSON): another config refits

    @property
    def tfidf_dim(self) -> int:
        return int(self.svd.shape[0])

    @property
    def colour_dim(self) -> int:
        return int(len(self.colour_words))

    def transform(self, titles: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The (tfidf, colour_words) vectors of ``titles``: float32, unit norm or zero rows."""
        from sklearn.feature_extraction.text import CountVectorizer

        x = _sparse_tfidf(titles, self.word_vocab, self.word_idf, self.char_vocab, self.char_idf)
        tfidf = _unit_rows(np.asarray(x @ self.svd.T, dtype=np.float32))
        words = CountVectorizer(vocabulary=list(self.colour_words), **_COLOUR).transform(titles)
        return tfidf, _unit_rows(words.astype(np.float32).toarray())

    def save(self, data: DataDir) -> None:
        path = data.text_model(self.model_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".model.{self.model_id}.tmp.npz")
        np.savez(tmp, word_vocab=self.word_vocab, word_idf=self.word_idf, char_vocab=self.char_vocab,
                 char_idf=self.char_idf, svd=self.svd, colour_words=self.colour_words,
                 config=np.array(self.config))
        tmp.replace(path)
        tmp_current = data.text_current.with_suffix(".tmp")
        tmp_current.write_text(self.model_id + "\n")
        tmp_current.replace(data.text_current)

    @classmethod
    def load(cls, data: DataDir, model_id: str) -> "TextModel":
        with np.load(data.text_model(model_id), allow_pickle=False) as z:
            return cls(model_id, z["word_vocab"], z["word_idf"], z["char_vocab"], z["char_idf"], z["svd"],
                       z["colour_words"], str(z["config"]) if "config" in z.files else "")


def prefetch_libraries() -> threading.Thread:
    """Import scikit-learn's text, SVD and ridge modules in a background thread (~2 s on a
    2-core machine): started before the images are embedded, the text stage does not wait for it."""

    def load() -> None:
        import sklearn.decomposition  # noqa: F401
        import sklearn.feature_extraction.text  # noqa: F401
        import sklearn.linear_model  # noqa: F401

    thread = threading.Thread(target=load, name="fashionrec-text-prefetch", daemon=True)
    thread.start()
    return thread


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(np.where(norm > 0, x / np.maximum(norm, 1e-12), 0.0), dtype=np.float32)


def _sparse_tfidf(titles, word_vocab, word_idf, char_vocab, char_idf):
    """Sublinear TF-IDF of word and character n-grams with a fixed vocabulary, each half
    L2-normalised, then the whole row (as TfidfVectorizer, without refitting anything)."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.preprocessing import normalize

    halves = []
    for vocab, idf, kw in ((word_vocab, word_idf, _WORD), (char_vocab, char_idf, _CHAR)):
        if len(vocab) == 0:
            continue
        counts = CountVectorizer(vocabulary=list(vocab), **kw).transform(titles).astype(np.float64)
        counts.data = 1.0 + np.log(counts.data)
        halves.append(normalize(counts @ sp.diags(idf)))
    return normalize(sp.hstack(halves).tocsr())


def fit_text_model(titles: list[str], colours: np.ndarray | None, groups: list[str],
                   config: TextConfig = TextConfig()) -> TextModel:
    """Fit the text model on the catalogue's titles (and, for the colour words, on the colour
    descriptors of the same items' photos, centred within each of ``groups``)."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import Ridge

    distinct = sorted(set(titles))
    min_df = min(config.min_df, max(1, len(distinct) // 2))
    vocabs = []
    for kw in (_WORD, _CHAR):
        try:
            vec = TfidfVectorizer(min_df=min_df, sublinear_tf=True, **kw).fit(distinct)
            vocabs.append((vec.get_feature_names_out().astype(str), vec.idf_.astype(np.float64)))
        except ValueError:  # no n-gram left (titles of one letter, all too rare)
            vocabs.append((np.array([], dtype=str), np.array([], dtype=np.float64)))
    (wv, wi), (cv, ci) = vocabs
    if len(wv) + len(cv) == 0:
        raise ValueError("no word or character n-gram occurs in two titles: nothing to fit a text model on")
    x = _sparse_tfidf(distinct, wv, wi, cv, ci)
    dim = min(config.tfidf_dim, x.shape[1] - 1, len(distinct) - 1)
    if dim >= 1:
        svd = TruncatedSVD(n_components=dim, random_state=config.seed, algorithm="randomized",
                           n_iter=config.svd_iters).fit(x)
        components = svd.components_.astype(np.float32)
    else:  # a tiny catalogue: the TF-IDF itself (no reduction)
        components = np.eye(x.shape[1], dtype=np.float32)

    colour_words = np.array([], dtype=str)
    if colours is not None and len(titles):
        y = np.asarray(colours, dtype=np.float64).copy()
        g = np.asarray(groups, dtype=object)
        for group in set(groups):
            rows = g == group
            y[rows] -= y[rows].mean(axis=0)
        try:
            words = CountVectorizer(min_df=min(config.colour_min_df, max(1, len(titles) // 2)), **_COLOUR)
            xw = words.fit_transform(titles).astype(np.float64)
            coef = Ridge(alpha=config.ridge_alpha).fit(xw, y).coef_  # (colour dims, words)
            # standardised: a word's coefficient times its spread over the titles, so a rare
            # word that the ridge fits to a few photos does not outrank a common colour word
            p = np.asarray(xw.mean(axis=0)).ravel()
            weight = np.linalg.norm(np.atleast_2d(coef), axis=0) * np.sqrt(p * (1.0 - p))
            names = words.get_feature_names_out().astype(str)
            order = np.lexsort((names, -weight))[: config.colour_words]
            colour_words = names[order]
        except ValueError:  # no word in enough titles
            pass
    if len(colour_words) == 0:
        colour_words = np.array(["\u0000"], dtype=str)  # a word no title has: zero vectors
    settings = _config_json(config)
    digest = hashlib.sha256(settings.encode())
    for part in (wv, cv, colour_words):
        digest.update("\n".join(part.tolist()).encode())
    digest.update(components.tobytes())
    model = TextModel(digest.hexdigest()[:16], wv, wi, cv, ci, components, colour_words, settings)
    log.info("text model %s fitted on %d distinct titles: %d word and %d character n-grams -> %d-d; "
             "colour words %s", model.model_id, len(distinct), len(wv), len(cv), model.tfidf_dim,
             ", ".join(colour_words[:20].tolist()))
    return model


def _config_json(config: TextConfig) -> str:
    return json.dumps(asdict(config), sort_keys=True)


def current_text_model(data: DataDir) -> TextModel | None:
    try:
        model_id = data.text_current.read_text().strip()
    except FileNotFoundError:
        return None
    try:
        return TextModel.load(data, model_id)
    except (FileNotFoundError, OSError, KeyError, ValueError) as exc:
        log.warning("text model %s cannot be read (%s): fitting a new one", model_id, exc)
        return None


def _stored(data: DataDir, model: TextModel, shas: list[str]) -> pa.Table:
    parts = sorted(str(p) for p in data.text_store(model.model_id).glob("part-*.parquet"))
    if not parts or not shas:
        return S.text_embeddings_schema(model.tfidf_dim, model.colour_dim).empty_table()
    return ds.dataset(parts, format="parquet").to_table(filter=ds.field(S.TITLE_SHA256).isin(shas))


@dataclass(frozen=True)
class TextOutcome:
    vectors: ItemVectors  # the input's, with tfidf and colour_words where the items have titles
    model_id: str | None
    refitted: bool
    embedded: int  # distinct titles embedded by this run
    reused: int  # distinct titles whose vectors were in the store
    seconds: float

    def to_dict(self) -> dict:
        return {"model_id": self.model_id, "refitted": self.refitted, "embedded": self.embedded,
                "reused": self.reused, "seconds": round(self.seconds, 3)}


def embed_titles(vectors: ItemVectors, data: DataDir, config: TextConfig = TextConfig()) -> TextOutcome:
    """Attach the text vectors of the items' titles to ``vectors``, from the store, embedding
    the titles it lacks (fitting a model first when there is none or too many titles are new).
    Items without any title: returned unchanged (the similar items' score stays image-only)."""
    start = time.perf_counter()
    if S.TITLE not in vectors.items.columns or vectors.items[S.TITLE].null_count() == vectors.items.height:
        return TextOutcome(vectors, None, False, 0, 0, 0.0)
    titles = vectors.items[S.TITLE].to_list()
    shas = [title_sha256(t) if t is not None else None for t in titles]
    distinct = sorted({s for s in shas if s is not None})
    model = current_text_model(data)
    if model is not None and model.config != _config_json(config):
        log.info("text model %s was fitted with other settings (%s): refitting", model.model_id, model.config)
        model = None
    refit = model is None
    stored = None
    if model is not None:
        stored = _stored(data, model, distinct)
        new_share = 1.0 - stored.num_rows / len(distinct)
        if new_share > config.refit_share:
            log.info("%.0f%% of the titles are new to text model %s (refit above %.0f%%): refitting",
                     100 * new_share, model.model_id, 100 * config.refit_share)
            refit = True
    if refit:
        with_title = [i for i, t in enumerate(titles) if t is not None]
        colours = vectors.colours[with_title] if vectors.colours is not None else None
        # centre the colours per fine category (the group where an item has none): what a
        # category's items share (the usual colour of shorts, of handbags) is not a colour word's doing
        groups = [f"{g}\x00{c}" if c else g for g, c in zip(
            vectors.items[S.GROUP].to_list(),
            vectors.items[S.RAW_CATEGORY].to_list() if S.RAW_CATEGORY in vectors.items.columns
            else [None] * vectors.items.height)]
        model = fit_text_model([titles[i] for i in with_title], colours, [groups[i] for i in with_title], config)
        model.save(data)
        stored = _stored(data, model, distinct)
    assert model is not None and stored is not None
    have = set(stored.column(S.TITLE_SHA256).to_pylist())
    todo = {s: t for s, t in zip(shas, titles) if s is not None and s not in have}
    if todo:
        todo_shas = sorted(todo)
        tfidf, words = model.transform([todo[s] for s in todo_shas])
        part = pa.table(
            {S.TITLE_SHA256: todo_shas,
             S.TFIDF: pa.FixedSizeListArray.from_arrays(pa.array(tfidf.ravel(), pa.float32()), model.tfidf_dim),
             S.COLOUR_WORDS: pa.FixedSizeListArray.from_arrays(pa.array(words.ravel(), pa.float32()),
                                                               model.colour_dim)},
            schema=S.text_embeddings_schema(model.tfidf_dim, model.colour_dim),
        )
        part_id = hashlib.sha256("\n".join(todo_shas).encode()).hexdigest()[:16]
        write_atomic(part, data.text_part(model.model_id, part_id))
        stored = pa.concat_tables([stored.cast(part.schema), part])
    row_of = {s: i for i, s in enumerate(stored.column(S.TITLE_SHA256).to_pylist())}
    tf_all = _fixed_rows(stored.column(S.TFIDF), np.arange(stored.num_rows))
    cw_all = _fixed_rows(stored.column(S.COLOUR_WORDS), np.arange(stored.num_rows))
    tfidf = np.zeros((len(titles), model.tfidf_dim), np.float32)
    words = np.zeros((len(titles), model.colour_dim), np.float32)
    for i, s in enumerate(shas):
        if s is not None:
            tfidf[i], words[i] = tf_all[row_of[s]], cw_all[row_of[s]]
    seconds = time.perf_counter() - start
    log.info("text vectors: %d distinct titles, %d embedded now, %d from the store (model %s%s), %.1fs",
             len(distinct), len(todo), len(distinct) - len(todo), model.model_id, ", refitted" if refit else "",
             seconds)
    out = vectors.with_text(tfidf, words)
    return TextOutcome(out, model.model_id, refit, len(todo), len(distinct) - len(todo), seconds)


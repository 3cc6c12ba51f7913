"""Files on object storage (``s3://bucket/key``, or any fsspec URL) beside local files.

The library works on local paths; these helpers are the one place that talks to fsspec:
whether a path is a URL, the filesystem of a URL (with the S3 endpoint a shop configured), and
reading one object or listing one folder. ``file://`` URLs count as local.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

from fashionrec.core.config import RemoteConfig
from fashionrec.core.errors import PublishError

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_remote(path: str | Path) -> bool:
    """True for a URL such as ``s3://bucket/prefix`` (``file://`` counts as local)."""
    text = str(path)
    return bool(_SCHEME.match(text)) and not text.startswith("file://")


def storage_options(url: str) -> dict[str, Any]:
    """fsspec options for ``url``: the S3 endpoint from ``FASHIONREC_S3_ENDPOINT_URL`` when set
    (``AWS_ENDPOINT_URL`` is read by botocore itself)."""
    if not url.startswith(("s3://", "s3a://")):
        return {}
    # no cached listings: another machine's refresh may have published since the last look
    options: dict[str, Any] = {"use_listings_cache": False}
    endpoint = os.environ.get(RemoteConfig.endpoint_env)
    if endpoint:
        options["client_kwargs"] = {"endpoint_url": endpoint}
    return options


def filesystem(url: str | Path):
    """``(fsspec filesystem, path inside it)`` for a URL, or for a local path (LocalFileSystem)."""
    import fsspec

    url = str(url)
    try:
        fs, path = fsspec.core.url_to_fs(url, **storage_options(url))
    except ImportError as exc:
        raise PublishError(f"cannot open {url}: {exc}. Install the fsspec backend (s3fs for s3://)") from exc
    return fs, path.rstrip("/") or path


def open_binary(url: str) -> io.BufferedIOBase:
    fs, path = filesystem(url)
    return fs.open(path, "rb")


def read_bytes(url: str) -> bytes:
    fs, path = filesystem(url)
    return fs.cat_file(path)


def list_names(folder_url: str) -> set[str]:
    """Names of the files directly under a remote folder (one listing)."""
    fs, path = filesystem(folder_url)
    try:
        return {p.rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)}
    except FileNotFoundError:
        return set()


def cache_root() -> Path:
    """This machine's cache folder for fashionrec: ``FASHIONREC_CACHE``, else
    ``$XDG_CACHE_HOME/fashionrec``, else ``~/.cache/fashionrec``. It holds the working copies of
    remote data dirs and the networks exported for ONNX Runtime; deleting it costs only time."""
    env = os.environ.get(RemoteConfig.cache_env)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "fashionrec"

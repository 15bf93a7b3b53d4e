"""Where results live: a local folder, or a URI that one of pyarrow's filesystems reaches, resolved once.

``--results`` takes a folder (``results``, ``/data/bench``) or a URI: ``file:///data/bench``,
``s3://bucket/prefix`` (AWS, or MinIO / Ceph / any S3-compatible store: point ``AWS_ENDPOINT_URL_S3`` or
``AWS_ENDPOINT_URL`` at it), ``gs://bucket/prefix``, ``abfs://container@account.dfs.core.windows.net/prefix``,
``hdfs://namenode/prefix``. Credentials come from each library's standard environment and config files
(``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_PROFILE``, ``GOOGLE_APPLICATION_CREDENTIALS``, ...).

A URI that carries credentials (``s3://KEY:SECRET@bucket``, ``?secret_key=...``, a SAS ``sig=``) is refused,
not redacted: the runs table records the command line, and a refused URI never reaches it, nor a log, nor a
report. The refusal message shows the URI with the secret parts replaced by ``***``. Example::

    >>> loc = Location.resolve("results")          # a local folder: writes are temp file + fsync + rename
    >>> loc.local, loc.join("runs/run_id=x/run.parquet")
    (PosixPath('results'), PosixPath('results/runs/run_id=x/run.parquet'))
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.fs as pafs

from bench.errors import UserError
from bench.files import first_line

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# Query parameters that carry a secret (pyarrow refuses most of them anyway, but a message must not echo them).
_SECRET_QUERY = re.compile(r"key|secret|token|passw|sig|credential|auth", re.IGNORECASE)
# A value with user info in it (endpoint_override=user:SECRET@host) carries a secret whatever its key is called.
_USERINFO = re.compile(r"[^/@?&=]+:[^/@?&=]*@")


def _secret(key: str, value: str) -> bool:
    return bool(_SECRET_QUERY.search(key) or _USERINFO.search(value))
# Stores where an object appears whole or not at all when its upload completes: no temp object needed.
OBJECT_STORES = frozenset({"s3", "gcs", "abfs"})
KNOWN = "a folder, file://, s3:// (and S3-compatible stores), gs://, abfs:// or hdfs://"


def is_uri(text: str | Path) -> bool:
    """``scheme://...``; anything else (``results``, ``/data/x``, ``C:/x``) is a local path."""
    return isinstance(text, str) and bool(_SCHEME.match(text))


def redact(uri: str) -> str:
    """``uri`` with its user info and any secret-looking query values replaced by ``***``."""
    parts = urlsplit(uri)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = [(k, "***" if _secret(k, v) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="*/:")))


def check_no_credentials(uri: str) -> None:
    """Refuse a URI that carries credentials: they would end up in the runs table's command line."""
    parts = urlsplit(uri)
    userinfo = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else ""
    # s3://KEY@bucket and s3://KEY:SECRET@bucket are credentials; abfs://container@account is not.
    secret_user = ":" in userinfo or (userinfo and parts.scheme.lower() == "s3")
    secret_query = [k for k, v in parse_qsl(parts.query, keep_blank_values=True) if _secret(k, v)]
    if secret_user or secret_query:
        raise UserError(
            f"results URI {redact(uri)}: credentials in the URI are refused (the runs table records the command "
            "line); give them through the environment or config files instead, e.g. AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or GOOGLE_APPLICATION_CREDENTIALS"
        )


GCS_RETRY_LIMIT_S = 10  # without it, a gs:// location with no credentials retries silently for many minutes


def with_store_defaults(uri: str) -> str:
    """S3: buffer small objects and send them in one PutObject on close, not a multipart upload. GCS: a bound on
    retries, so that missing credentials or an unreachable endpoint fail in seconds (one line), not hang."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    added = {"s3": "allow_delayed_open=true", "gs": f"retry_limit_seconds={GCS_RETRY_LIMIT_S}",
             "gcs": f"retry_limit_seconds={GCS_RETRY_LIMIT_S}"}.get(scheme)
    if added is None or added.partition("=")[0] in parts.query:
        return uri
    return urlunsplit(parts._replace(query="&".join(filter(None, [parts.query, added]))))


@dataclass(frozen=True)
class Location:
    """A results root: the filesystem, the root's path inside it, and how messages name it."""

    fs: pafs.FileSystem = field(repr=False, compare=False)
    root: str  # path inside ``fs``, without a trailing slash ("bucket/prefix", "/abs/folder")
    uri: str  # what the user gave: a local path or a URI (never with credentials)
    local: Path | None = None  # set for the local filesystem: the folder, as the user gave it

    @classmethod
    def resolve(cls, results: str | Path | Location) -> Location:
        """Parse ``results`` once; a bad URI or an unreachable store is a one-line ``UserError``."""
        if isinstance(results, Location):
            return results
        if not is_uri(results):
            folder = Path(results)
            return cls(pafs.LocalFileSystem(), str(folder.absolute()), str(results), folder)
        uri = str(results)
        check_no_credentials(uri)
        try:
            fs, root = pafs.FileSystem.from_uri(with_store_defaults(uri))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            hint = f"; expected {KNOWN}" if "Unrecognized filesystem type" in str(exc) else ""
            raise UserError(f"results location {redact(uri)}: {first_line(exc)}{hint}") from None
        except OSError as exc:  # e.g. an S3 region lookup that cannot reach its endpoint
            raise UserError(f"results location {redact(uri)}: {first_line(exc)}") from None
        root = root.rstrip("/")
        local = Path(root) if isinstance(fs, pafs.LocalFileSystem) else None
        if not root:
            raise UserError(f"results location {uri}: expected a bucket or folder after the scheme")
        return cls(fs, root, uri, local)

    @property
    def object_store(self) -> bool:
        return self.fs.type_name in OBJECT_STORES

    def path(self, relative: str) -> str:
        """``relative`` (``cases/date=.../x.parquet``) as a path inside ``fs``."""
        return f"{self.root}/{relative}"

    def relative(self, path: str) -> str:
        """A path inside ``fs`` (as a listing gives it) relative to the root: the inverse of :meth:`path`."""
        return path[len(self.path("")):].lstrip("/")

    def join(self, relative: str) -> Path | str:
        """The address a user would give for ``relative``: a Path under a local folder, else a URI."""
        if self.local is not None and not is_uri(self.uri):
            return self.local / relative
        parts = urlsplit(self.uri)
        return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{relative}"))

    def is_dir(self) -> bool:
        """The root exists: a folder, or a prefix with at least one object under it."""
        try:  # object stores: pyarrow reports a prefix with objects under it as a directory
            return self.fs.get_file_info(self.root).type == pafs.FileType.Directory
        except OSError as exc:
            raise UserError(f"cannot read results at {self}: {first_line(exc)}") from None

    def __str__(self) -> str:
        return str(self.local) if self.local is not None and not is_uri(self.uri) else self.uri

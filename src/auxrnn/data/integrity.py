"""Checksums, resumable downloads with source fallback, and gzip extraction (no torch here).

Every file lands in the cache the same way: it is written to a temporary name next to its final place
and renamed only after its checksum passes, so a crash or a bad source never leaves a half-written file
under the final name. A download in progress lives in ``<name>.part`` and is resumed with an HTTP
``Range`` request; a ``.part`` whose finished content fails its checksum is deleted.

Two writers never fetch into one place at once: a fetch holds `fetch_lock`, an exclusive lock on
``<data root>/.<Folder>.lock`` (decision D11), so DDP ranks, `reproduce --parallel` children and two users
sharing a data root take turns, and whoever comes second finds the files in place.

Also the pieces every dataset's fetching shares: `RemoteFile` (a URL and its published checksums),
`download_remote`, `matching_remote`, `transient` downloads, `Staging` folders, `find_in`, `folder_from_env`.
"""
from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import requests

log = logging.getLogger("auxrnn.data")

CHUNK = 1 << 20  # 1 MiB
RETRY_BACKOFF = 0.5  # seconds; the n-th retry of a download waits n * RETRY_BACKOFF


class _PermanentHTTPError(Exception):
    """A client error (404, 403, ...) that retrying cannot fix."""


class DownloadError(RuntimeError):
    """Every source of a file failed; the message lists each source and why."""


# ----------------------------------------------------------------------------------------- checksums
def file_hash(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = CHUNK) -> str:
    """Hex digest of a file, read in `chunk`-byte pieces."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def check_integrity(path: str | os.PathLike, sha256: str | None = None, md5: str | None = None) -> bool:
    """True when `path` exists and matches every checksum given (a missing file is simply False)."""
    p = Path(path)
    if not p.is_file():
        return False
    if sha256 is not None and file_hash(p, "sha256") != sha256.lower():
        return False
    if md5 is not None and file_hash(p, "md5") != md5.lower():
        return False
    return True


def checksum_problem(path: Path, sha256: str | None = None, md5: str | None = None) -> str | None:
    """What is wrong with the file at `path` against its checksums ("sha256 mismatch (expected ..., got ...)"), or None."""
    for algo, want in (("sha256", sha256), ("md5", md5)):
        if want is None:
            continue
        got = file_hash(path, algo)
        if got != want.lower():
            return f"{algo} mismatch (expected {want.lower()}, got {got})"
    return None


# ------------------------------------------------------------------------------------ atomic writes
_UMASK = os.umask(0)
os.umask(_UMASK)

@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `final`; it is renamed onto `final` only if the block succeeds.

    On any exception the temporary file is removed and `final` is left untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix, dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def fetch_lock(root: str | os.PathLike, name: str) -> Iterator[Path]:
    """Hold an exclusive lock on ``<root>/.<name>.lock`` for the block; waits while another holder has it.

    flock(2) locks belong to the open file, so two threads of one process exclude each other as two
    processes do; the OS releases the lock when its holder dies, so a killed fetch never blocks the next.
    The lock file stays (removing it would race with a waiter that already opened it).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / f".{name}.lock"
    with open(path, "a+b") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process fetching into %s (%s)", root, path.name)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield path
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# ------------------------------------------------------------------------------------------ gzip
GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: str | os.PathLike) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def extract_verified(src: str | os.PathLike, dest: str | os.PathLike, sha256: str | None = None) -> Path:
    """Copy or gunzip `src` (detected by its magic bytes) to `dest`, keeping it only if `sha256` matches.

    The sha256 is of the decompressed content: the .gz bytes differ between mirrors (decision D2).

    Raises ValueError naming `src` for a truncated/corrupt gzip stream or a checksum mismatch; nothing is
    left at `dest` (or beside it) in that case.
    """
    src, dest = Path(src), Path(dest)
    gz = is_gzip(src)
    with atomic_path(dest) as tmp:
        h = hashlib.sha256()
        try:
            with (gzip.open(src, "rb") if gz else open(src, "rb")) as fin, open(tmp, "wb") as fout:
                for block in iter(lambda: fin.read(CHUNK), b""):
                    h.update(block)
                    fout.write(block)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{src}: corrupt or truncated gzip archive ({exc})") from exc
        if sha256 is not None and h.hexdigest() != sha256.lower():
            what = "decompressed content" if gz else "content"
            raise ValueError(
                f"{src}: {what} fails its sha256 check (expected {sha256.lower()}, got {h.hexdigest()})"
            )
    return dest


def safe_extract_tar(archive: str | os.PathLike, dest: str | os.PathLike, members: Sequence[str] | None = None) -> None:
    """Extract regular files and folders of a tar archive, refusing absolute paths, `..` and links."""
    dest = Path(dest).resolve()
    try:
        with tarfile.open(archive) as tf:
            for m in tf.getmembers():
                if members is not None and m.name not in members:
                    continue
                target = (dest / m.name).resolve()
                if not str(target).startswith(str(dest) + os.sep) and target != dest:
                    raise ValueError(f"{archive}: refusing member outside the target folder: {m.name!r}")
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                elif m.isfile():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    src = tf.extractfile(m)
                    assert src is not None
                    with atomic_path(target) as tmp, open(tmp, "wb") as out:
                        for block in iter(lambda: src.read(CHUNK), b""):
                            out.write(block)
                else:
                    raise ValueError(f"{archive}: refusing link or special member {m.name!r}")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, ValueError):
            raise
        raise ValueError(f"{archive}: corrupt or truncated tar archive ({exc})") from exc


# ------------------------------------------------------------------------------------- downloads
def _progress(total: int | None, initial: int, desc: str, enabled: bool | None):
    from tqdm.auto import tqdm

    disable = (not sys.stderr.isatty()) if enabled is None else (not enabled)
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=desc, disable=disable, leave=False)


def download_url(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    md5: str | None = None,
    *,
    retries: int = 3,
    timeout: float = 30.0,
    progress: bool | None = None,
    session: requests.Session | None = None,
    backoff: float | None = None,
) -> Path:
    """Download `url` to `dest`, resuming `dest.part` with HTTP Range after a dropped connection.

    The file is renamed onto `dest` only after the checksum(s) pass; a finished download that fails them is
    deleted and ValueError is raised. Network failures are retried `retries` times, resuming each time;
    the last one is re-raised as RuntimeError naming the URL.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    sess = session or requests.Session()
    last: Exception | None = None
    for attempt in range(retries + 1):
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with sess.get(url, headers=headers, stream=True, timeout=timeout) as r:
                if r.status_code == 416 and have:  # nothing left to fetch: the .part is complete
                    break
                if r.status_code == 206 and have:
                    mode, start = "ab", have
                elif r.status_code == 200:
                    mode, start = "wb", 0  # server ignored Range (or fresh start): rewrite
                elif 400 <= r.status_code < 500 and r.status_code not in (408, 429):
                    raise _PermanentHTTPError(f"{url}: HTTP {r.status_code} {r.reason}")
                else:
                    raise RuntimeError(f"HTTP {r.status_code} {r.reason}")
                length = r.headers.get("Content-Length")
                total = start + int(length) if length is not None else None
                with open(part, mode) as f, _progress(total, start, dest.name, progress) as bar:
                    for block in r.iter_content(chunk_size=64 * 1024):
                        f.write(block)
                        bar.update(len(block))
                if total is not None and part.stat().st_size < total:
                    raise RuntimeError(f"connection closed after {part.stat().st_size} of {total} bytes")
            break
        except _PermanentHTTPError as exc:
            raise RuntimeError(str(exc)) from None
        except (requests.RequestException, RuntimeError, OSError) as exc:
            last = exc
            log.warning("download of %s interrupted (attempt %d/%d): %s", url, attempt + 1, retries + 1, exc)
            if attempt < retries:
                time.sleep((RETRY_BACKOFF if backoff is None else backoff) * (attempt + 1))
    else:
        raise RuntimeError(f"{url}: download failed after {retries + 1} attempts ({last})")
    problem = checksum_problem(part, sha256, md5)
    if problem:
        part.unlink()
        raise ValueError(f"{url}: downloaded file fails its checksum: {problem}")
    os.replace(part, dest)
    return dest


@dataclass
class Attempt:
    source: str
    error: str


def try_sources(
    what: str,
    sources: Sequence[tuple[str, Callable[[], None]]],
    manual_hint: str,
) -> str:
    """Call each `(description, fetch)` in turn until one returns without raising.

    Each failure is logged as a warning. Returns the description of the source that worked; raises
    DownloadError listing every source tried and why it failed, followed by `manual_hint`.
    """
    attempts: list[Attempt] = []
    for desc, fetch in sources:
        try:
            fetch()
        except Exception as exc:  # noqa: BLE001 - any failure means "try the next source"
            log.warning("%s: source %s failed: %s", what, desc, exc)
            attempts.append(Attempt(desc, f"{type(exc).__name__}: {exc}"))
            continue
        log.info("%s: fetched from %s", what, desc)
        return desc
    lines = "\n".join(f"  - {a.source}: {a.error}" for a in attempts) or "  (no sources configured)"
    raise DownloadError(f"could not obtain {what}; every source failed:\n{lines}\n{manual_hint}")


# ------------------------------------------------------------------------------- fetching helpers
def remove_leftovers(folder: Path, names: Sequence[str]) -> list[Path]:
    """Remove the temporary files (`atomic_path`'s ``.NAME.*.tmp``) that a killed fetch left beside `names`.

    Call it only while holding the folder's `fetch_lock`: then no live fetch is writing one of them.
    Returns the paths removed.
    """
    gone = []
    for name in names:
        for p in Path(folder).glob(f".{name}.*.tmp"):
            if p.is_file():
                p.unlink()
                gone.append(p)
    return gone


def remove_files(*paths: Path) -> None:
    """Delete each of `paths` that exists."""
    for p in paths:
        if p.exists():
            p.unlink()


@contextlib.contextmanager
def transient(path: Path) -> Iterator[Path]:
    """A downloaded file that is removed once used. On a failure its `.part` goes too, so a failed source
    leaves nothing behind; Ctrl-C (not an Exception) keeps the `.part` so the next run resumes."""
    try:
        yield path
    except Exception:
        remove_files(path, path.with_name(path.name + ".part"))
        raise
    remove_files(path)


def folder_from_env(given: Path | None, env: str) -> Path | None:
    """The local folder a user named: the argument, else the environment variable `env`."""
    if given is None and os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    return given


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable archive and the checksums published for it (None: none published).

    `origin` names where the checksum was found (shown in docs/data.md, not used by the code).
    """

    url: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    origin: str = ""

    @property
    def verified(self) -> bool:
        return self.sha256 is not None or self.md5 is not None


def _is_google_drive(url: str) -> bool:
    return "drive.google.com" in url or "drive.usercontent.google.com" in url


def download_remote(remote: RemoteFile, dest: Path) -> Path:
    """`download_url` with the remote's checksums; a Google Drive mismatch says what Drive likely served."""
    try:
        download_url(remote.url, dest, sha256=remote.sha256, md5=remote.md5)
    except ValueError as exc:
        if _is_google_drive(remote.url):
            raise ValueError(
                f"{exc} (Google Drive may have served its confirmation or quota page instead of the file)"
            ) from exc
        raise
    if remote.size is not None and dest.stat().st_size != remote.size:
        got = dest.stat().st_size
        dest.unlink()
        raise ValueError(f"{remote.url}: downloaded file has {got} bytes, expected {remote.size}")
    return dest


def matching_remote(path: Path, remotes: Sequence[RemoteFile]) -> RemoteFile | None:
    """The first remote whose published checksum(s) `path` matches (remotes without one never match)."""
    for r in remotes:
        if r.verified and check_integrity(path, sha256=r.sha256, md5=r.md5):
            return r
    return None


class Staging:
    """A temporary folder beside the cache for extracting an archive; removed whatever happens."""

    def __init__(self, parent: Path, name: str):
        parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent))

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def find_in(folder: Path, name: str, want_dir: bool = False) -> Path | None:
    """The shallowest `name` (a file, or a folder with `want_dir`) under `folder`."""
    hits = [p for p in folder.rglob(name) if (p.is_dir() if want_dir else p.is_file())]
    return min(hits, key=lambda p: len(p.parts)) if hits else None

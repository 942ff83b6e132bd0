"""Sealing of stored values: zstd-compress, then AES-256-GCM with the record key as associated data.

Value layout: ``version (1 byte) | nonce (12 bytes) | ciphertext + 16-byte tag``. Version 1 holds
zstd-compressed plaintext, version 2 the plaintext as is (for values that do not compress, such
as float vectors). The associated data binds the version, the column family and the record key,
so a value copied under another key, or into another column family, fails authentication.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from pathlib import Path

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import DataCorrupted, FailedPrecondition, InvalidArgument

log = logging.getLogger(__name__)

V_ZSTD = 1
V_RAW = 2
NONCE_BYTES = 12
KEY_BYTES = 32
ENV_KEY = "ENGRAM_ENCRYPTION_KEY"
ENV_KEY_FILE = "ENGRAM_ENCRYPTION_KEY_FILE"
_ZSTD_LEVEL = 3
_MIN_COMPRESS = 64  # below this zstd's frame header outweighs any gain


class MalformedKey(InvalidArgument):
    """The configured encryption key is not 32 bytes / 64 hex characters."""


class MissingKey(FailedPrecondition):
    """No key is configured and the key file does not exist (and may not be created here)."""


def parse_key_text(text: str, source: str) -> bytes:
    """64 hex characters → 32 bytes. `source` names where it came from (never the value)."""
    s = text.strip()
    if len(s) != 2 * KEY_BYTES:
        raise MalformedKey(
            f"encryption key from {source} must be {2 * KEY_BYTES} hex characters (32 bytes), got {len(s)} characters",
            field="encryption_key",
        )
    try:
        return bytes.fromhex(s)
    except ValueError:
        raise MalformedKey(f"encryption key from {source} is not hexadecimal", field="encryption_key") from None


def default_key_file() -> Path:
    """Outside the data dir on purpose: a copied data dir alone must be unreadable."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "engram" / "encryption.key"


def resolve_key(explicit: bytes | None, key_file: Path | None, *, create: bool = True) -> bytes:
    """Config value, else $ENGRAM_ENCRYPTION_KEY, else the key file (created when missing, unless
    `create` is false: tools that work on an existing directory must not invent a key)."""
    return resolve_or_create_key(explicit, key_file, create=create)[0]


def resolve_or_create_key(explicit: bytes | None, key_file: Path | None, *, create: bool) -> tuple[bytes, Path | None]:
    """As resolve_key; also the key file it created (None when it created none), so that a caller
    whose start then fails removes it rather than leaving a key that opens nothing."""
    if explicit is not None:
        if len(explicit) != KEY_BYTES:
            raise MalformedKey(f"encryption key must be {KEY_BYTES} bytes, got {len(explicit)}", field="encryption_key")
        return bytes(explicit), None
    env = os.environ.get(ENV_KEY)
    if env:
        return parse_key_text(env, ENV_KEY), None
    path = key_file or (Path(os.environ[ENV_KEY_FILE]) if os.environ.get(ENV_KEY_FILE) else default_key_file())
    path = Path(path).expanduser()
    if path.exists():
        return parse_key_text(path.read_text(encoding="ascii", errors="replace"), f"key file {path}"), None
    if not create:
        raise MissingKey(
            f"no encryption key: the key file {path} does not exist and {ENV_KEY} is not set "
            "(configure the key the data directory was created with; a new key is only generated for a new "
            "data directory)"
        )
    return _create_key_file(path), path


def load_or_create_key_file(path: Path) -> tuple[bytes, bool]:
    """The key in `path`, generating it (mode 0600) when the file does not exist; (key, created)."""
    path = Path(path).expanduser()
    if path.exists():
        return parse_key_text(path.read_text(encoding="ascii", errors="replace"), f"key file {path}"), False
    return _create_key_file(path), True


def _create_key_file(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = os.urandom(KEY_BYTES)
    # O_EXCL + 0600 at creation: the key is never readable by others, not even briefly, and two
    # processes starting at once cannot both create (and disagree on) the key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return parse_key_text(path.read_text(encoding="ascii", errors="replace"), f"key file {path}")
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.hex() + "\n")
        f.flush()
        os.fsync(f.fileno())
    log.warning(
        "GENERATED A NEW ENCRYPTION KEY at %s (mode 0600). Every stored memory is encrypted with it: "
        "BACK IT UP SEPARATELY FROM THE DATA. Losing this file loses all data; nobody can recover it.",
        path,
    )
    return key


def key_id(key: bytes) -> str:
    """Identifies a key without revealing anything about it (HMAC, not a hash of the key)."""
    return hmac.new(key, b"engram-key-id", hashlib.sha256).hexdigest()[:16]


class Cipher:
    """Thread-safe sealing and opening of values bound to (column family, key)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise MalformedKey(f"encryption key must be {KEY_BYTES} bytes", field="encryption_key")
        self._aead = AESGCM(key)
        self.key_id = key_id(key)
        self._local = threading.local()  # zstd contexts are not thread-safe

    def _zc(self) -> zstandard.ZstdCompressor:
        c = getattr(self._local, "c", None)
        if c is None:
            c = self._local.c = zstandard.ZstdCompressor(level=_ZSTD_LEVEL)
        return c

    def _zd(self) -> zstandard.ZstdDecompressor:
        d = getattr(self._local, "d", None)
        if d is None:
            d = self._local.d = zstandard.ZstdDecompressor()
        return d

    @staticmethod
    def _aad(version: int, cf: str, key: bytes) -> bytes:
        return bytes([version]) + cf.encode() + b"\x00" + key

    def seal(self, cf: str, key: bytes, plaintext: bytes, compress: bool = True) -> bytes:
        version = V_RAW
        body = plaintext
        if compress and len(plaintext) >= _MIN_COMPRESS:
            packed = self._zc().compress(plaintext)
            if len(packed) < len(plaintext):
                version, body = V_ZSTD, packed
        nonce = os.urandom(NONCE_BYTES)
        return bytes([version]) + nonce + self._aead.encrypt(nonce, body, self._aad(version, cf, key))

    def _decrypt(self, cf: str, key: bytes, blob: bytes) -> tuple[int, bytes]:
        """(version, body): authenticated and decrypted, not yet decompressed."""
        if len(blob) < 1 + NONCE_BYTES + 16 or blob[0] not in (V_ZSTD, V_RAW):
            raise DataCorrupted(f"stored value {describe_key(cf, key)} is malformed")
        version = blob[0]
        view = memoryview(blob)  # slices of a view: no copy of a multi-megabyte snapshot chunk
        nonce = view[1 : 1 + NONCE_BYTES]
        try:
            return version, self._aead.decrypt(nonce, view[1 + NONCE_BYTES :], self._aad(version, cf, key))
        except InvalidTag:
            raise DataCorrupted(
                f"stored value {describe_key(cf, key)} failed authentication (corrupted, moved, or another key)"
            ) from None

    def open(self, cf: str, key: bytes, blob: bytes) -> bytes:
        version, body = self._decrypt(cf, key, blob)
        if version == V_ZSTD:
            try:
                return self._zd().decompress(body)
            except zstandard.ZstdError:
                raise DataCorrupted(f"stored value {describe_key(cf, key)} does not decompress") from None
        return body

    def opens(self, cf: str, key: bytes, blob: bytes) -> bool:
        """Whether this key authenticates the value (no decompression)."""
        try:
            self._decrypt(cf, key, blob)
        except DataCorrupted:
            return False
        return True

    def rekey(self, cf: str, key: bytes, new_key: bytes, blob: bytes) -> bytes:
        """The same value sealed for another record key (the associated data binds the key), with
        a fresh nonce; the body is carried over as it is (a key-layout migration)."""
        version, body = self._decrypt(cf, key, blob)
        nonce = os.urandom(NONCE_BYTES)
        return bytes([version]) + nonce + self._aead.encrypt(nonce, body, self._aad(version, cf, new_key))

    def reseal(self, cf: str, key: bytes, blob: bytes, target: Cipher) -> bytes:
        """The same value sealed under `target`'s key, with a fresh nonce. The body is carried
        over as it is (still compressed when it was), so nothing is compressed twice."""
        version, body = self._decrypt(cf, key, blob)
        nonce = os.urandom(NONCE_BYTES)
        return bytes([version]) + nonce + target._aead.encrypt(nonce, body, self._aad(version, cf, key))


def describe_key(cf: str, key: bytes) -> str:
    """A record key for messages: ids only (keys never hold content), NULs shown as '/'."""
    shown = key.replace(b"\x00", b"/").decode("utf-8", "replace")
    return f"{cf}:{shown}"

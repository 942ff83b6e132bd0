"""API key records (hashes only, never a key): the auth layer's store."""

from __future__ import annotations

from . import codec
from .models import ApiKeyRecord
from .storage import CF_API_KEYS, Storage


class ApiKeyStore:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def put(self, record: ApiKeyRecord) -> None:
        b = self._storage.batch()
        b.put(CF_API_KEYS, record.id.encode(), codec.api_key_to_bytes(record))
        self._storage.write(b)

    def get(self, key_id: str) -> ApiKeyRecord | None:
        if not key_id:
            return None
        raw = self._storage.get(CF_API_KEYS, key_id.encode())
        return codec.api_key_from_bytes(raw) if raw is not None else None

    def list(self) -> list[ApiKeyRecord]:
        return [codec.api_key_from_bytes(v) for _, v in self._storage.scan(CF_API_KEYS, b"")]

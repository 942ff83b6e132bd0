"""EmbeddingService: text → vectors with the server's model."""

from __future__ import annotations

import time

import numpy as np

from .. import pb
from ..errors import invalid
from . import validation as v
from .base import CallContext, ServiceBase


class EmbeddingService(ServiceBase):
    async def embed(self, req: pb.EmbedRequest, ctx: CallContext) -> pb.EmbedResponse:
        v.batch(req.texts, self.config, "texts")
        for i, t in enumerate(req.texts):
            if not t or not t.strip():
                raise invalid(f"texts[{i}]", "must not be blank")
            n = len(t.encode("utf-8"))
            if n > self.config.max_content_bytes:
                raise invalid(f"texts[{i}]", f"is {n} UTF-8 bytes; the limit is {self.config.max_content_bytes}")
        v.enum_value(pb.EmbeddingInputType, req.input_type, "input_type")

        def embed() -> tuple[np.ndarray, float, str]:
            t0 = time.perf_counter()
            arr = self.engine.embed(list(req.texts))
            return arr, time.perf_counter() - t0, self.engine.embedding_model

        arr, seconds, model = await self.run(embed)
        self.metrics.embedding_seconds(seconds)
        arr = np.ascontiguousarray(arr, dtype="<f4")
        out = pb.EmbedResponse(model=model, dimensions=int(arr.shape[1]) if arr.ndim == 2 else 0)
        for row in arr:
            out.embeddings.add(vector=row.tobytes())
        return out

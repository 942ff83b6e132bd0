"""The Engram engine: storage, indexes, embeddings and the Engine facade."""

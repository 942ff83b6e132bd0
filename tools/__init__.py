"""Repository tools: code generators and checks run by the top-level Makefile (never shipped)."""

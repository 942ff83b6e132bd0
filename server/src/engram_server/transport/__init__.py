"""Transport adapters: gRPC / gRPC-Web framing and REST/JSON, both thin over the service layer."""

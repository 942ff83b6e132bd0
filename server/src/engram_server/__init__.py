"""Engram reference server: transports (gRPC, gRPC-Web, REST) over one service layer over the engine."""

__version__ = "0.1.0"

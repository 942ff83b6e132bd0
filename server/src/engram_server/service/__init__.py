"""The service layer: every RPC implemented once on the generated betterproto2 messages."""

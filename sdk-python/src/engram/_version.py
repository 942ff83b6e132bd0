"""Version of the SDK."""

__version__ = "0.1.0"
USER_AGENT = f"engram-python/{__version__}"

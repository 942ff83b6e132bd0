"""The image's HEALTHCHECK: GET /health on the server's own port; exit 0 when it answers 200.

Run as `python3 -I -S healthcheck.py` (the standard library only: the image has no curl). It
reads ENGRAM_PORT and ENGRAM_HOST as the server does; a server bound to every address is asked
on loopback. /health needs no API key.
"""

import os
import sys
import urllib.request

host = os.environ.get("ENGRAM_HOST") or "127.0.0.1"
if host in ("0.0.0.0", "::", "[::]"):
    host = "127.0.0.1"
if ":" in host and not host.startswith("["):
    host = f"[{host}]"
url = f"http://{host}:{os.environ.get('ENGRAM_PORT') or '3300'}/health"
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
try:
    with opener.open(url, timeout=3) as response:
        body = response.read(200).decode(errors="replace")
        print(body)
        sys.exit(0 if response.status == 200 else 1)
except Exception as exc:  # 503 while starting or stopping, refused before it listens
    print(f"{url}: {exc}")
    sys.exit(1)

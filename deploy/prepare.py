"""Run in the image's build stages (deploy/Containerfile), by the server environment's Python.

    prepare.py slim DIR       remove the packages' own test suites under DIR
    prepare.py bytecode DIR   compile every module under DIR
    prepare.py model          build the bundled model's int8 graph into $XDG_CACHE_HOME/engram

slim: numpy, scipy, scikit-learn, numba and onnx ship their test suites (76 MB with bytecode);
the server never imports them.

bytecode: the server runs as a user that cannot write to /opt/engram, so without compiled
modules Python would compile each one in memory on every start (about 1 s of each start).
Unchecked-hash bytecode: it is used whatever the files' timestamps become when a later stage
copies them. A few packages ship files that are not Python 3.11 source (templates, code for
other versions); compileall names them and they are never imported.

model: builds the int8 graph where the server looks for it, so that no container start builds it
(about 6 s, and 110 MiB written into the container's own layer each time), loads it and embeds a
sentence: the environment can serve. The float32 graph it is quantised from is removed (90 MB):
the server needs it only with ENGRAM_EMBEDDING_PRECISION=float32, and then builds it once.
"""

import os
import shutil
import sys
import time
from pathlib import Path


def slim(root: Path) -> None:
    removed = 0
    suites = [p for p in root.rglob("tests") if p.is_dir()] + [root / "onnx" / "backend" / "test"]
    for path in suites:
        if path.is_dir():
            removed += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path)
    print(f"removed {len(suites)} test suites from {root}: {removed / 1e6:.0f} MB")


def bytecode(root: Path) -> None:
    import compileall
    import py_compile

    started = time.perf_counter()
    ok = compileall.compile_dir(
        root, quiet=2, workers=0, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
    )
    print(f"bytecode of {root} compiled in {time.perf_counter() - started:.1f} s (every file: {ok})")


def model() -> None:
    from engram_server.engine.embedding import Embedder
    from engram_server.engine.lazy_embedder import default_cache_dir

    started = time.perf_counter()
    cache = default_cache_dir()
    embedder = Embedder.from_config(None, cache, threads=1, arena=False, precision="int8")
    vector = embedder.embed_query("The user prefers window seats on long flights")
    assert len(vector) == embedder.dim == 384, (len(vector), embedder.dim)
    embedder.close()
    for graph in cache.glob("*.onnx"):
        if graph != embedder.spec.onnx_path:
            graph.unlink()
    # onnxruntime's telemetry writes a device id under the cache home: no image should ship one.
    shutil.rmtree(Path(os.environ["XDG_CACHE_HOME"]) / "Microsoft", ignore_errors=True)
    built = sorted(p.name for p in cache.iterdir())
    print(f"model {embedder.model_id}: {built} in {cache} ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["slim"] and len(sys.argv) == 3:
        slim(Path(sys.argv[2]))
    elif sys.argv[1:2] == ["bytecode"] and len(sys.argv) == 3:
        bytecode(Path(sys.argv[2]))
    elif sys.argv[1:] == ["model"]:
        model()
    else:
        sys.exit(__doc__)

"""Build and save the server's container image with podman: `make image`, `make image-save`.

    python3 -m tools.image build [--force] [--refresh-base]   base, wheels, server wheel, podman build
    python3 -m tools.image save [--format F] [--output FILE]  an archive for docker load / podman load
    python3 -m tools.image layers                             the image's layers and their sizes

Standard library only, run by the system's python3 (no development environment needed); it uses
uv and pip from the `.uv/` environment that `make` creates.

1. The tools: podman, runc and mmdebstrap, installed with apt-get when missing (as root).
2. The base image `localhost/engram-base:bookworm`: a Debian minbase root filesystem with
   python3 and python3-venv, made by mmdebstrap from Debian's own packages (bookworm,
   bookworm-updates, bookworm-security) and imported into podman. Made once; `--refresh-base`
   makes it again (security updates).
3. The build context under build/image/: the wheels of requirements/runtime.lock for the base's
   Python and machine (downloaded once per lock into build/image/wheels-*, from pip's cache after
   the first time), the server's wheel built from a copy of server/, the deploy/ files.
4. `podman build` of deploy/Containerfile with no network, tagged
   localhost/engram-server:<version> and :latest.

The image carries the label org.engram.image.inputs, a digest of everything it is built from
(the base image's id, the lock, server/'s sources, deploy/'s files, this file). A build whose
digest matches an existing image only tags that image again; tests/container relies on this to
keep `make test` fast.

podman runs with deploy/podman/containers.conf (CONTAINERS_CONF): runc, cgroupfs and no default
ulimits, which work in the VMs the tests run in, where crun and raised ulimits are refused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
CONTAINERFILE = DEPLOY / "Containerfile"
CONTAINERS_CONF = DEPLOY / "podman" / "containers.conf"
BUILD_DIR = REPO / "build" / "image"
RUNTIME_LOCK = REPO / "requirements" / "runtime.lock"
UV_PYTHON = REPO / ".uv" / "bin" / "python"
UV = REPO / ".uv" / "bin" / "uv"

SUITE = "bookworm"
SUITE_PYTHON = {"bookworm": "3.11"}  # the python3 of the suite: the wheels are chosen for it
SUITE_GLIBC_MINOR = {"bookworm": 36}  # glibc 2.36: the newest manylinux tag its wheels may carry
DEBIAN_MIRROR = "http://deb.debian.org"
BASE_PACKAGES = ("python3", "python3-venv")
BASE_IMAGE = f"localhost/engram-base:{SUITE}"
IMAGE = "localhost/engram-server"
APT_TOOLS = {"podman": "podman", "runc": "runc", "mmdebstrap": "mmdebstrap"}  # command -> package
INPUTS_LABEL = "org.engram.image.inputs"
DEPS_CACHE = "localhost/engram-server-build:deps"  # the build's deps stage, kept as a build cache
# Files of deploy/ the image is built from (besides the Containerfile).
DEPLOY_FILES = ("entrypoint.sh", "healthcheck.py", "prepare.py")
SOURCE_URL = "https://github.com/engram-memory-server/engram"


class Unavailable(RuntimeError):
    """podman cannot build or run containers here; the message says why."""


def log(msg: str) -> None:
    print(f"[image] {msg}", flush=True)


def version() -> str:
    project = tomllib.loads((REPO / "server" / "pyproject.toml").read_text())["project"]
    return str(project["version"])


def image_ref(tag: str | None = None) -> str:
    return f"{IMAGE}:{tag or version()}"


def machine() -> str:
    """The wheel platform's machine name of this host (the image is built for it)."""
    m = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


# --- podman ------------------------------------------------------------------------------------

def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str, check: bool = True, capture: bool = True, timeout: float | None = None,
           ) -> subprocess.CompletedProcess[str]:
    """podman with the repository's containers.conf. Raises CalledProcessError (with its output)
    when check is set and podman fails."""
    return subprocess.run(
        ["podman", *args], env=podman_env(), check=check, text=True, timeout=timeout,
        stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE if capture else None,
    )


def _which(cmd: str) -> str | None:
    return shutil.which(cmd, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def missing_tools() -> list[str]:
    return [cmd for cmd in APT_TOOLS if _which(cmd) is None]


def ensure_tools(install: bool = True) -> None:
    """podman, runc and mmdebstrap on PATH; installs the missing ones with apt-get (as root)."""
    missing = missing_tools()
    if not missing:
        return
    packages = " ".join(APT_TOOLS[c] for c in missing)
    if not install:
        raise Unavailable(f"{packages} not installed")
    if os.geteuid() != 0:
        raise Unavailable(f"{packages} not installed, and installing them with apt-get needs root "
                          f"(run `sudo apt-get install {packages}`)")
    if _which("apt-get") is None:
        raise Unavailable(f"{packages} not installed, and this system has no apt-get: install them with its "
                          "package manager")
    log(f"installing {packages} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_TOOLS.values()]):
        done = subprocess.run(cmd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            raise Unavailable(f"`{' '.join(cmd)}` failed (exit {done.returncode}): {done.stdout[-2000:]}")
    still = missing_tools()
    if still:
        raise Unavailable(f"apt-get installed {packages}, but {' '.join(still)} is still not on PATH")


def check_podman() -> None:
    """Raises Unavailable when podman does not work at all here (`podman info` fails)."""
    try:
        done = podman("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"`podman info` failed: {exc}") from None
    if done.returncode != 0:
        raise Unavailable(f"`podman info` failed (exit {done.returncode}): {done.stderr.strip()[-1000:]}")


def image_id(ref: str) -> str | None:
    done = podman("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return (done.stdout.strip() or None) if done.returncode == 0 else None


# --- the base image ----------------------------------------------------------------------------

def debian_sources(suite: str = SUITE) -> list[str]:
    return [
        f"deb {DEBIAN_MIRROR}/debian {suite} main",
        f"deb {DEBIAN_MIRROR}/debian {suite}-updates main",
        f"deb {DEBIAN_MIRROR}/debian-security {suite}-security main",
    ]


def build_base(refresh: bool = False) -> str:
    """The base image's id: a Debian minbase with python3, from Debian's packages (mmdebstrap).
    Made when missing (about 30 s) or when refresh is set."""
    existing = image_id(BASE_IMAGE)
    if existing and not refresh:
        return existing
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    rootfs = BUILD_DIR / f"rootfs-{SUITE}.tar"
    log(f"making {BASE_IMAGE} with mmdebstrap (Debian {SUITE} minbase + {', '.join(BASE_PACKAGES)})")
    started = time.perf_counter()
    done = subprocess.run(
        [
            "mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
            # /usr merged by symlinks, as debootstrap does, rather than by the usrmerge package
            # (which would bring perl in: 50 MiB).
            "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
            # No manuals, docs (but the copyright files) or translations.
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-include=/usr/share/doc/*/copyright",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--dpkgopt=path-exclude=/usr/share/info/*",
            SUITE, str(rootfs), *debian_sources(),
        ],
        stderr=subprocess.PIPE, text=True,
    )
    if done.returncode != 0:  # no Debian mirror reachable; without root, no user namespaces
        rootfs.unlink(missing_ok=True)
        raise Unavailable(f"mmdebstrap could not make the Debian {SUITE} base (exit {done.returncode}, "
                          f"user {os.geteuid()}): {done.stderr.strip()[-1500:]}")
    try:
        podman(
            "import",
            "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change", f"LABEL org.engram.base.suite={SUITE}",
            "--change", f"LABEL org.engram.base.packages={','.join(BASE_PACKAGES)}",
            "--message", f"Debian {SUITE} minbase + {' '.join(BASE_PACKAGES)} (mmdebstrap)",
            str(rootfs), BASE_IMAGE,
        )
    finally:
        rootfs.unlink(missing_ok=True)
    new = image_id(BASE_IMAGE)
    assert new, f"{BASE_IMAGE} missing after podman import"
    log(f"{BASE_IMAGE} made in {time.perf_counter() - started:.0f} s")
    return new


def check_can_run() -> None:
    """Raises Unavailable when podman cannot run a container of the base image here."""
    done = podman("run", "--rm", "--network", "none", BASE_IMAGE, "python3", "-c", "print('ok')",
                  check=False, timeout=120)
    if done.returncode != 0 or done.stdout.strip() != "ok":
        raise Unavailable(f"podman cannot run a container here (exit {done.returncode}): "
                          f"{(done.stderr or done.stdout).strip()[-1000:]}")


# --- inputs and the build context ----------------------------------------------------------------

def _server_files() -> list[Path]:
    """server/'s files that go into its wheel: pyproject.toml and src/, no build outputs."""
    root = REPO / "server"
    files = [root / "pyproject.toml"]
    for path in sorted((root / "src").rglob("*")):
        rel = path.relative_to(root).parts
        if path.is_file() and not any(p == "__pycache__" or p.endswith(".egg-info") for p in rel):
            files.append(path)
    return files


def inputs_digest(base_id: str) -> str:
    """A digest of everything the image is built from."""
    h = hashlib.sha256()
    h.update(f"base={base_id}\nsuite={SUITE}\nmachine={machine()}\nversion={version()}\n".encode())
    files = [CONTAINERFILE, Path(__file__).resolve(), RUNTIME_LOCK, *(DEPLOY / f for f in DEPLOY_FILES),
             *_server_files()]
    for path in files:
        h.update(f"{path.relative_to(REPO)}\0{path.stat().st_mode & 0o111:o}\0".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _platform_tags() -> list[str]:
    """pip's --platform tags for the suite's glibc and this machine (pip does not widen one tag
    to the older manylinux tags it implies, so each is listed)."""
    m = machine()
    tags = [f"manylinux_2_{minor}_{m}" for minor in range(SUITE_GLIBC_MINOR[SUITE], 16, -1)]
    return tags + [f"manylinux2014_{m}"] + ([f"manylinux2010_{m}", f"manylinux1_{m}"] if m == "x86_64" else [])


def wheelhouse() -> Path:
    """The wheels of requirements/runtime.lock for the suite's Python on this machine. Downloaded
    once per lock (pip's cache makes a second download quick)."""
    py = SUITE_PYTHON[SUITE]
    key = hashlib.sha256(RUNTIME_LOCK.read_bytes() + f"{py} {machine()} {_platform_tags()}".encode()).hexdigest()
    dest = BUILD_DIR / f"wheels-{SUITE}-{machine()}"
    stamp = dest / ".inputs"
    if stamp.exists() and stamp.read_text() == key:
        return dest
    for tool in (UV, UV_PYTHON):
        if not tool.exists():
            raise Unavailable(f"{tool.relative_to(REPO)} is missing: run `make image` (it creates .uv/)")
    log(f"downloading the wheels of {RUNTIME_LOCK.relative_to(REPO)} for CPython {py} on {machine()}")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD_DIR) as tmp:
        # The lock is universal: pick the pins that apply to the image's Python and platform.
        pins = Path(tmp) / "pins.txt"
        subprocess.run(
            [str(UV), "pip", "compile", "-q", "--no-header", "--no-annotate", str(RUNTIME_LOCK),
             "--python-version", py, "--python-platform", f"{machine()}-manylinux_2_{SUITE_GLIBC_MINOR[SUITE]}",
             "-o", str(pins)],
            check=True,
        )
        wheels = Path(tmp) / "wheels"
        cmd = [str(UV_PYTHON), "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
               "--only-binary=:all:", "--python-version", py, "--implementation", "cp",
               "--abi", f"cp{py.replace('.', '')}", "--abi", "abi3", "--abi", "none",
               *(a for tag in _platform_tags() for a in ("--platform", tag)),
               "-r", str(pins), "-d", str(wheels)]
        subprocess.run(cmd, check=True)
        wanted = [line for line in pins.read_text().splitlines() if "==" in line]
        got = list(wheels.glob("*.whl"))
        if len(got) != len(wanted):
            raise RuntimeError(f"downloaded {len(got)} wheels for {len(wanted)} pins")
        (wheels / ".inputs").write_text(key)
        shutil.rmtree(dest, ignore_errors=True)
        wheels.rename(dest)
    return dest


def stage_context() -> Path:
    """build/image/context: what the Containerfile copies, and nothing else."""
    ctx = BUILD_DIR / "context"
    shutil.rmtree(ctx, ignore_errors=True)
    (ctx / "requirements").mkdir(parents=True)
    (ctx / "deploy").mkdir()
    shutil.copy2(RUNTIME_LOCK, ctx / "requirements" / "runtime.lock")
    for name in DEPLOY_FILES:
        shutil.copy2(DEPLOY / name, ctx / "deploy" / name)
    (ctx / "wheels").mkdir()
    for whl in wheelhouse().glob("*.whl"):
        os.link(whl, ctx / "wheels" / whl.name)
    # The server's wheel, from a copy of its sources (nothing is written into the checkout).
    src = BUILD_DIR / "server-src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for path in _server_files():
        rel = path.relative_to(REPO / "server")
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, src / rel)
    subprocess.run([str(UV), "build", "-q", "--wheel", "--out-dir", str(ctx / "dist"), str(src)], check=True)
    shutil.rmtree(src, ignore_errors=True)
    (ctx / "dist" / ".gitignore").unlink(missing_ok=True)
    return ctx


def git_revision() -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False)
    rev = done.stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                           capture_output=True, text=True, check=False).stdout.strip()
    return rev + ("-modified" if dirty else "")


def find_image(digest: str) -> str | None:
    done = podman("images", "--noheading", "--filter", f"label={INPUTS_LABEL}={digest}", "--format", "{{.ID}}")
    ids = done.stdout.split()
    return ids[0] if ids else None


def build(force: bool = False, refresh_base: bool = False) -> str:
    """Build the image (or find the one built from the same inputs); returns its reference."""
    ensure_tools()
    check_podman()
    base_id = build_base(refresh=refresh_base)
    digest = inputs_digest(base_id)
    ref, latest = image_ref(), image_ref("latest")
    existing = None if force else find_image(digest)
    if existing:
        podman("tag", existing, ref, latest)
        log(f"{ref} is up to date (built from the same inputs: {digest[:12]})")
        return ref
    started = time.perf_counter()
    ctx = stage_context()
    log(f"podman build of {ref} (inputs {digest[:12]})")
    common = ["build", "--format", "docker", "--network", "none", "--pull=never", "-f", str(CONTAINERFILE),
              "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--build-arg", f"VERSION={version()}"]
    # The deps stage (the lock's packages: the slow part) under a tag of its own, so that the
    # clean-up below keeps it for the next build of a changed server.
    podman(*common, "--target", "deps", "-t", DEPS_CACHE, str(ctx), capture=False)
    # Labels set here are applied when the image is committed (a build argument used in a LABEL
    # would not be: buildah 1.28 reuses the cached layer of a LABEL whose argument changed).
    labels = {"org.opencontainers.image.version": version(), "org.opencontainers.image.base.name": BASE_IMAGE,
              "org.opencontainers.image.revision": git_revision(), INPUTS_LABEL: digest}
    podman(*common, *(a for k, v in labels.items() for a in ("--label", f"{k}={v}")),
           "-t", ref, "-t", latest, str(ctx), capture=False)
    shutil.rmtree(ctx, ignore_errors=True)
    # Untagged images made on the base: earlier builds of the image, their stages, an earlier
    # deps stage. Nothing else of the machine's images is touched.
    podman("image", "prune", "-f", "--filter", f"label=org.engram.base.suite={SUITE}", check=False)
    log(f"built {ref} in {time.perf_counter() - started:.0f} s: {human(image_size(ref))}")
    return ref


# --- what the image holds ----------------------------------------------------------------------

def inspect(ref: str) -> dict[str, Any]:
    data: list[dict[str, Any]] = json.loads(podman("image", "inspect", ref).stdout)
    return data[0]


def image_size(ref: str) -> int:
    return int(inspect(ref)["Size"])


def layers(ref: str) -> list[dict[str, Any]]:
    """The image's layers, oldest first: size (bytes, uncompressed) and the instruction that made it."""
    history: list[dict[str, Any]] = json.loads(podman("history", "--format", "json", ref).stdout)
    out = []
    for entry in reversed(history):
        if not entry.get("size"):
            continue  # metadata only (ENV, LABEL, ...)
        created_by = " ".join(str(entry.get("CreatedBy") or entry.get("createdBy") or "").split())
        out.append({"size_bytes": int(entry["size"]), "created_by": created_by.removeprefix("/bin/sh -c ")})
    return out


def human(n: float) -> str:
    return f"{n / 1e6:.0f} MB"


ARCHIVE_SUFFIX = {"oci-archive": "oci.tar", "docker-archive": "docker.tar"}


def save(output: Path | None = None, fmt: str = "oci-archive") -> Path:
    """The image as an archive for `docker load` / `podman load`. An OCI archive's image
    configuration has no health check (the OCI format has no such field; Docker's has):
    docker-archive keeps it."""
    ref = image_ref()
    if image_id(ref) is None:
        raise Unavailable(f"{ref} does not exist: run `make image` first")
    output = output or REPO / "dist" / f"engram-server-{version()}.{ARCHIVE_SUFFIX[fmt]}"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    podman("save", "--format", fmt, "-o", str(output), ref, capture=False)
    shown = output.relative_to(REPO) if output.is_relative_to(REPO) else output
    log(f"wrote {shown} ({human(output.stat().st_size)}): load it with `docker load -i {output.name}` "
        f"or `podman load -i {output.name}`")
    return output


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tools.image", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the image (make image)")
    b.add_argument("--force", action="store_true", help="build even when an image of the same inputs exists")
    b.add_argument("--refresh-base", action="store_true", help="make the Debian base image again (updates)")
    s = sub.add_parser("save", help="write an archive of the image (make image-save)")
    s.add_argument("--format", choices=sorted(ARCHIVE_SUFFIX), default="oci-archive")
    s.add_argument("--output", type=Path, default=None,
                   help="default: dist/engram-server-<version>.oci.tar (.docker.tar for docker-archive)")
    sub.add_parser("layers", help="print the image's layers and their sizes")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build(force=args.force, refresh_base=args.refresh_base)
        elif args.command == "save":
            save(args.output, args.format)
        else:
            ref = image_ref()
            for layer in layers(ref):
                print(f"{human(layer['size_bytes']):>8}  {layer['created_by'][:110]}")
            print(f"{human(image_size(ref)):>8}  {ref}")
    except Unavailable as exc:
        print(f"[image] cannot build the image here: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"[image] failed: {' '.join(map(str, exc.cmd))} exited {exc.returncode}\n{exc.stderr or ''}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

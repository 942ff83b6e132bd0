#!/bin/sh
# The image's entrypoint: reads the keys a container is given as files, refuses to serve every
# address without an API key, then execs engram-server, which becomes PID 1 and receives the
# container's SIGTERM itself (graceful drain; docs/operations/container.md).
#
#   (no arguments)             engram-server serve
#   --flag ...                 engram-server serve --flag ...
#   serve | backup | verify | rotate-key | --version | --help ...   engram-server <that> ...
#   anything else              run as given (a shell for debugging: `... engram-server-image sh`)
set -eu

fail() {
    # One JSON line on stderr, like the server's own start-up errors.
    printf '{"level": "error", "logger": "engram.container", "msg": "%s"}\n' "$1" >&2
    exit 2
}

# ENGRAM_API_KEY_FILE: the root API key in a file (a Docker or Compose secret), so that it is
# not in the container's configuration, which `docker inspect` shows to anyone who may run it.
if [ -n "${ENGRAM_API_KEY_FILE:-}" ]; then
    [ -z "${ENGRAM_API_KEY:-}" ] || fail "set ENGRAM_API_KEY or ENGRAM_API_KEY_FILE, not both"
    [ -r "$ENGRAM_API_KEY_FILE" ] || fail "ENGRAM_API_KEY_FILE=$ENGRAM_API_KEY_FILE cannot be read by user $(id -u)"
    ENGRAM_API_KEY=$(cat "$ENGRAM_API_KEY_FILE")
    [ -n "$ENGRAM_API_KEY" ] || fail "ENGRAM_API_KEY_FILE=$ENGRAM_API_KEY_FILE is empty"
    export ENGRAM_API_KEY
    unset ENGRAM_API_KEY_FILE
fi

case "${1:-serve}" in
    serve | backup | verify | rotate-key | --version | --help | -h) ;;
    -*) set -- serve "$@" ;;
    *) exec "$@" ;;
esac
[ $# -gt 0 ] || set -- serve

# The server itself refuses a non-loopback address without a key; this says it in a container's
# terms (a loopback address serves nothing outside the container). Flags and a TOML file may
# set the host and the key too: then the server decides.
if [ "$1" = serve ] && [ -z "${ENGRAM_API_KEY:-}" ] && [ -z "${ENGRAM_CONFIG:-}" ]; then
    case " $* " in
        *" --host"* | *" --api-key"* | *" --config"*) ;;
        *)
            case "${ENGRAM_HOST:-127.0.0.1}" in
                127.* | localhost | ::1 | "[::1]") ;;
                *) fail "refusing to serve on ${ENGRAM_HOST} without an API key: set ENGRAM_API_KEY (docker run -e / --env-file) or ENGRAM_API_KEY_FILE (a file or secret holding the key, at least 16 characters); see docs/operations/container.md" ;;
            esac
            ;;
    esac
fi

exec engram-server "$@"

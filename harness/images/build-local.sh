#!/bin/sh
# Build cachewright's stand-in engine images without a registry: a Debian bookworm rootfs made
# with debootstrap, the engine packages installed in a chroot, imported with `docker import`.
#
#   harness/images/build-local.sh            # build what is missing
#   harness/images/build-local.sh --rebuild  # build again even when the tags exist
#
# One rootfs holds every engine and python3 (for the sample origin); it is imported once and
# tagged four times (cachewright/{nginx,varnish,hitch,origin}:local), so the four tags share one
# image and one copy on disk. The debootstrap base is cached (CACHEWRIGHT_IMAGE_CACHE, default
# /var/cache/cachewright) so a rebuild only re-runs apt-get. Needs root, debootstrap, docker and
# a reachable Debian mirror (DEBIAN_MIRROR, default http://deb.debian.org/debian).
set -eu

SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${CACHEWRIGHT_IMAGE_CACHE:-/var/cache/cachewright}
TAGS="cachewright/nginx:local cachewright/varnish:local cachewright/hitch:local cachewright/origin:local"
PACKAGES="nginx-light libnginx-mod-http-cache-purge libnginx-mod-http-js varnish varnish-modules hitch python3 ca-certificates"
HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT=$(cd "$HERE/../.." && pwd)
# where the sample origin lives in the image; an image of another layout is rebuilt
LAYOUT="origin=/opt/cachewright/cachewright/harness/origin/"
REBUILD=0

for arg in "$@"; do
    case $arg in
        --rebuild) REBUILD=1 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "build-local.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

log() { echo "build-local.sh: $*" >&2; }

# present: every tag, built from today's package list (an image of an older list is rebuilt)
all_present() {
    for tag in $TAGS; do
        built=$(docker image inspect --format '{{ index .Config.Labels "cachewright.packages" }}' "$tag" 2>/dev/null) \
            || return 1
        [ "$built" = "$PACKAGES" ] || { log "$tag holds other packages ($built): rebuilding"; return 1; }
        layout=$(docker image inspect --format '{{ index .Config.Labels "cachewright.layout" }}' "$tag")
        [ "$layout" = "$LAYOUT" ] || { log "$tag has another layout (${layout:-none}): rebuilding"; return 1; }
    done
}

if [ "$REBUILD" = 0 ] && all_present; then
    log "images present, nothing to do ($TAGS); --rebuild to build again"
    exit 0
fi
[ "$(id -u)" = 0 ] || { log "needs root (debootstrap, chroot)"; exit 1; }
command -v debootstrap >/dev/null || { log "debootstrap missing: apt-get install debootstrap"; exit 1; }

started=$(date +%s)
mkdir -p "$CACHE/debs"
BASE="$CACHE/$SUITE-minbase.tar"
WORK=$(mktemp -d /tmp/cachewright-rootfs.XXXXXX)
ROOT="$WORK/root"

cleanup() {
    for m in "$ROOT/proc" "$ROOT/var/cache/apt/archives"; do
        mountpoint -q "$m" 2>/dev/null && umount -l "$m"
    done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# 1. the debootstrap base, once
if [ ! -s "$BASE" ]; then
    log "debootstrap $SUITE (minbase) from $MIRROR"
    mkdir -p "$ROOT"
    debootstrap --variant=minbase --cache-dir="$CACHE/debs" "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -30 "$WORK/debootstrap.log" >&2; exit 1; }
    tar -C "$ROOT" -cf "$BASE.tmp" . && mv "$BASE.tmp" "$BASE"
    rm -rf "$ROOT"
fi

# 2. the packages, in a chroot of a fresh copy (no services started: policy-rc.d says no)
log "installing: $PACKAGES"
mkdir -p "$ROOT"
tar -C "$ROOT" -xf "$BASE"
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"
printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\npath-exclude /usr/share/info/*\n' \
    >"$ROOT/etc/dpkg/dpkg.cfg.d/01-cachewright-nodoc"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
echo "deb $MIRROR $SUITE main" >"$ROOT/etc/apt/sources.list"
mount -t proc proc "$ROOT/proc"
mount --bind "$CACHE/debs" "$ROOT/var/cache/apt/archives"
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive LC_ALL=C sh -c \
    "apt-get -q update && apt-get -qy install --no-install-recommends $PACKAGES" >"$WORK/apt.log" 2>&1 \
    || { tail -30 "$WORK/apt.log" >&2; exit 1; }
umount "$ROOT/var/cache/apt/archives" "$ROOT/proc"
rm -f "$ROOT/usr/sbin/policy-rc.d" "$ROOT/etc/resolv.conf"
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/* "$ROOT"/tmp/* \
    "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/locale/*

# 3. the sample origin (stdlib only), runnable as `python3 -m cachewright.harness.origin` from
#    /opt/cachewright (cachewright/ is a namespace package there: the origin alone, not the tool):
#    the modules of harness/origin/ but client.py (it needs requests), as shipping.server_files()
ORIGIN="$ROOT/opt/cachewright/cachewright/harness/origin"
mkdir -p "$ORIGIN"
: >"$ROOT/opt/cachewright/cachewright/harness/__init__.py"
for module in "$PROJECT"/harness/origin/*.py; do
    [ "$(basename "$module")" = client.py ] || cp "$module" "$ORIGIN/"
done
ORIGIN_SHA=$(cat "$ORIGIN"/*.py | sha256sum | cut -c1-64)

# 4. one import, four tags
log "docker import"
id=$(tar -C "$ROOT" -c . | docker import \
    --change 'WORKDIR /opt/cachewright' \
    --change 'ENV PYTHONPATH=/opt/cachewright PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'LABEL cachewright.image=local' \
    --change "LABEL cachewright.origin-sha256=$ORIGIN_SHA" \
    --change "LABEL cachewright.packages=\"$PACKAGES\"" \
    --change "LABEL cachewright.layout=$LAYOUT" \
    --change 'CMD ["/bin/sh"]' \
    - "cachewright/stand-in:local")
for tag in $TAGS; do
    docker tag "$id" "$tag"
done
docker rmi "cachewright/stand-in:local" >/dev/null
log "built $(docker image inspect --format '{{.Size}}' "$id" | awk '{printf "%.0f MB", $1/1e6}') in $(( $(date +%s) - started ))s: $TAGS"

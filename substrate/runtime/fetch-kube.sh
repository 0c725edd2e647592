#!/usr/bin/env bash
# Fetch a real Kubernetes API server for the local test tier (the expose-external tests) into
# the cache, next to what fetch.sh fetches:
#   - kube-apiserver, built with Go from the published k8s.io/kubernetes module, and
#   - etcd, taken out of Debian's etcd-server package (nothing is installed system-wide).
# Idempotent: a second run with a complete cache builds and downloads nothing.
#
# Cache directory: ${KAFKA_K8S_CACHE:-$HOME/.cache/kafka-k8s-test}
#   kube/bin/kube-apiserver, kube/bin/etcd   the binaries
#   kube/bin/.<name>.stamp                   what they were made from: a changed pin remakes them
#   kube/src/                                the generated Go module kube-apiserver is built from
#
# The build is heavy (about 900 CPU-seconds with a cold Go build cache: 8 minutes on an idle
# 2-core machine). It takes no lock itself: run it, like the local tier, under the machine's
# heavy-run lock when other heavy jobs may run (tox -e local is).
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-1.37.2}"               # k8s.io/kubernetes v$KUBE_VERSION
ETCD_DEB_VERSION="${ETCD_DEB_VERSION:-3.4.23-4+b4}"  # Debian 12's etcd-server
ETCD_DEB_SHA256="${ETCD_DEB_SHA256:-3a9445d4560ad6de1c375756b2a17d97713df44cbd20a658c871fe108af7ef5d}"
GO_MIN_MINOR=26

cache="${KAFKA_K8S_CACHE:-$HOME/.cache/kafka-k8s-test}"
kube="$cache/kube"
bin="$kube/bin"

log() { printf 'fetch-kube.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# Each staging module of k8s.io/kubernetes is published as k8s.io/<name> v0.<minor>.<patch>.
staging_version="v0.${KUBE_VERSION#*.}"
ldflags="-s -w"
for kv in "gitVersion=v$KUBE_VERSION" "gitMajor=${KUBE_VERSION%%.*}" \
    "gitMinor=$(cut -d. -f2 <<<"$KUBE_VERSION")" gitTreeState=clean; do
    ldflags+=" -X k8s.io/component-base/version.$kv"
done
apiserver_stamp="k8s.io/kubernetes v$KUBE_VERSION staging $staging_version CGO_ENABLED=0 -trimpath -ldflags=$ldflags"
etcd_stamp="debian etcd-server $ETCD_DEB_VERSION sha256 $ETCD_DEB_SHA256"

up_to_date() { # binary, stamp
    [[ -x "$bin/$1" && -f "$bin/.$1.stamp" && "$(cat "$bin/.$1.stamp")" == "$2" ]]
}
need_apiserver=true
up_to_date kube-apiserver "$apiserver_stamp" && need_apiserver=false
need_etcd=true
up_to_date etcd "$etcd_stamp" && need_etcd=false

# Every tool needed, checked up front so one run names all that is missing.
GO="${GO:-$(command -v go || true)}"
[[ -z "$GO" && -x /usr/local/go/bin/go ]] && GO=/usr/local/go/bin/go
missing=()
if $need_apiserver; then
    if [[ -z "$GO" ]]; then
        missing+=("go (1.$GO_MIN_MINOR or newer, builds kube-apiserver v$KUBE_VERSION) — install it: https://go.dev/doc/install")
    else
        go_version="$("$GO" env GOVERSION)"
        go_minor="${go_version#go1.}"
        go_minor="${go_minor%%[.a-z]*}"
        if [[ "$go_version" != go1.* || "$go_minor" -lt "$GO_MIN_MINOR" ]]; then
            missing+=("go 1.$GO_MIN_MINOR or newer (found $go_version at $GO; k8s.io/kubernetes v$KUBE_VERSION needs it)")
        fi
    fi
fi
if $need_etcd; then
    command -v apt-get >/dev/null || missing+=("apt-get (Debian's apt, downloads etcd-server $ETCD_DEB_VERSION)")
    command -v dpkg-deb >/dev/null || missing+=("dpkg-deb (unpacks etcd-server) — install it: apt-get install dpkg")
fi
if ((${#missing[@]})); then
    for item in "${missing[@]}"; do
        printf 'missing: %s\n' "$item" >&2
    done
    exit 2
fi

mkdir -p "$bin"

if $need_etcd; then
    log "downloading etcd-server $ETCD_DEB_VERSION (apt-get download: nothing is installed)"
    work="$(mktemp -d "$kube/etcd.tmp.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    download() { (cd "$work" && apt-get download -q "etcd-server=$ETCD_DEB_VERSION") >"$work/apt.log" 2>&1; }
    if ! download; then
        if [[ "$(id -u)" == 0 ]]; then
            log "apt's package lists may be empty: running apt-get update once"
            apt-get update -q >&2 && download || true
        fi
    fi
    debs=("$work"/etcd-server_*.deb)
    if [[ ! -f "${debs[0]}" ]]; then
        cat "$work/apt.log" >&2
        die "could not download etcd-server=$ETCD_DEB_VERSION: run 'apt-get update' as root, or set ETCD_DEB_VERSION and ETCD_DEB_SHA256 to what 'apt-cache policy etcd-server' offers"
    fi
    got="$(sha256sum "${debs[0]}" | cut -d' ' -f1)"
    [[ "$got" == "$ETCD_DEB_SHA256" ]] || die "etcd-server .deb has sha256 $got, not the pinned $ETCD_DEB_SHA256"
    dpkg-deb -x "${debs[0]}" "$work/root"
    "$work/root/usr/bin/etcd" --version >/dev/null || die "the unpacked etcd does not run"
    install -m 0755 "$work/root/usr/bin/etcd" "$bin/.etcd.new"
    mv -f "$bin/.etcd.new" "$bin/etcd"
    printf '%s\n' "$etcd_stamp" >"$bin/.etcd.stamp"
    rm -rf "$work"
    trap - EXIT
else
    log "etcd $ETCD_DEB_VERSION already cached ($bin/etcd)"
fi

if $need_apiserver; then
    export GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -mod=mod" CGO_ENABLED=0
    src="$kube/src/kube-apiserver-$KUBE_VERSION"
    mkdir -p "$src"
    started=$SECONDS
    log "resolving k8s.io/kubernetes v$KUBE_VERSION on the Go module proxy"
    # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with
    # ./staging/..., which `go install ...@version` refuses. A module of our own requires it and
    # replaces each of them with the published module of the same release instead.
    k8s_gomod="$(cd "$src" && "$GO" mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" |
        sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
    [[ -f "$k8s_gomod" ]] || die "could not download k8s.io/kubernetes@v$KUBE_VERSION"
    staging="$(awk '/^require[[:space:]]*\(/{r=1;next} r&&/^\)/{r=0} r&&$1~/^k8s\.io\//&&$2=="v0.0.0"{print $1}' "$k8s_gomod")"
    [[ -n "$staging" ]] || die "no k8s.io/* v0.0.0 requirements in $k8s_gomod"
    {
        printf 'module kafkak8s.local/kube-apiserver\n\ngo 1.%s.0\n\n' "$GO_MIN_MINOR"
        printf 'require k8s.io/kubernetes v%s\n\nreplace (\n' "$KUBE_VERSION"
        for module in $staging; do printf '\t%s => %s %s\n' "$module" "$module" "$staging_version"; done
        printf ')\n'
    } >"$src/go.mod.new"
    if ! cmp -s "$src/go.mod.new" "$src/go.mod.generated"; then # pins changed: start afresh
        cp "$src/go.mod.new" "$src/go.mod.generated"
        cp "$src/go.mod.new" "$src/go.mod"
        rm -f "$src/go.sum"
    fi
    rm -f "$src/go.mod.new"
    cat >"$src/main.go" <<'EOF'
// kube-apiserver, built from the published k8s.io/kubernetes module (see fetch-kube.sh).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
EOF
    # Only what the build needs: `go mod tidy` would fetch every test dependency too.
    (cd "$src" && "$GO" list -deps . >/dev/null)
    log "modules resolved in $((SECONDS - started)) s; building kube-apiserver with $("$GO" env GOVERSION)"
    started=$SECONDS
    (cd "$src" && "$GO" build -trimpath -ldflags="$ldflags" -o "$bin/.kube-apiserver.new" .)
    version="$("$bin/.kube-apiserver.new" --version)"
    [[ "$version" == "Kubernetes v$KUBE_VERSION" ]] || die "built kube-apiserver reports '$version'"
    mv -f "$bin/.kube-apiserver.new" "$bin/kube-apiserver"
    printf '%s\n' "$apiserver_stamp" >"$bin/.kube-apiserver.stamp"
    log "kube-apiserver v$KUBE_VERSION built in $((SECONDS - started)) s"
else
    log "kube-apiserver v$KUBE_VERSION already built ($bin/kube-apiserver)"
fi

printf '%s\n' "$kube"

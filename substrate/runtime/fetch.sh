#!/usr/bin/env bash
# Fetch the runtime of the local test tier into a cache outside the repository:
#   - the Kafka 3.9 jars (plus the Prometheus JMX exporter agent) resolved by pom.xml, and
#   - a Pebble binary built from source with Go, and
#   - promtool (Prometheus's rule tester) built from source with Go, without the service
#     discovery plugins promtool does not need to test rules (`-tags remove_all_sd`).
# Idempotent: a second run with a complete cache downloads nothing and prints the cache path.
#
# Cache directory: ${KAFKA_K8S_CACHE:-$HOME/.cache/kafka-k8s-test}
#   libs/                     the jars (java -cp 'libs/*')
#   libs/.pom-<sha256>        marker: libs/ holds what this pom.xml resolves to
#   bin/pebble                the Pebble daemon
#   bin/promtool              `promtool test rules` for the alert rules
#   bin/.promtool-<version>   marker: bin/promtool is that release
set -euo pipefail

PEBBLE_VERSION="v1.32.1"
PEBBLE_MODULE="github.com/canonical/pebble"
# Prometheus v3.16.0 (its Go module's versions are v0.<major><minor>.<patch>).
PROMTOOL_VERSION="v0.316.0"
PROMTOOL_PACKAGE="github.com/prometheus/prometheus/cmd/promtool"
JAVA_MIN_MAJOR=17

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pom="$here/pom.xml"
cache="${KAFKA_K8S_CACHE:-$HOME/.cache/kafka-k8s-test}"
libs="$cache/libs"
bin="$cache/bin"

log() { printf 'fetch.sh: %s\n' "$*" >&2; }

pom_sha="$(sha256sum "$pom" | cut -d' ' -f1)"
marker="$libs/.pom-$pom_sha"
need_jars=true
[[ -f "$marker" ]] && need_jars=false
need_pebble=true
if [[ -x "$bin/pebble" ]] && [[ "$("$bin/pebble" version --client 2>/dev/null || true)" == *"$PEBBLE_VERSION"* ]]; then
    need_pebble=false
fi

# Every tool the tests or this script need, checked up front so one run names all that is
# missing. Maven and Go are only needed while their part of the cache is incomplete.
missing=()
if ! command -v java >/dev/null 2>&1; then
    missing+=("java (JDK ${JAVA_MIN_MAJOR}+) — install it: apt-get install openjdk-17-jdk-headless")
else
    java_major="$(java -version 2>&1 | sed -nE '1s/.*version "([0-9]+).*/\1/p')"
    if [[ -z "$java_major" || "$java_major" -lt "$JAVA_MIN_MAJOR" ]]; then
        missing+=("java ${JAVA_MIN_MAJOR}+ (found: $(java -version 2>&1 | head -1)) — install it: apt-get install openjdk-17-jdk-headless")
    fi
fi
if $need_jars && ! command -v mvn >/dev/null 2>&1; then
    missing+=("mvn (Apache Maven) — install it: apt-get install maven")
fi
need_promtool=true
if [[ -x "$bin/promtool" && -f "$bin/.promtool-$PROMTOOL_VERSION" ]]; then
    need_promtool=false
fi
if { $need_pebble || $need_promtool; } && ! command -v go >/dev/null 2>&1; then
    missing+=("go (Go toolchain, builds Pebble ${PEBBLE_VERSION} and promtool) — install it: https://go.dev/doc/install or apt-get install golang-go")
fi
if ((${#missing[@]})); then
    for item in "${missing[@]}"; do
        printf 'missing: %s\n' "$item" >&2
    done
    exit 2
fi

mkdir -p "$cache" "$bin"

if $need_jars; then
    log "resolving the Kafka jars with Maven into $libs"
    staging="$(mktemp -d "$cache/libs.tmp.XXXXXX")"
    trap 'rm -rf "$staging"' EXIT
    mvn -q -B -f "$pom" dependency:copy-dependencies \
        -DoutputDirectory="$staging" -DincludeScope=runtime >&2
    chmod 755 "$staging"
    touch "$staging/.pom-$pom_sha"
    rm -rf "$libs"
    mv "$staging" "$libs"
    trap - EXIT
else
    log "jars already cached for this pom.xml ($libs)"
fi

if $need_pebble; then
    log "building Pebble $PEBBLE_VERSION into $bin"
    gomod="$(mktemp -d)"
    trap 'rm -rf "$gomod"' EXIT
    # `go install module@version` trips over the module's deprecation lookup behind some
    # proxies; resolving it inside a throwaway module first works everywhere.
    (
        cd "$gomod"
        go mod init kafka-k8s-test-pebble >/dev/null 2>&1
        GOTOOLCHAIN=auto go get "$PEBBLE_MODULE/cmd/pebble@$PEBBLE_VERSION"
        GOTOOLCHAIN=auto GOBIN="$bin" CGO_ENABLED=0 go install "$PEBBLE_MODULE/cmd/pebble"
    ) >&2
    rm -rf "$gomod"
    trap - EXIT
    "$bin/pebble" version --client | grep -q "$PEBBLE_VERSION" || {
        log "built $bin/pebble but it does not report $PEBBLE_VERSION"
        exit 1
    }
else
    log "pebble $PEBBLE_VERSION already built ($bin/pebble)"
fi

if $need_promtool; then
    log "building promtool $PROMTOOL_VERSION into $bin (a few minutes, once)"
    rm -f "$bin"/.promtool-*
    GOTOOLCHAIN=auto GOBIN="$bin" CGO_ENABLED=0 \
        go install -tags remove_all_sd "$PROMTOOL_PACKAGE@$PROMTOOL_VERSION" >&2
    "$bin/promtool" --help >/dev/null
    touch "$bin/.promtool-$PROMTOOL_VERSION"
else
    log "promtool $PROMTOOL_VERSION already built ($bin/promtool)"
fi

printf '%s\n' "$cache"

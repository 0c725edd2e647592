#!/usr/bin/env bash
# Fetch what the local tier's sources of other kinds need, into the cache beside fetch.sh's:
#   - Kafka 2.8 (ZooKeeper) and the newest Kafka 4 (KRaft) jars, each resolved by its own pom in
#     sources/ into its own directory (the main libs/ stays as fetch.sh made it), and
#   - Keycloak's server distribution (an OIDC provider for OAUTHBEARER), unpacked and built once
#     for an in-memory database, so that each test run starts it with `start --optimized`.
# Idempotent: a second run with a complete cache downloads nothing and prints the cache path.
#
# Cache directory: ${KAFKA_K8S_CACHE:-$HOME/.cache/kafka-k8s-test}
#   sources/kafka-<line>/libs/           the jars of one Kafka line (java -cp 'libs/*')
#   sources/kafka-<line>/.pom-<sha256>   marker: libs/ holds what that pom resolves to
#   sources/keycloak/                    the built Keycloak distribution (in-memory database)
#   sources/keycloak/.built-<version>    marker: unpacked and built
set -euo pipefail

KEYCLOAK_VERSION="26.4.0"
JAVA_MIN_MAJOR=17

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${KAFKA_K8S_CACHE:-$HOME/.cache/kafka-k8s-test}"
sources="$cache/sources"
keycloak="$sources/keycloak"

log() { printf 'fetch-sources.sh: %s\n' "$*" >&2; }

missing=()
command -v java >/dev/null 2>&1 || missing+=("java (JDK ${JAVA_MIN_MAJOR}+) — install it: apt-get install openjdk-17-jdk-headless")
command -v mvn >/dev/null 2>&1 || missing+=("mvn (Apache Maven) — install it: apt-get install maven")
if ((${#missing[@]})); then
    for item in "${missing[@]}"; do
        printf 'missing: %s\n' "$item" >&2
    done
    exit 2
fi

mkdir -p "$sources"

# The jars of one Kafka line, from its pom, into sources/kafka-<line>/libs.
fetch_kafka() {
    local line="$1" pom="$here/sources/kafka-$1.pom.xml"
    local target="$sources/kafka-$line" sha
    sha="$(sha256sum "$pom" | cut -d' ' -f1)"
    if [[ -f "$target/.pom-$sha" ]]; then
        log "Kafka $line jars already cached ($target/libs)"
        return
    fi
    log "resolving the Kafka $line jars with Maven into $target/libs"
    local staging
    staging="$(mktemp -d "$sources/kafka-$line.tmp.XXXXXX")"
    mvn -q -B -f "$pom" dependency:copy-dependencies \
        -DoutputDirectory="$staging/libs" -DincludeScope=runtime >&2
    chmod 755 "$staging" "$staging/libs"
    touch "$staging/.pom-$sha"
    rm -rf "$target"
    mv "$staging" "$target"
}

fetch_kafka 2.8
fetch_kafka 4

if [[ -f "$keycloak/.built-$KEYCLOAK_VERSION" ]]; then
    log "Keycloak $KEYCLOAK_VERSION already built ($keycloak)"
else
    log "fetching Keycloak $KEYCLOAK_VERSION with Maven and building it into $keycloak"
    staging="$(mktemp -d "$sources/keycloak.tmp.XXXXXX")"
    trap 'rm -rf "$staging"' EXIT
    mvn -q -B dependency:copy \
        -Dartifact="org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip" \
        -DoutputDirectory="$staging" >&2
    # Python's zipfile, not unzip (not on every machine); it keeps no modes, so the scripts
    # get their execute bit back.
    python3 -m zipfile -e "$staging/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip" "$staging"
    built="$staging/keycloak-$KEYCLOAK_VERSION"
    chmod +x "$built"/bin/*.sh
    # Build-time options once (Quarkus augmentation, a minute or more); every start reuses it.
    JAVA_OPTS_KC_HEAP="-Xmx512m" "$built/bin/kc.sh" build --db=dev-mem >&2
    touch "$built/.built-$KEYCLOAK_VERSION"
    rm -rf "$keycloak"
    mv "$built" "$keycloak"
    rm -rf "$staging"
    trap - EXIT
fi

printf '%s\n' "$cache"

# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The local runtime: real Kafka, ZooKeeper, MirrorMaker 2 and Pebble processes on loopback.

The local test tier, the demo (`make demo`) and the benchmarks run on it. Nothing here mocks
Kafka, Pebble or the network; the Kafka jars and the Pebble binary come from the cache that
`substrate/runtime/fetch.sh` fills, other Kafka releases and Keycloak from `fetch-sources.sh`.

- `processes`: ports, processes, logs and waits; the Kafka client settings.
- `units`: the charm's units (a rock-like root, a real Pebble daemon each) and the new cluster.
- `old_cluster`: the foreign old cluster: Kafka 3.9 or 2.8 in ZooKeeper mode, or Kafka 4 in
  KRaft mode, with TLS material and one listener per login (PLAINTEXT to OAUTHBEARER) when asked.
- `keycloak`: a real OIDC provider (Keycloak) on loopback, whose tokens OAUTHBEARER brokers take.
- `migration`: what a migration on it needs: the source user, records, offsets, MirrorMaker.
"""

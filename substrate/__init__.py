# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The local runtime: real Kafka, ZooKeeper, MirrorMaker 2 and Pebble processes on loopback.

The local test tier, the demo (`make demo`) and the benchmarks run on it. Nothing here mocks
Kafka, Pebble or the network; the Kafka jars and the Pebble binary come from the cache that
`substrate/runtime/fetch.sh` fills.

- `processes`: ports, processes, logs and waits; the Kafka client settings.
- `units`: the charm's units (a rock-like root, a real Pebble daemon each) and the new cluster.
- `old_cluster`: the foreign old cluster (ZooKeeper mode), with TLS material when asked.
- `migration`: what a migration on it needs: the source user, records, offsets, MirrorMaker.
"""

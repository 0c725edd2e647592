# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.

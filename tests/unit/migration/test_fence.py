# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The fence (`_fence`) under ops.testing in `host.HostCharm`: the topics no client may write.

While a migration is requested and not finished, the topics any unit last saw it select are
fenced, unless `mirrormaker-fence-target` is false.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from ops import testing

from tests.unit.migration.host import migration_status, peers, request, running

pytestmark = pytest.mark.usefixtures("clusters")


def test_the_fence_follows_the_migration(ctx, clusters):
    out = ctx.run(ctx.on.update_status(), running())
    published = json.loads(out.get_relations("cluster")[0].local_unit_data["mirrormaker-topics"])
    assert published["topics"] == ["orders", "payments"]
    _, results = migration_status(ctx, out)
    assert results["fence"] == (
        "writes fenced on 2 topics until finish-migration, and on every topic "
        "mirrormaker-topics selects"
    )
    assert json.loads(results["fenced-topics"]) == ["orders", "payments"]


def test_the_fence_is_the_union_of_what_the_units_saw(ctx):
    cluster = peers(
        {"mirrormaker-topics": json.dumps(["orders"])},
        {"mirrormaker-topics": "not json"},
        local={
            "mirrormaker-request": request("stopped", 2),
            "mirrormaker-topics": json.dumps(["audit"]),
        },
    )
    out = ctx.run(ctx.on.update_status(), dataclasses.replace(running(), relations={cluster}))
    assert out.unit_status == testing.ActiveStatus(
        "migration stopped; writes fenced on audit, orders"
    )


def test_the_fence_can_be_turned_off(ctx):
    before = running(**{"mirrormaker-fence-target": False})
    out = ctx.run(ctx.on.update_status(), before)
    assert out.unit_status == testing.ActiveStatus(
        "migrating from old-0:9092: 2 topics, lag 100 records"
    )
    _, results = migration_status(ctx, out)
    assert results["fence"] == "off: mirrormaker-fence-target is false"
    assert json.loads(results["fenced-topics"]) == []

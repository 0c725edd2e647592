# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The charm's broker config options, mirrored by one pydantic model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class InvalidConfigError(Exception):
    """A config option holds a value the charm cannot use."""

    def __init__(self, option: str, reason: str):
        super().__init__(f"invalid config {option}: {reason}")
        self.option = option
        self.reason = reason


class BrokerConfig(BaseModel):
    """The broker options of `charmcraft.yaml`, by their option names."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    num_partitions: int = Field(default=3, ge=1, le=10000, alias="num-partitions")
    auto_create_topics: bool = Field(default=False, alias="auto-create-topics")
    log_retention_hours: int = Field(default=168, ge=-1, le=87600, alias="log-retention-hours")
    broker_heap_mb: int = Field(default=1024, ge=256, le=65536, alias="broker-heap-mb")
    expose_external: Literal["false", "nodeport", "loadbalancer"] = Field(
        default="false", alias="expose-external"
    )

    # Options Kafka 3.9 changes at run time, as cluster-wide broker defaults: no restart for
    # them. Of the broker options only retention is: `log.retention.ms` is dynamic (its
    # synonym `log.retention.hours` is not), while `num.partitions` and
    # `auto.create.topics.enable` are read-only in Kafka's DynamicBrokerConfig.
    DYNAMIC: ClassVar[tuple[str, ...]] = ("log_retention_hours",)

    def dynamic_configs(self) -> dict[str, str]:
        """The dynamic options as Kafka's broker configs."""
        hours = self.log_retention_hours
        return {"log.retention.ms": str(-1 if hours < 0 else hours * 3_600_000)}

    def static(self) -> BrokerConfig:
        """These options with the dynamic ones at their defaults: what a restart must apply."""
        defaults = {field: BrokerConfig.model_fields[field].default for field in self.DYNAMIC}
        return self.model_copy(update=defaults)

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> BrokerConfig:
        """Validate Juju config options.

        Raises:
            InvalidConfigError: naming the first option that is wrong, and why.
        """
        known = {field.alias for field in cls.model_fields.values()}
        try:
            config = cls.model_validate({k: v for k, v in options.items() if k in known})
        except ValidationError as error:
            first = error.errors()[0]
            option = str(first["loc"][0]) if first["loc"] else "config"
            raise InvalidConfigError(option, first["msg"].lower()) from None
        if config.log_retention_hours == 0:
            raise InvalidConfigError("log-retention-hours", "must be -1 or at least 1")
        return config

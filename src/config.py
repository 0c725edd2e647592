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

    # Options Kafka changes at run time (cluster-wide broker defaults): no restart for them.
    DYNAMIC: ClassVar[dict[str, str]] = {
        "num_partitions": "num.partitions",
        "auto_create_topics": "auto.create.topics.enable",
        "log_retention_hours": "log.retention.hours",
    }

    def dynamic_configs(self) -> dict[str, str]:
        """The dynamic options as Kafka's broker configs, with Kafka's spelling of the values."""
        values = {name: getattr(self, field) for field, name in self.DYNAMIC.items()}
        return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}

    def static(self) -> BrokerConfig:
        """These options with the dynamic ones at their defaults: what a restart must apply."""
        return self.model_copy(
            update={field: BrokerConfig.model_fields[field].default for field in self.DYNAMIC}
        )

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

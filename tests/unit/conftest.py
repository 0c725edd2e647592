"""Shared fixtures of the unit tests: the charm's context and a pretend Kafka for its admin."""

from __future__ import annotations

import pytest
from ops import testing

import charm
import client_provider
from admin import Acl
from charm import KafkaK8sCharm


class FakeKafka:
    """SCRAM users and ACLs of a pretend cluster, in memory, behind `KafkaAdmin`'s methods.

    The real `KafkaAdmin` would connect to brokers with 15 s timeouts; unit tests must never
    construct it, so the autouse `kafka` fixture swaps this in wherever the charm looks it up.
    """

    def __init__(self) -> None:
        self.users: dict[str, str] = {}
        self.acls: dict[str, set[Acl]] = {}
        self.upserts: list[tuple[str, str]] = []
        self.logins: list[tuple[str, str]] = []
        self.error: Exception | None = None

    def connect(self, bootstrap: str, username: str, password: str, **_: object) -> FakeKafka:
        self.logins.append((username, password))
        return self

    def _answer(self) -> None:
        if self.error is not None:
            raise self.error

    def upsert_user(self, username: str, password: str) -> None:
        self._answer()
        self.upserts.append((username, password))
        self.users[username] = password

    def list_users(self) -> set[str]:
        self._answer()
        return set(self.users)

    def delete_user(self, username: str) -> None:
        self._answer()
        self.acls.pop(username, None)
        self.users.pop(username, None)

    def acls_of(self, username: str) -> set[Acl]:
        self._answer()
        return set(self.acls.get(username, set()))

    def grant(self, username: str, acls) -> None:
        self._answer()
        self.acls[username] = set(acls)

    def revoke_all(self, username: str) -> None:
        self._answer()
        self.acls.pop(username, None)


@pytest.fixture(autouse=True)
def kafka(monkeypatch: pytest.MonkeyPatch) -> FakeKafka:
    fake = FakeKafka()
    monkeypatch.setattr(charm, "KafkaAdmin", fake.connect)
    monkeypatch.setattr(client_provider, "KafkaAdmin", fake.connect)
    return fake


@pytest.fixture
def ctx() -> testing.Context[KafkaK8sCharm]:
    return testing.Context(KafkaK8sCharm)

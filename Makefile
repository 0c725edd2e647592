# The two commands a newcomer needs, plus the pieces they are made of.
# Needs Python 3.10+, a JDK 17, Maven and Go; everything else is installed here.

SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
TOX := $(UV) run --frozen --group dev tox

.PHONY: demo test uv lint unit local integration bench format

## demo: migrate a ZooKeeper-mode Kafka cluster into 3 kafka-k8s units on loopback
demo: uv
	@$(TOX) -qq -e demo -- $(ARGS)

## test: lint, unit, integration (skips without a Juju controller) and the real local tier
test: uv
	$(TOX) -e lint,unit,integration,local

uv:
	@command -v "$(UV)" >/dev/null 2>&1 || python3 -m pip install --user --quiet uv

lint unit local integration bench format: uv
	$(TOX) -e $@

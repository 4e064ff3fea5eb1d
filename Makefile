# Host workflow for the charge-controller firmware. Everything runs from .venv/ (made here).
BOARD ?= sim
PORT ?=
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv build test lint run bench deploy provision schemas clean

venv: $(STAMP)
$(STAMP): requirements.txt tools/bootstrap_venv.py
	$(PY) tools/bootstrap_venv.py $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

## build: compile firmware/ + boards/$(BOARD).py into build/$(BOARD)/ as .mpy
build: $(STAMP)
	$(VPY) tools/build.py --board $(BOARD)

## schemas: regenerate firmware/ocpp/schemas/ from the ocpp package's JSON schemas
schemas: $(STAMP)
	$(VPY) tools/gen_schemas.py

lint: $(STAMP)
	$(VENV)/bin/ruff check firmware boards tools host_tests
	$(VENV)/bin/ruff format --check firmware boards tools host_tests

test: lint build
	$(VPY) tools/gen_schemas.py --check
	$(VPY) -m pytest host_tests -q -p no:cacheprovider

run: build
	$(VPY) tools/run.py $(ARGS)

bench: build
	$(VPY) tools/bench.py

## deploy: copy build/$(BOARD)/ to a board with mpremote (DRY_RUN=1 lists what would be copied;
## ROMFS=1 writes it as a ROMFS image instead, for MicroPython builds with a ROMFS partition)
deploy: build
	$(VPY) tools/deploy.py --board $(BOARD) $(if $(PORT),--port $(PORT)) $(if $(DRY_RUN),--dry-run) $(if $(ROMFS),--romfs)

## provision: site settings + certificates onto a board (ARGS="--ssid .. --url .. --id .."; tools/provision.py --help)
provision: $(STAMP)
	$(VPY) tools/provision.py $(if $(PORT),--port $(PORT)) $(if $(DRY_RUN),--dry-run) $(ARGS)

clean:
	rm -rf build

# Host workflow for the charge-controller firmware. Everything runs from .venv/ (made here).
BOARD ?= sim
PORT ?=
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# rp2040js for the emu_pico target (tools/emu/): `npm ci` leaves node_modules/.package-lock.json
EMU_DEPS := tools/emu/node_modules/.package-lock.json

.PHONY: venv build romfs test lint run bench deploy provision schemas clean

venv: $(STAMP)
$(STAMP): requirements.txt tools/bootstrap_venv.py tools/install_stubs.py
	$(PY) tools/bootstrap_venv.py $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(VPY) tools/install_stubs.py
	touch $(STAMP)

$(EMU_DEPS): tools/emu/package.json tools/emu/package-lock.json
	npm ci --prefix tools/emu --no-audit --no-fund

## build: compile firmware/ + boards/$(BOARD).py into build/$(BOARD)/ as .mpy
build: $(STAMP)
	$(VPY) tools/build.py --board $(BOARD)

## romfs: the same, plus the app as a ROMFS image, build/$(BOARD).romfs
romfs: $(STAMP)
	$(VPY) tools/build.py --board $(BOARD) --romfs

## schemas: regenerate firmware/ocpp/schemas/ from the ocpp package's JSON schemas
schemas: $(STAMP)
	$(VPY) tools/gen_schemas.py

lint: $(STAMP)
	$(VENV)/bin/ruff check firmware boards tools host_tests
	$(VENV)/bin/ruff format --check firmware boards tools host_tests

test: lint build $(EMU_DEPS)
	$(VPY) tools/gen_schemas.py --check
	$(VPY) -m pytest host_tests -q -p no:cacheprovider

run: build
	$(VPY) tools/run.py $(ARGS)

bench: build
	$(VPY) tools/bench.py

## deploy: the ROMFS image, the boot stub and the fallback copy onto a board with mpremote
## (DRY_RUN=1 lists what would be written; MPY_ONLY=1: no ROMFS partition, littlefs only)
deploy: $(STAMP)
	$(VPY) tools/deploy.py --board $(BOARD) $(if $(PORT),--port $(PORT)) $(if $(DRY_RUN),--dry-run) $(if $(MPY_ONLY),--mpy-only)

## provision: site settings + certificates onto a board (ARGS="--ssid .. --url .. --id .."; tools/provision.py --help)
provision: $(STAMP)
	$(VPY) tools/provision.py $(if $(PORT),--port $(PORT)) $(if $(DRY_RUN),--dry-run) $(ARGS)

clean:
	rm -rf build tools/emu/node_modules

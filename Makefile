# Every target sets up .venv by itself (idempotent: it reinstalls only when pyproject.toml or
# constraints.txt changed). Use pip: the local package mirror is not visible to uv or poetry.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PIP    := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: install demo test reproduce figures clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
	@$(BIN)/python -c "import ics_cli, torch, torchvision" # fail here, not later, if the install broke
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ics train --norm none --steps 2000 --out runs/demo
	$(BIN)/ics train --norm batch --steps 2000 --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf runs .pytest_cache

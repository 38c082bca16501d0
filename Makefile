# Every target sets up .venv by itself (idempotent: it reinstalls only when pyproject.toml or
# constraints.txt changed). Use pip: the local package mirror is not visible to uv or poetry.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PIP    := $(BIN)/python -m pip --disable-pip-version-check

REPRO  := runs/reproduce
# The real datasets the studies read (full MNIST, CIFAR-10): the folder beside the checkout, unless set.
export ICS_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: install demo test reproduce replicate figures clean
# Fresh seeds for `make replicate` (seeds that decided no committed verdict), and the folders it writes.
FRESH      := 10,11,12
comma      := ,
REPLICATED  = $(foreach d,$(wildcard runs/replicate/*-s$(subst $(comma),-,$(FRESH))),--replicated $(d))

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
	@$(BIN)/python -c "import ics_cli, torch, torchvision, pyarrow" # fail here, not later, if the install broke
	@touch $(STAMP)

install: $(STAMP)

# A real experiment on the embedded MNIST subset: the BN paper's MLP with four norms, then the
# comparison tables and figures (about a minute on 2 cores).
demo: $(STAMP)
	$(BIN)/ics sweep --norms none,batch,layer,group --seeds 0 --steps 2000 --log-every 50 --eval-every 50 --out runs/demo
	$(BIN)/ics compare runs/demo

# The default comparison, every study and results/report.html, into results/ (runs go to runs/reproduce and results/*/runs,
# both ignored by git; a rerun reuses finished runs).
reproduce: $(STAMP)
	@start=$$(date +%s); set -e; \
	$(BIN)/ics sweep --config configs/default-mlp.toml --out $(REPRO)/mlp; \
	$(BIN)/ics sweep --config configs/default-cnn.toml --out $(REPRO)/cnn; \
	$(BIN)/ics compare $(REPRO)/mlp $(REPRO)/cnn --out results/default; \
	echo "default comparison took $$(( $$(date +%s) - start )) s"; \
	$(BIN)/ics reproduce studies; \
	echo "default comparison and claim studies took $$(( $$(date +%s) - start )) s"; \
	$(BIN)/ics reproduce predictors; \
	$(BIN)/ics summarize results --compare results/default --sweep $(REPRO)/mlp --sweep $(REPRO)/cnn $(REPLICATED); \
	$(BIN)/ics report results -o results/report.html; \
	echo "make reproduce took $$(( $$(date +%s) - start )) s"

# Every study rerun on fresh seeds (runs/replicate/NAME-s10-11-12), then results/replication.csv and a
# README section say which committed verdicts held (about as long as the studies of `make reproduce`).
replicate: $(STAMP)
	$(BIN)/ics reproduce all --seeds $(FRESH)
	$(BIN)/ics summarize results --compare results/default --sweep $(REPRO)/mlp --sweep $(REPRO)/cnn $(REPLICATED)
	$(BIN)/ics report results -o results/report.html

# Redraw every figure in results/ from the CSVs saved there, without training: the default
# comparison, and for each study folder (one holding verdicts.csv) its compare/ figures and its own
# figures/ (`ics plot` on a study folder redraws both).
figures: $(STAMP)
	$(BIN)/ics plot results/default
	@set -e; for verdicts in results/*/verdicts.csv; do \
	  echo "$(BIN)/ics plot $${verdicts%/verdicts.csv}"; $(BIN)/ics plot $${verdicts%/verdicts.csv}; \
	done

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf runs .pytest_cache

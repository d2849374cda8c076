# gsbench: `make run` and `make test` set everything up on a fresh machine, then do their job.
# A torch already importable in the Python you use (e.g. your CUDA build) is kept: the venv sees the
# system site-packages, and torch==$(TORCH_VERSION) is installed only when no torch imports.

PYTHON        ?= python3
VENV          ?= .venv
PY            := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
STAMP         := $(VENV)/.gsbench-installed
RUN_ARGS      ?= preset=quick
PYTEST_ARGS   ?= --durations=15

.PHONY: help setup run test test-fast lint bench clean

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# triton (CPU interpreter in the tests) and wandb are optional for users but part of the test set-up.
EXTRAS        ?= dev,launchers,triton,wandb,codecs

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv --system-site-packages $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "torch==$(TORCH_VERSION)"
	$(PY) -m pip install -e ".[$(EXTRAS)]"
	@touch $@

setup: $(STAMP)  ## create .venv and install gsbench with its dependencies

run: $(STAMP)  ## fit GaussianImage on the bundled sample photos and print the results table
	$(PY) -m gsbench $(RUN_ARGS)

test: $(STAMP)  ## run the test suite (CPU; slow tests included; about 5 minutes)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP)  ## the tests not marked slow
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff
	$(PY) -m ruff check src tests benchmarks scripts

bench: $(STAMP)  ## CPU timing of one training step (768x512, 10k Gaussians)
	$(PY) benchmarks/train_step.py

clean:  ## remove outputs and caches (keeps .venv)
	rm -rf outputs multirun .pytest_cache .ruff_cache

# ---- reports and paper reproductions (issue 6: src/gsbench/report, experiments/, docs/reports.md) ----
# `make report` reads every record below $(RESULTS) and writes $(RESULTS)/report/. Each reproduce-* target
# runs one experiments/*.yaml sweep into $(RESULTS)/<experiment>/ (re-running resumes it), then its report.
# They refuse without a CUDA GPU unless FORCE=1. reproduce-instantgi-kodak needs INSTANT_GI_CHECKPOINT.
RESULTS     ?= results
REPORT_ARGS ?=
FORCE       ?=
REPRODUCE   = FORCE=$(FORCE) $(PY) -m gsbench.report.reproduce --results $(RESULTS)

.PHONY: report reproduce-all reproduce-gipp-table1 reproduce-gipp-table2 reproduce-gipp-codec \
	reproduce-gi-kodak reproduce-imagegs-table1 reproduce-instantgi-kodak

report: $(STAMP)  ## tables, RD curves, BD-rate, speed, paper-vs-ours: results/ -> results/report/
	$(PY) -m gsbench.report $(RESULTS) --out $(RESULTS)/report --experiment experiments $(REPORT_ARGS)

reproduce-gipp-table1: $(STAMP)
	$(REPRODUCE) experiments/gipp_table1.yaml

reproduce-gipp-table2: $(STAMP)
	$(REPRODUCE) experiments/gipp_table2.yaml

reproduce-gipp-codec: $(STAMP)
	$(REPRODUCE) experiments/gipp_codec.yaml

reproduce-gi-kodak: $(STAMP)
	$(REPRODUCE) experiments/gi_kodak.yaml

reproduce-imagegs-table1: $(STAMP)
	$(REPRODUCE) experiments/imagegs_table1.yaml

reproduce-instantgi-kodak: $(STAMP)
	$(REPRODUCE) experiments/instantgi_kodak.yaml

# The first paper-setting fits a CPU allows: gi and gi_pp, 10,000 Gaussians, 50,000 iterations, the official
# kernels' quirks (as the gipp_table1 sweep), kodim01, one thread each side by side. Hours: the fits save
# their state every 5 minutes, so running the target again goes on where a stopped run was.
CPU_FIT = OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 $(PY) -m gsbench dataset=kodak 'dataset.images=[kodim01]' \
          gaussians=10000 device=cpu render.legacy_tile_cap=true render.legacy_cholesky_grad=true
.PHONY: paper-cpu-kodim01  # (not the pattern targets: make skips pattern rules for phony targets)

paper-cpu-kodim01:  ## gi and gi_pp at the paper's setting on kodim01 on a CPU (hours; resumable) -> results/cpu_kodim01/
	$(MAKE) -j2 paper-cpu-kodim01-gi paper-cpu-kodim01-gi_pp

paper-cpu-kodim01-%: $(STAMP)
	$(CPU_FIT) method=$* hydra.run.dir=$(RESULTS)/cpu_kodim01/$*_represent_g10000_50k

reproduce-all: reproduce-gi-kodak reproduce-imagegs-table1 reproduce-gipp-table1 reproduce-gipp-table2 reproduce-gipp-codec  ## run every paper sweep (GPU, ~55 h; reproduce-<name> for one), then reports
# ---- end of reports and paper reproductions ----

# ---- GPU check (scripts/gpu_check.py; README "On your own GPU") ----
# `make gpu-wheels` (with network) puts into .whl/ the wheels of the dependencies a bare CUDA image lacks,
# for CPython $(GPU_PY_VERSION) on x86-64 Linux, and kodim01; `make gpu-check` then needs no network.
# gpu-check uses the Python that holds your CUDA torch: .venv's if there is one, else python3.
GPU_PY_VERSION ?= 3.12
GPU_PYTHON     ?= $(if $(wildcard $(PY)),$(PY),python3)
GPU_WHEELS     ?= hydra-core==1.3.8 omegaconf==2.3.1 pytorch-msssim==1.0.0 pytorch_optimizer==4.1.0 \
                  constriction==0.5.0 flip-evaluator==1.7 bjontegaard==1.3.0
GPU_PLATFORMS  := $(foreach p,manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64,--platform $(p))
KODIM01        ?= $(firstword $(wildcard data/kodak/kodim01.png ../shared/data/kodak/kodim01.png $(GSBENCH_DATA)/kodak/kodim01.png))

.PHONY: gpu-wheels gpu-check aot-check

gpu-wheels:  ## download the GPU check's missing dependencies (+ kodim01) into .whl/
	mkdir -p .whl/data/kodak
	$(PYTHON) -m pip download --no-deps --only-binary=:all: --python-version $(GPU_PY_VERSION) --implementation cp \
		$(GPU_PLATFORMS) -d .whl $(GPU_WHEELS)
	$(PYTHON) -m pip wheel --no-deps -w .whl antlr4-python3-runtime==4.9.3  # sdist only on PyPI: a pure-Python wheel
	@if [ -n "$(KODIM01)" ]; then cp $(KODIM01) .whl/data/kodak/; else echo "kodim01.png not found: put it in .whl/data/kodak/"; fi
	@du -sh .whl

gpu-check:  ## GPU: kernel tests compiled, FPS, timed fits -> results/gpu/<gpu>/ (GPU_CHECK_DRY=1: CPU dry run)
	$(GPU_PYTHON) scripts/gpu_check.py

aot-check: $(STAMP)  ## compile every kernel configuration for sm_80/89/90/100 (CPU, ~15 min)
	mkdir -p outputs && TRITON_INTERPRET=0 $(PY) -m gsbench.kernels.aot --space full --out outputs/aot_full.jsonl

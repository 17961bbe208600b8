# One-command set-up: every target creates .venv when it is missing and is quick when it is already there.
#   make demo   the main job on the shipped defaults (generates a bag, runs the nodes, writes PNGs to outputs/demo)
#   make test   the whole test suite
#   make bench  benchmarks, JSON written to benchmarks/results/
#   make data   the generated sets the paper experiments read (outputs/data/{syn_train,real_train,real_test,syn_pose})
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EXTRAS ?= ros,train,test
# Tests and benchmarks must not inherit a user's DDS transport overrides.
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup demo test test-fast bench data real-data lint clean

setup: $(STAMP)

$(STAMP): setup.py setup.cfg
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch is pinned in the 'train' extra to the CPU build that is available locally.
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	@touch $(STAMP)

# Real captured data from the system package registry (RealSense SR300 frames); best effort, tests skip without it.
real-data:
	@if [ -d /usr/share/visp-images-data/ViSP-images/mbt-depth ]; then echo "real data: present"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && apt-get install -y -qq visp-images-data >/dev/null) \
		&& echo "real data: installed" || echo "real data: could not install visp-images-data (tests that need it will skip)"; \
	else echo "real data: needs root and apt-get to install visp-images-data (tests that need it will skip)"; fi

demo: $(STAMP)
	$(PY) -m dcl_arc_ros.demo --out outputs/demo

test: $(STAMP) real-data
	$(PY) -m pytest tests -q -p no:cacheprovider

test-fast: $(STAMP)
	$(PY) -m pytest tests -q -m "not slow and not graph" -p no:cacheprovider

bench: $(STAMP)
	$(PY) -m benchmarks.run_all --out benchmarks/results

# The generated sets of the paper experiments (training/evaluate_*.py), with the seeds their results used; syn_pose
# (1,440 more synthetic frames, 1.4 GB) is the pose experiment's extra training data. A finished set is skipped (the
# generator resumes from its manifest); about 15 minutes on 2 cores.
GENERATE := $(PY) -m dcl_arc_ros.sim.generate
data: $(STAMP)
	$(GENERATE) --out outputs/data/syn_train --scenes 48 --frames-per-scene 6 --sensor empirical \
		--family synthetic --seed 1000 --scenes-per-bag 8
	$(GENERATE) --out outputs/data/real_train --scenes 24 --frames-per-scene 4 --sensor active_stereo \
		--family real_like --seed 5000 --scenes-per-bag 6
	$(GENERATE) --out outputs/data/real_test --scenes 12 --frames-per-scene 4 --sensor active_stereo \
		--family real_like --seed 9000 --scenes-per-bag 4
	$(GENERATE) --out outputs/data/syn_pose --scenes 240 --frames-per-scene 6 --sensor empirical \
		--family synthetic --seed 20000 --scenes-per-bag 20

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check --exclude "*.md" .
	$(VENV)/bin/mypy dcl_arc_ros

clean:
	rm -rf build install log outputs .pytest_cache

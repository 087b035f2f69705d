# Thin wrappers over scripts/setup, CMake presets and ctest. Each target installs what is missing
# first (scripts/setup is quiet and quick when everything is present).
#   make run              build in Release and train the default network on Fashion-MNIST
#   make test             build with warnings as errors and run the whole test suite
#   make bench            backprop against OpenBLAS, BLIS, oneDNN and PyTorch: one table, also
#                         written to bench/results/bench.md (about 8 minutes; not part of test)
#   make bench-accuracy   the accuracy reference runs of the README (minutes; not part of test)
JOBS ?= $(shell nproc)
MAKEFLAGS += --no-print-directory
RUN_FLAGS ?=

.PHONY: run test build setup bench bench-accuracy clean

setup:
	@scripts/setup

build: setup
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)

run: build
	build/release/backprop train --save model.safetensors $(RUN_FLAGS)

test: setup
	cmake --preset test
	cmake --build --preset test -j $(JOBS)
	ctest --preset test -j $(JOBS)

# bench/run.py configures and builds the `bench` preset (build/bench) itself. BENCH_FLAGS is passed
# through (bench/run.py --help).
BENCH_FLAGS ?=
bench:
	@scripts/setup --bench
	BACKPROP_MAKE_BENCH=1 /usr/bin/python3 bench/run.py $(BENCH_FLAGS)

bench-accuracy: build
	bench/accuracy.sh

clean:
	rm -rf build

# Thin wrappers over scripts/setup, CMake presets and ctest. Each target installs what is missing
# first (scripts/setup is quiet and quick when everything is present).
#   make run              build in Release and train the default network on Fashion-MNIST
#   make test             build with warnings as errors and run the whole test suite
#   make bench-accuracy   the accuracy reference runs of the README (minutes; not part of test)
JOBS ?= $(shell nproc)
MAKEFLAGS += --no-print-directory
RUN_FLAGS ?=

.PHONY: run test build setup bench-accuracy clean

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

bench-accuracy: build
	bench/accuracy.sh

clean:
	rm -rf build

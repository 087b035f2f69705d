# Thin wrappers over scripts/setup, CMake presets and ctest. Each target installs what is missing
# first (scripts/setup is quiet and quick when everything is present), and only what it needs.
#   make run              install the build packages, build the backprop binary (Release) and
#                         train the default network on Fashion-MNIST
#   make test             build with warnings as errors and run the whole suite once (unit,
#                         gradient checks, CLI, interop, MPI, Python package, report in Chromium,
#                         reliability catalogue, fault-injection short trials, fuzz corpus replay)
#   make check            what CI runs after make test: the suite under ASan + UBSan, the threaded
#                         tests under TSan, and each fuzz target for 60 s (with clang-14;
#                         docs/reliability.md)
#   make test-long        the fault-injection tests with 200 SIGKILL trials and 50 signal trials,
#                         and each fuzz target for 10 minutes (not part of test or check)
#   make bench            backprop against OpenBLAS, BLIS, oneDNN and PyTorch: one table, also
#                         written to bench/results/bench.md (about 9 minutes; not part of test);
#                         then 2 MPI ranks against 2 threads (bench/mpi_bench.py, bench/results/mpi.md)
#   make bench-scaling    samples/s against the thread count (1, 2, 4, ... cores, and --threads 0),
#                         ours and PyTorch's, for (a)-(d): bench/results/scaling.md (minutes)
#   make bench-python     backprop.MLPClassifier against the CLI, scikit-learn's MLPClassifier and
#                         PyTorch (bench/python_bench.py, bench/results/python.md; minutes)
#   make bench-accuracy   the accuracy reference runs of the README (minutes; not part of test)
JOBS ?= $(shell nproc)
MAKEFLAGS += --no-print-directory
RUN_FLAGS ?=

.PHONY: run test check test-long build setup bench bench-scaling bench-python bench-accuracy clean

setup:
	@scripts/setup

# Only the binary: not the examples or the fuzz corpus replays (make test builds those).
build: setup
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS) --target backprop_cli

run: build
	build/release/backprop train --save model.safetensors $(RUN_FLAGS)

# The tests the TSan build runs: everything that starts threads (the pool, the threaded GEMM, the
# training loop and what calls it, the sharded paths with ranks as threads). The tsan test preset
# filters ctest to the same list.
TSAN_TESTS = kernels_gemm_test kernels_math_test kernels_parallel_test parallel_thread_pool_test \
             train_test fit_test model_test optimizer_test data_shard_test
FUZZ_SECONDS ?= 60

test:
	@scripts/setup --test
	cmake --preset test
	cmake --build --preset test -j $(JOBS)
	ctest --preset test -j $(JOBS)

check:
	@scripts/setup --check
	cmake --preset asan
	cmake --build --preset asan -j $(JOBS)
	ctest --preset asan -j $(JOBS)
	cmake --preset tsan
	cmake --build --preset tsan -j $(JOBS) --target $(TSAN_TESTS)
	ctest --preset tsan -j $(JOBS)
	fuzz/run.sh --seconds $(FUZZ_SECONDS)

test-long:
	@scripts/setup --check
	cmake --preset test
	cmake --build --preset test -j $(JOBS)
	BACKPROP_FAULT_TRIALS=200 BACKPROP_SIGNAL_TRIALS=50 \
	  ctest --preset test -R '^reliability_fault_injection_test\.(Sigkill|Signals)' -V
	fuzz/run.sh --seconds 600

# bench/run.py configures and builds the `bench` preset (build/bench) itself. BENCH_FLAGS is passed
# through (bench/run.py --help).
BENCH_FLAGS ?=
bench:
	@scripts/setup --bench
	BACKPROP_MAKE_BENCH=1 /usr/bin/python3 bench/run.py $(BENCH_FLAGS)
	/usr/bin/python3 bench/mpi_bench.py

SCALING_FLAGS ?=
bench-scaling:
	@scripts/setup --bench
	/usr/bin/python3 bench/scaling.py $(SCALING_FLAGS)

PYBENCH_FLAGS ?=
bench-python:
	@scripts/setup --bench
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS) --target backprop_cli backprop_python
	/usr/bin/python3 bench/python_bench.py --output bench/results/python.md $(PYBENCH_FLAGS)

bench-accuracy: build
	bench/accuracy.sh

clean:
	rm -rf build

# fieldsync: the two commands are `make run` and `make test`.
# Both install the dependencies (deploy/install-deps.sh), configure with Ninja
# and ccache through CMakePresets.json, and build only what they need.

JOBS ?= $(shell nproc)
LISTEN ?= 127.0.0.1:50051
DATA_DIR ?= ./var/data
CTEST_ARGS ?=
export CCACHE_BASEDIR := $(CURDIR)
# Debug builds (-g) hash the working directory unless told not to, so a fresh
# clone elsewhere (CI, a helper's worktree) missed every object: with this, a
# clone of the same sources hits the shared cache (debug info then names the
# directory of the first build; nothing else depends on it).
export CCACHE_NOHASHDIR := 1
export CCACHE_MAXSIZE ?= 5G

# `make fuzz`: the push fuzz target (tests/fuzz) built with clang, ASan and
# UBSan (preset `fuzz`) and run for FUZZ_SECONDS over the checked-in corpus
# tests/fuzz/corpus/push (read only: new inputs go to build/fuzz/corpus/push,
# crash inputs to build/fuzz/artifacts/).
FUZZ_SECONDS ?= 600

# `make tsa`: the whole tree (tests and benchmarks off) built with clang-14's
# thread-safety analysis as errors (preset `tsa`): every ABSL_GUARDED_BY and
# ABSL_EXCLUSIVE_LOCKS_REQUIRED is checked. A build only: nothing runs.

.PHONY: run test bench deps build-dev build-release asan tsa fuzz format clean

deps:
	@bash deploy/install-deps.sh

build/dev/build.ninja:
	cmake --preset dev

build/release/build.ninja:
	cmake --preset release

build/asan/build.ninja:
	cmake --preset asan

build/fuzz/build.ninja:
	cmake --preset fuzz

build/tsa/build.ninja:
	cmake --preset tsa

build-dev: deps build/dev/build.ninja
	cmake --build build/dev -j $(JOBS)

build-release: deps build/release/build.ninja
	cmake --build build/release -j $(JOBS) --target fieldsyncd fieldctl

# `make run`: on the first start of an empty DATA_DIR the server loads the demo
# county (--demo=county, server/demo.h) and prints three fieldctl commands;
# later starts serve what is there. `make run DEMO=` starts without it.
DEMO ?= county
run: build-release
	mkdir -p $(DATA_DIR)
	./build/release/server/fieldsyncd --listen=$(LISTEN) --data_dir=$(DATA_DIR) \
	  $(if $(DEMO),--demo=$(DEMO) --demo_fieldctl=./build/release/clients/fieldctl/fieldctl)

test: build-dev
	cd build/dev && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# `make bench`: the benchmarks only (not the tests), release build. Each run
# prints one JSON document with its ratio against a baseline measured in the
# same run (bench/README.md); BENCH_ARGS_PUSH=--preload=N adds the grown-store run.
BENCH_ARGS_STORAGE ?=
BENCH_ARGS_PUSH ?=
bench: deps build/release/build.ninja
	cmake --build build/release -j $(JOBS) --target storage_bench push_bench stream_bench fieldsyncd
	./build/release/bench/storage_bench $(BENCH_ARGS_STORAGE)
	./build/release/bench/push_bench $(BENCH_ARGS_PUSH)
	./build/release/bench/stream_bench

asan: deps build/asan/build.ninja
	cmake --build build/asan -j $(JOBS)
	cd build/asan && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

tsa: deps build/tsa/build.ninja
	cmake --build build/tsa -j $(JOBS)

fuzz: deps build/fuzz/build.ninja
	cmake --build build/fuzz -j $(JOBS) --target push_fuzz
	mkdir -p build/fuzz/corpus/push build/fuzz/artifacts
	./build/fuzz/tests/fuzz/push_fuzz -max_total_time=$(FUZZ_SECONDS) -timeout=30 \
	  -print_final_stats=1 -artifact_prefix=build/fuzz/artifacts/ \
	  build/fuzz/corpus/push tests/fuzz/corpus/push

format:
	git ls-files '*.h' '*.cc' | xargs clang-format -i

clean:
	rm -rf build

# fieldsync: the two commands are `make run` and `make test`.
# Both install the dependencies (deploy/install-deps.sh), configure with Ninja
# and ccache through CMakePresets.json, and build only what they need.

JOBS ?= $(shell nproc)
LISTEN ?= 127.0.0.1:50051
DATA_DIR ?= ./var/data
CTEST_ARGS ?=
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_MAXSIZE ?= 5G

.PHONY: run test bench deps build-dev build-release asan format clean

deps:
	@bash deploy/install-deps.sh

build/dev/build.ninja:
	cmake --preset dev

build/release/build.ninja:
	cmake --preset release

build/asan/build.ninja:
	cmake --preset asan

build-dev: deps build/dev/build.ninja
	cmake --build build/dev -j $(JOBS)

build-release: deps build/release/build.ninja
	cmake --build build/release -j $(JOBS) --target fieldsyncd

run: build-release
	mkdir -p $(DATA_DIR)
	./build/release/server/fieldsyncd --listen=$(LISTEN) --data_dir=$(DATA_DIR)

test: build-dev
	cd build/dev && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

bench: deps build/release/build.ninja
	cmake --build build/release -j $(JOBS)
	./build/release/bench/storage_bench
	./build/release/bench/push_bench

asan: deps build/asan/build.ninja
	cmake --build build/asan -j $(JOBS)
	cd build/asan && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

format:
	git ls-files '*.h' '*.cc' | xargs clang-format -i

clean:
	rm -rf build

# TrustWarden entry points (see README.md).
JOBS     ?= $(shell nproc)
BUILD    ?= build
GENERATOR = -G Ninja

.PHONY: bootstrap build test run bench demo demo-federation python-install test-asan fuzz format check-format clean

bootstrap:
	@scripts/bootstrap

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) $(GENERATOR) -DCMAKE_BUILD_TYPE=Release

build: bootstrap $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

test: build check-format
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# The server on the embedded defaults: SQLite and a software CA key in ./trustwarden-data,
# trust domain "trustwarden", https://127.0.0.1:8443.
run: build
	$(BUILD)/bin/trustwarden server

bench: build
	scripts/bench $(BUILD)

# The incident story through the SDK: against TRUSTWARDEN_SERVER when it is set, otherwise
# against a throwaway server.
demo: build
	scripts/demo $(BUILD)

# The smart city: traffic.city and energy.city federated both ways, an agent of each talking
# over mTLS, the caller revoked in its own domain and refused in the other.
demo-federation: build
	scripts/demo_federation $(BUILD)

# The Python SDK's wheel (built by `make build` for TW_PYTHON, default the python3 on PATH),
# installed offline with pip for that interpreter.
python-install: build
	cmake --build $(BUILD) --target python-install

build-asan/build.ninja:
	CXX=clang++ cmake -S . -B build-asan $(GENERATOR) -DCMAKE_BUILD_TYPE=Debug -DTW_SANITIZE=ON

test-asan: bootstrap build-asan/build.ninja
	cmake --build build-asan -j $(JOBS)
	ctest --test-dir build-asan --output-on-failure -j $(JOBS)

build-fuzz/build.ninja:
	CXX=clang++ cmake -S . -B build-fuzz $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTW_FUZZ=ON

FUZZ_SECONDS ?= 20
fuzz: bootstrap build-fuzz/build.ninja
	cmake --build build-fuzz -j $(JOBS) --target fuzzers
	scripts/fuzz build-fuzz $(FUZZ_SECONDS)

SOURCES = $(shell git ls-files '*.h' '*.cc' 2>/dev/null || find src -name '*.h' -o -name '*.cc')

format:
	clang-format -i $(SOURCES)

check-format:
	@clang-format --dry-run --Werror $(SOURCES)

clean:
	rm -rf build build-asan build-fuzz

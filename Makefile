# The two set-up commands of the README:
#   make demo   installs what is missing, builds, and trains a small model on the bundled text
#   make test   installs what is missing, builds, and runs the whole suite through ctest
# (plus the unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer).
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
# Seconds each fuzz target runs: `make fuzz` (and CI's short pass in `make test`, FUZZ_CI_SECONDS).
FUZZ_SECONDS ?= 60
FUZZ_CI_SECONDS ?= 4

.PHONY: demo test deps test-deps build build-asan build-fuzz fuzz bench clean format

deps:
	@bash scripts/install-deps.sh

test-deps:
	@bash scripts/install-deps.sh --test-fixtures

# The same settings as CMakePresets.json's "release" and "sanitize" presets.
build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHIBARI_SANITIZE=ON -DHIBARI_BENCH=OFF >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# libFuzzer targets of fuzz/, built by clang in their own folder (the GCC builds are untouched).
build-fuzz: deps
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" -DHIBARI_FUZZ=ON \
	  -DHIBARI_TESTS=OFF -DHIBARI_BENCH=OFF >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_targets

fuzz: build-fuzz
	cd $(FUZZ_BUILD)/fuzz && FUZZ_SECONDS=$(FUZZ_SECONDS) ctest --output-on-failure -L fuzz -j $(JOBS)

demo: build
	bash scripts/demo.sh $(BUILD)/hibari

test: test-deps build build-asan
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS) -L unit
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_CI_SECONDS)

bench: build
	bash bench/run.sh $(BUILD)

format:
	find core kernels model optim train cli tests bench data -name '*.cpp' -o -name '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

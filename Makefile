# condlora build. `make` builds libcondlora.a and the condlora CLI; `make test` runs every test; `make asan` runs
# them under AddressSanitizer + UBSan; `make fuzz FUZZ_SECONDS=600` runs each libFuzzer target; `make bench` runs the
# benchmarks against PyTorch. Missing system packages are installed by scripts/setup.sh (called automatically).
CC       ?= cc
BUILD    ?= build
OPT      ?= -O2 -march=native
BLAS_INC ?= /usr/include/x86_64-linux-gnu/openblas-openmp
BLAS_LIB ?= /usr/lib/x86_64-linux-gnu/openblas-openmp
# -fvisibility=hidden + CONDLORA_BUILD: libcondlora.so exports only what include/condlora.h declares (CL_API)
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wno-format-zero-length -fopenmp -g $(OPT) \
            -fPIC -fvisibility=hidden -DCONDLORA_BUILD -Iinclude -Isrc -I$(BLAS_INC)
LDLIBS   += -L$(BLAS_LIB) -Wl,-rpath,$(BLAS_LIB) -lopenblas -llapacke -lpcre2-8 -lutf8proc -lcjson -lpng -lmvec -lm -fopenmp
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# MPI (issue 18): built into the CLI when mpicc is found (make MPI=0 leaves it out); the library links no MPI.
# Decided when the recipes run, after scripts/setup.sh may have installed it: $(BUILD)/mpi.flags holds the compile
# flags and the link flags on two lines, rewritten only when they change (which rebuilds tools/mpi_comm.o).
MPI      ?= 1

LIB_SRC  := $(sort $(wildcard src/*/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TOOL_SRC := $(sort $(wildcard tools/*.c))
TOOL_OBJ := $(TOOL_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
PY_TESTS := $(sort $(wildcard tests/py/test_*.py))
SH_TESTS := $(sort $(wildcard tests/test_*.sh))
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))
DEPS     := $(BUILD)/.deps-ok

VERSION  := $(shell sed -n 's/^\#define CONDLORA_VERSION "\(.*\)"/\1/p' include/condlora.h)
SOMAJOR  := $(firstword $(subst ., ,$(VERSION)))
SOLIB    := $(BUILD)/libcondlora.so.$(VERSION)
PREFIX   ?= /usr/local

.PHONY: all test asan fuzz bench clean setup parity install FORCE
.SECONDARY:
all: $(BUILD)/condlora $(BUILD)/libcondlora.so

$(DEPS): scripts/setup.sh
	@bash scripts/setup.sh
	@mkdir -p $(BUILD) && touch $@

$(BUILD)/%.o: %.c | $(DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libcondlora.a: $(LIB_OBJ)
	ar rcs $@ $^

# the shared library: soname libcondlora.so.MAJOR, its own dependencies linked in (DT_NEEDED)
$(SOLIB): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libcondlora.so.$(SOMAJOR) $(CFLAGS) $^ $(LDLIBS) -o $@
$(BUILD)/libcondlora.so: $(SOLIB)
	ln -sf libcondlora.so.$(VERSION) $(BUILD)/libcondlora.so.$(SOMAJOR)
	ln -sf libcondlora.so.$(VERSION) $@

# make install PREFIX=DIR: the CLI, the header, both libraries and condlora.pc (pkg-config)
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BUILD)/condlora $(DESTDIR)$(PREFIX)/bin/condlora
	install -m 644 include/condlora.h $(DESTDIR)$(PREFIX)/include/condlora.h
	install -m 644 $(BUILD)/libcondlora.a $(DESTDIR)$(PREFIX)/lib/libcondlora.a
	install -m 755 $(SOLIB) $(DESTDIR)$(PREFIX)/lib/libcondlora.so.$(VERSION)
	ln -sf libcondlora.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libcondlora.so.$(SOMAJOR)
	ln -sf libcondlora.so.$(SOMAJOR) $(DESTDIR)$(PREFIX)/lib/libcondlora.so
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' -e 's|@BLAS_LIB@|$(BLAS_LIB)|g' \
	    condlora.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/condlora.pc

$(BUILD)/mpi.flags: FORCE | $(DEPS)
	@if [ "$(MPI)" != 0 ] && command -v mpicc >/dev/null 2>&1; then \
	    f="-DCONDLORA_MPI $$(mpicc --showme:compile)"; l="$$(mpicc --showme:link)"; else f=""; l=""; fi; \
	new=$$(printf '%s\n%s' "$$f" "$$l"); [ "$$(cat $@ 2>/dev/null)" = "$$new" ] || printf '%s\n' "$$new" > $@
$(BUILD)/tools/mpi_comm.o: tools/mpi_comm.c $(BUILD)/mpi.flags | $(DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $$(sed -n 1p $(BUILD)/mpi.flags) -MMD -MP -c $< -o $@

$(BUILD)/condlora: $(TOOL_OBJ) $(BUILD)/libcondlora.a $(BUILD)/mpi.flags
	$(CC) $(CFLAGS) $(TOOL_OBJ) $(BUILD)/libcondlora.a $(LDLIBS) $$(sed -n 2p $(BUILD)/mpi.flags) -o $@
FORCE:

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/libcondlora.a
	$(CC) $(CFLAGS) $< $(BUILD)/libcondlora.a $(LDLIBS) -o $@

# bf16 mode's tests once more with the AVX512_BF16 instructions emulated (src/model/gemm_bf16.c, CL_BF16_EMULATE):
# the object defines every symbol of gemm_bf16.o, so the archive's copy is not linked
$(BUILD)/emu/%.o: src/model/%.c | $(DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DCL_BF16_EMULATE -MMD -MP -c $< -o $@
$(BUILD)/emu/test_bf16.o: tests/test_bf16.c | $(DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DCL_BF16_EMULATE -MMD -MP -c $< -o $@
$(BUILD)/tests/test_bf16_emu: $(BUILD)/emu/test_bf16.o $(BUILD)/emu/gemm_bf16.o $(BUILD)/libcondlora.a
	$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

test: $(TEST_BIN) $(BUILD)/tests/test_bf16_emu $(BUILD)/condlora $(BUILD)/libcondlora.so
	@CL_BIN=$(BUILD)/condlora CL_OPT="$(OPT)" bash tests/run.sh $(TEST_BIN) $(BUILD)/tests/test_bf16_emu $(SH_TESTS) $(PY_TESTS)

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan OPT="-O1 $(SAN)" test

FUZZ_SECONDS ?= 60
fuzz: | $(DEPS)
	@mkdir -p $(BUILD)/fuzz fuzz-out
	@for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc -I$(BLAS_INC) \
	    $$f $(filter-out src/cuda/%,$(LIB_SRC)) $(filter-out -fopenmp,$(LDLIBS)) -lgomp -o $(BUILD)/fuzz/$$n || exit 1; \
	  mkdir -p fuzz-out/$$n; \
	  echo "== $$n for $(FUZZ_SECONDS)s"; \
	  $(BUILD)/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 fuzz-out/$$n fuzz/corpus/$$n 2>&1 \
	    | grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|Done' ; \
	done

# bench/bench_gemm.sh: the measured peak and the GEMMs' share of it
$(BUILD)/bench/gemm_peak: bench/gemm_peak.c $(BUILD)/libcondlora.a | $(DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(BUILD)/libcondlora.a $(LDLIBS) -o $@

bench: $(BUILD)/condlora $(BUILD)/bench/gemm_peak
	@bash bench/run.sh

setup:
	@bash scripts/setup.sh

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(TEST_BIN:=.d) $(BUILD)/emu/gemm_bf16.d $(BUILD)/emu/test_bf16.d

# Tokenizer parity against Python `tokenizers` over every sentence of ../shared/data/glue.
parity: $(BUILD)/condlora
	@bash scripts/parity.sh

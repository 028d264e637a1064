# cassette build. `make` builds build/cassette; `make test` installs what the
# tests need, builds, and runs every test; `make demo` shows the main job;
# `make install PREFIX=/usr/local` installs the binary, its manual page and
# its bash completion (both made by the binary from its option table).

CC      ?= gcc
PKGS    := libzstd libxxhash libsodium jansson sqlite3 openssl expat libmicrohttpd gnutls
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion \
           -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes -Werror
INC     := -Isrc
LIBS    := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lzstd -lxxhash -lsodium -ljansson -lsqlite3 -lexpat -lmicrohttpd -lgnutls) -lcurl -lpthread

# Two variants: release-ish (O2, the shipped binary, valgrind runs) and asan
# (AddressSanitizer + UBSan, what the unit and integration tests run).
BUILD   ?= build
ifeq ($(VARIANT),asan)
BUILD   := build/asan
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDOPT   := -fsanitize=address,undefined
else
OPT     := -O2 -g
LDOPT   :=
endif
CFLAGS  += $(CSTD) $(WARN) $(INC) $(OPT)
LDFLAGS += $(LDOPT)

SRC      := $(shell find src -name '*.c' ! -path 'src/cli/main.c' | sort)
OBJ      := $(SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(BUILD)/src/cli/main.o
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

# libFuzzer targets (clang): tests/fuzz/fuzz_NAME.c with its seed corpus in
# tests/fuzz/corpus/NAME/. `make fuzz` runs each for FUZZ_SECONDS; new inputs go
# to build/fuzz/NAME.work/, never into the checked-in corpus.
FUZZ_SECONDS ?= 20
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_LIB_OBJ := $(SRC:%.c=build/fuzz/obj/%.o)

.PHONY: all asan unit tools test demo clean deps fuzz fuzz-build bench bench-cluster install FORCE
all: $(BUILD)/cassette tools

# Version and git hash compiled into main.o (`cassette --version`); the
# header is rewritten only when they change, so a build stays incremental.
VERSION ?= 0.1.0
$(BUILD)/version.h: FORCE
	@mkdir -p $(@D)
	@./scripts/version.sh '$(VERSION)' > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi
$(MAIN_OBJ): $(BUILD)/version.h
$(MAIN_OBJ): CFLAGS += -I$(BUILD)
FORCE:

# The status page (src/server/status.*, served by `cassette server`) as
# byte arrays in one generated header, so the binary needs no file beside it.
PAGE_FILES := src/server/status.html src/server/status.js src/server/status.css
%/status_html.h: $(PAGE_FILES) scripts/embed.sh
	@mkdir -p $(@D)
	@./scripts/embed.sh $(PAGE_FILES) > $@.tmp && mv $@.tmp $@
$(BUILD)/src/server/page.o: $(BUILD)/status_html.h
$(BUILD)/src/server/page.o: CFLAGS += -I$(BUILD)

$(BUILD)/libcassette.a: $(OBJ)
	@mkdir -p $(@D)
	@rm -f $@  # members are named by file name only (ops/state.o, server/state.o): build it afresh
	ar rcs $@ $^

$(BUILD)/cassette: $(MAIN_OBJ) $(BUILD)/libcassette.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libcassette.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Wno-missing-prototypes -o $@ $< $(filter %.o,$^) $(BUILD)/libcassette.a $(LDFLAGS) $(LIBS) -lcmocka

unit: $(UNIT_BIN)

# The storage driver conformance suite (tests/conformance/): linked into its
# unit test (posix and mem) and into a runner for any location, which the
# integration tests point at S3 and the other drivers that need a server.
CONF_OBJ := $(BUILD)/tests/conformance/storage_conformance.o
CONF_BIN := $(BUILD)/conformance/storage-conformance
$(BUILD)/tests/test_storage_conformance: $(CONF_OBJ)
$(CONF_BIN): tests/conformance/main.c $(CONF_OBJ) $(BUILD)/libcassette.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(CONF_OBJ) $(BUILD)/libcassette.a $(LDFLAGS) $(LIBS)

# Small programs over the library that tests and benchmarks drive
# (tests/tools/NAME.c, bench/NAME.c -> build/tools/NAME).
TOOL_SRC := $(sort $(wildcard tests/tools/*.c bench/*.c))
TOOL_BIN := $(foreach f,$(TOOL_SRC),$(BUILD)/tools/$(basename $(notdir $(f))))
$(BUILD)/tools/%: tests/tools/%.c $(BUILD)/libcassette.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libcassette.a $(LDFLAGS) $(LIBS)
$(BUILD)/tools/%: bench/%.c $(BUILD)/libcassette.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libcassette.a $(LDFLAGS) $(LIBS)

tools: $(TOOL_BIN) $(CONF_BIN)

asan:
	$(MAKE) VARIANT=asan all unit

# The library is compiled once for every target (instrumented for the
# fuzzer, not linked with its main), then each target links against it.
FUZZ_CFLAGS := $(CSTD) -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all $(INC)
build/fuzz/obj/%.o: %.c
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

build/fuzz/obj/src/server/page.o: build/fuzz/status_html.h
build/fuzz/obj/src/server/page.o: FUZZ_CFLAGS += -Ibuild/fuzz

build/fuzz/libcassette.a: $(FUZZ_LIB_OBJ)
	@rm -f $@  # members are named by file name only: built afresh, as the main library
	ar rcs $@ $^

build/fuzz/%: tests/fuzz/%.c build/fuzz/libcassette.a
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< build/fuzz/libcassette.a $(LIBS)

fuzz-build: $(FUZZ_BIN)

fuzz: fuzz-build
	@for bin in $(FUZZ_BIN); do \
	    name=$${bin#build/fuzz/fuzz_}; mkdir -p build/fuzz/$$name.work; \
	    echo "fuzz $$name: $(FUZZ_SECONDS) s"; \
	    $$bin -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=1024 -print_final_stats=0 \
	        build/fuzz/$$name.work tests/fuzz/corpus/$$name 2> build/fuzz/$$name.log \
	        || { tail -40 build/fuzz/$$name.log; exit 1; }; \
	done

deps:
	./scripts/install-deps.sh

test:
	./tests/run.sh

demo:
	./scripts/demo.sh

PREFIX  ?= /usr/local
DESTDIR ?=
$(BUILD)/cassette.1: $(BUILD)/cassette
	$(BUILD)/cassette --help-man > $@.tmp && mv $@.tmp $@
$(BUILD)/cassette.bash: $(BUILD)/cassette
	$(BUILD)/cassette completion bash > $@.tmp && mv $@.tmp $@

install: $(BUILD)/cassette $(BUILD)/cassette.1 $(BUILD)/cassette.bash
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	    $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 0755 $(BUILD)/cassette $(DESTDIR)$(PREFIX)/bin/cassette
	install -m 0644 $(BUILD)/cassette.1 $(DESTDIR)$(PREFIX)/share/man/man1/cassette.1
	install -m 0644 $(BUILD)/cassette.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/cassette

bench: all
	./bench/run

bench-cluster: all
	BENCH_NO_BUILD=1 ./bench/cluster.sh

clean:
	rm -rf build

-include $(OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(CONF_OBJ:.o=.d) $(FUZZ_LIB_OBJ:.o=.d)

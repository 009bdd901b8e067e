# Makefile for eventstore (PGXS)

EXTENSION = eventstore
EXTVERSION = 0.1.0

MODULE_big = eventstore
OBJS = \
	src/eventstore.o \
	src/guc.o \
	src/hash.o \
	src/spi.o \
	src/shmem.o \
	src/metrics.o \
	src/launcher.o \
	src/position.o \
	src/head.o \
	src/ticker.o \
	src/utility.o \
	src/event.o \
	src/stream.o \
	src/append.o \
	src/feed.o \
	src/streamscan.o \
	src/read.o \
	src/readscan.o \
	src/guard.o \
	src/gate.o

# The install script is assembled from the pieces in src/sql, in name order.
SQL_PIECES = $(sort $(wildcard src/sql/*.sql))
DATA_built = eventstore--$(EXTVERSION).sql

# -Wextra less unused-parameter: PostgreSQL's own headers, hooks and fmgr
# signatures have parameters a function need not use.
PG_CFLAGS += -Wall -Wextra -Werror -Wno-unused-parameter

REGRESS = $(basename $(notdir $(sort $(wildcard sql/*.sql))))
REGRESS_OPTS = --load-extension=eventstore

ISOLATION = $(basename $(notdir $(sort $(wildcard test/isolation/specs/*.spec))))
ISOLATION_OPTS = --inputdir=test/isolation --load-extension=eventstore

EXTRA_CLEAN = eventstore--$(EXTVERSION).sql results output_iso log \
	regression.diffs regression.out tmp_check

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

eventstore--$(EXTVERSION).sql: $(SQL_PIECES)
	cat $^ > $@

$(OBJS): $(wildcard src/*.h)

# The command-line follower (src/follow), built, installed and cleaned with
# the extension.
.PHONY: follow install-follow uninstall-follow clean-follow
all: follow
install: install-follow
uninstall: uninstall-follow
clean: clean-follow

follow:
	$(MAKE) -C src/follow PG_CONFIG=$(PG_CONFIG) EXTVERSION=$(EXTVERSION)

install-follow: follow
	$(MAKE) -C src/follow PG_CONFIG=$(PG_CONFIG) EXTVERSION=$(EXTVERSION) install

uninstall-follow:
	$(MAKE) -C src/follow PG_CONFIG=$(PG_CONFIG) uninstall

clean-follow:
	$(MAKE) -C src/follow PG_CONFIG=$(PG_CONFIG) clean

# The benchmark suite (a throwaway cluster of its own; see test/bench/run.sh).
.PHONY: bench
bench:
	bash test/bench/run.sh

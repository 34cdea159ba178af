# Builds dlfm and installs it like an HPC tool:
#     make install PREFIX=/opt/dlfm
# lays out PREFIX/bin/{dlfm,dlpatch,dlfm.pre,dlfm-pfs},
# PREFIX/lib/{libdlfm_wrap.a,libdlfm_fm.so}, PREFIX/share/man/man1/*.1 (written
# from the tools' own option definitions) and the Lmod modulefile
# PREFIX/share/modulefiles/dlfm/VERSION.lua. The install layout is owned by
# crates/dlfm-cli/src/install.rs.
#     make install-aarch64-fm PREFIX=/opt/dlfm
# adds FMCaching's interposer for aarch64 programs (PREFIX/lib/aarch64/),
# cross-built with Debian's gcc-aarch64-linux-gnu (rustup target add
# aarch64-unknown-linux-gnu): one install then serves both machines.

PREFIX ?= /usr/local
DESTDIR ?=
CARGO ?= cargo
CARGO_TARGET_DIR ?= target
BIN := $(CARGO_TARGET_DIR)/release
MAN := $(CARGO_TARGET_DIR)/man
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
DEST := $(DESTDIR)$(PREFIX)

AARCH64 := aarch64-unknown-linux-gnu

.PHONY: all build man install install-aarch64-fm uninstall

all: build

# tests/src/artifacts.rs builds the same packages (cargo unifies features over
# the packages named: another set would build libdlfm_fm.so again).
build:
	$(CARGO) build --locked --release -p dlfm -p dlpatch -p dlfm-pre -p dlfm-pfs -p dlfm-wrap -p dlfm-fm

man: build
	rm -rf $(MAN)
	$(BIN)/dlfm --write-man-pages $(MAN)
	$(BIN)/dlpatch --write-man-pages $(MAN)
	$(BIN)/dlfm-pre --write-man-pages $(MAN)
	$(BIN)/dlfm-pfs --write-man-pages $(MAN)

install: build man
	install -d $(DEST)/bin $(DEST)/lib $(DEST)/share/man/man1 $(DEST)/share/modulefiles/dlfm
	install -m 755 $(BIN)/dlfm $(BIN)/dlpatch $(BIN)/dlfm-pfs $(DEST)/bin/
	install -m 755 $(BIN)/dlfm-pre $(DEST)/bin/dlfm.pre
	install -m 644 $(BIN)/libdlfm_wrap.a $(DEST)/lib/
	install -m 755 $(BIN)/libdlfm_fm.so $(DEST)/lib/
	install -m 644 $(MAN)/*.1 $(DEST)/share/man/man1/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' packaging/modulefile.lua.in \
		> $(DEST)/share/modulefiles/dlfm/$(VERSION).lua

install-aarch64-fm:
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
		$(CARGO) build --locked --release --target $(AARCH64) -p dlfm-fm
	install -d $(DEST)/lib/aarch64
	install -m 755 $(CARGO_TARGET_DIR)/$(AARCH64)/release/libdlfm_fm.so $(DEST)/lib/aarch64/

uninstall:
	rm -f $(DEST)/bin/dlfm $(DEST)/bin/dlpatch $(DEST)/bin/dlfm.pre $(DEST)/bin/dlfm-pfs
	rm -f $(DEST)/lib/libdlfm_wrap.a $(DEST)/lib/libdlfm_fm.so $(DEST)/lib/aarch64/libdlfm_fm.so
	rmdir $(DEST)/lib/aarch64 2>/dev/null || true
	rm -f $(DEST)/share/man/man1/dlfm*.1 $(DEST)/share/man/man1/dlpatch*.1
	rm -rf $(DEST)/share/modulefiles/dlfm

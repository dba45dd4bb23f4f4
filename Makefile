# Installs liblic4es as C libraries are installed: the shared library under its full
# version with the soname link and the development link beside it, the static library,
# the C and C++ headers, and a pkg-config file.
#
#   make install PREFIX=/usr/local          # or PREFIX=/usr DESTDIR=pkgroot for a package
#   cc app.c $(pkg-config --cflags --libs lic4es)
#   cc app.c $(pkg-config --cflags --libs lic4es-static)     # linked statically
#
# Under a PREFIX the system's tools do not search (/usr/local is searched by most), point
# pkg-config at it, and the program at the library when it runs (or link an rpath):
#   PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig cc app.c $(pkg-config ...) \
#     -Wl,-rpath,$PREFIX/lib
#
# The library is the one the jar and the wheel carry: the release build under
# target/cdylib.

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR ?=
CARGO ?= cargo
TARGET_DIR ?= target/cdylib

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
MAJOR := $(firstword $(subst ., ,$(VERSION)))
BUILT := $(TARGET_DIR)/release
# What the static library needs from the system (`cargo rustc -- --print native-static-libs`).
PRIVATE_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

.PHONY: all lib install uninstall platforms

all: lib

# Each crate type by the command maturin also runs for the wheel's library: the shared
# library is built with link-time optimisation (a build that also makes the rlib skips
# it), and one build serves the wheel, the jar and the install.
lib:
	$(CARGO) rustc --profile release -p lic4es --lib --crate-type cdylib --target-dir $(TARGET_DIR)
	$(CARGO) rustc --profile release -p lic4es --lib --crate-type staticlib --target-dir $(TARGET_DIR)

install: lib
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 0755 $(BUILT)/liblic4es.so $(DESTDIR)$(LIBDIR)/liblic4es.so.$(VERSION)
	ln -sfn liblic4es.so.$(VERSION) $(DESTDIR)$(LIBDIR)/liblic4es.so.$(MAJOR)
	ln -sfn liblic4es.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/liblic4es.so
	install -m 0644 $(BUILT)/liblic4es.a $(DESTDIR)$(LIBDIR)/liblic4es.a
	install -m 0644 include/lic4es.h bindings/cpp/lic4es.hpp $(DESTDIR)$(INCLUDEDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@PRIVATE_LIBS@|$(PRIVATE_LIBS)|' \
	    bindings/c/lic4es.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/lic4es.pc
	# `pkg-config --static lic4es` only adds Libs.private: with the shared library
	# beside the archive, the linker still takes the shared one. lic4es-static names
	# the archive itself.
	sed -e 's|^Name: lic4es|Name: lic4es-static|' \
	    -e 's|^Libs: .*|Libs: $${libdir}/liblic4es.a $(PRIVATE_LIBS)|' -e '/^Libs.private:/d' \
	    $(DESTDIR)$(PKGCONFIGDIR)/lic4es.pc > $(DESTDIR)$(PKGCONFIGDIR)/lic4es-static.pc
	chmod 0644 $(DESTDIR)$(PKGCONFIGDIR)/lic4es.pc $(DESTDIR)$(PKGCONFIGDIR)/lic4es-static.pc

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/liblic4es.so.$(VERSION) $(DESTDIR)$(LIBDIR)/liblic4es.so.$(MAJOR) \
	    $(DESTDIR)$(LIBDIR)/liblic4es.so $(DESTDIR)$(LIBDIR)/liblic4es.a \
	    $(DESTDIR)$(INCLUDEDIR)/lic4es.h $(DESTDIR)$(INCLUDEDIR)/lic4es.hpp \
	    $(DESTDIR)$(PKGCONFIGDIR)/lic4es.pc $(DESTDIR)$(PKGCONFIGDIR)/lic4es-static.pc

# The shared library for the four Linux platforms the jar and the wheels carry (x86-64 and
# aarch64, glibc >= 2.17 and musl) under target/platforms/, each checked for what it needs
# from the system. Needs cargo-zigbuild and zig (pip install cargo-zigbuild ziglang) and
# the Rust targets: bindings/c/platforms.sh says which.
platforms:
	bash bindings/c/platforms.sh

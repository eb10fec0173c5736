# ngx_chat: build, run, test.
#
#   make                 build/ngx_chat_module.so against Debian's nginx-dev
#   make NGINX_SRC=DIR   ... against any nginx source tree (--with-compat)
#   make deps            install the Debian packages of every target below
#   make install         the module into Debian's nginx: PREFIX (/usr),
#                        DESTDIR; make uninstall removes it again
#   make run             demo on http://127.0.0.1:8080/ (Ctrl-C stops it)
#   make test            the t/ suite
#   make browser-deps    Chromium, Node.js and npm, t/browser's npm packages
#   make test-asan       the t/ suite against an ASan+UBSan build
#   make debug-nginx     build/debug/: Debian's nginx source (apt-get source),
#                        nginx --with-debug -O0 and the module built with it
#   make test-debug      the t/ suite on that nginx, error_log at debug
#   make fuzz            each libFuzzer target for FUZZ_SECONDS
#   make bench           every benchmark scenario, ngx_chat beside nchan
#   make bench-smoke     the same scenarios, small (under a minute)

SHELL       := /bin/bash
NGINX_SRC   ?= /usr/share/nginx/src
NGINX_BIN   ?= /usr/sbin/nginx
BUILD       := $(CURDIR)/build
FUZZ_SECONDS ?= 60
DEBUG_SRC   ?= $(BUILD)/debug/deb/nginx
DEBUG_LOG_LEVEL ?= debug

# Debian packages, by what needs them.  Each target installs the lists it
# needs (only what is missing), so each is one command on a fresh machine;
# make deps installs all of them (CI).
#
#   building (make, make install)
BUILD_PKGS = nginx nginx-dev libhiredis-dev libpq-dev libcjson-dev libssl-dev \
             gcc make
#   make run: the demo's Redis and Postgres
RUN_PKGS   = redis-server postgresql
#   the t/ suite, on top of BUILD and RUN: test-only tools go here
#   (openssl: t/013-tls.t makes its certificate; prometheus: its promtool
#   checks the metrics in t/052-prometheus.t; python3-redis: t/087-notify.t
#   runs the example consumer conf/notify-consumer.py, which the module
#   itself never needs, so it is no RUN package)
TEST_PKGS  = perl openssl prometheus python3-redis
#   the browser tests (t/110, t/111), on top of TEST: Debian's Chromium,
#   driven by playwright-core from npm (pinned in t/browser/package-lock.json,
#   installed by `npm ci`, which the tests run when it is missing; it needs
#   Node.js 18 or later, bookworm's is 18); Debian's Node.js and npm only
#   where no node and npm are installed (a Node.js of another origin, e.g.
#   nodesource's, carries its own npm and conflicts with Debian's npm)
BROWSER_PKGS = chromium $(if $(shell command -v node),,nodejs) \
               $(if $(shell command -v npm),,npm)
#   make fuzz, on top of BUILD: libFuzzer, and dpkg-source for the nginx
#   source whose ngx_string.c the jwt target links (as make debug-nginx)
FUZZ_PKGS  = clang libclang-rt-14-dev dpkg-dev
#   make bench, on top of BUILD, RUN and TEST (bench/run.pl uses t/lib)
BENCH_PKGS = libnginx-mod-nchan
#   make debug-nginx, on top of BUILD: what nginx-dev already pulls in,
#   said here: dpkg-source, and the libraries of configure's
#   --with-pcre-jit, gzip and --with-http_ssl_module
DEBUG_PKGS = dpkg-dev libpcre2-dev zlib1g-dev libssl-dev

# make install: where Debian's nginx and its libnginx-mod-* packages keep
# modules; the modules-enabled symlink points at the final path (without
# DESTDIR), as Debian's do
PREFIX      ?= /usr
SYSCONFDIR  ?= /etc
DESTDIR     ?=
MODULES_DIR        = $(PREFIX)/lib/nginx/modules
MODULES_AVAILABLE  = $(PREFIX)/share/nginx/modules-available
MODULES_ENABLED    = $(SYSCONFDIR)/nginx/modules-enabled

BENCH_CFLAGS = -O2 -g -Wall -Wextra -Werror

SRCS := config ngx_chat_module.c $(wildcard src/*.c src/*.h)

CC_OPT       = -O2 -g -fPIC
ASAN_CC_OPT  = -O1 -g -fPIC -fno-omit-frame-pointer \
               -fsanitize=address,undefined -fno-sanitize-recover=undefined
ASAN_LD_OPT  = -fsanitize=address,undefined
DEBUG_CC_OPT = -O0 -g -fPIC

.PHONY: all deps build-deps run-deps test-deps browser-deps fuzz-deps \
        bench-deps debug-deps install uninstall run test test-asan debug-nginx \
        test-debug fuzz bench bench-smoke clean

all: $(BUILD)/ngx_chat_module.so

# $(1): build dir, $(2): cc opt, $(3): ld opt, $(4): more configure flags,
# $(5): nginx source tree (default NGINX_SRC)
define ngx_chat_configure
	rm -rf $(1)/src && mkdir -p $(1)/src
	cp -a $(or $(5),$(NGINX_SRC))/. $(1)/src/
	cd $(1)/src && if [ -f conf_flags ]; then . ./conf_flags; fi \
	    && ./configure "$${NGX_CONF_FLAGS[@]:---with-compat}" $(4) \
	       --with-cc-opt="$(2)" --with-ld-opt="$(3)" \
	       --add-dynamic-module=$(CURDIR) --builddir=$(1)/objs >$(1)/configure.log \
	    || { cat $(1)/configure.log; exit 1; }
endef

$(BUILD)/nginx/objs/Makefile: config
	$(call ngx_chat_configure,$(BUILD)/nginx,$(CC_OPT),-fPIC)

$(BUILD)/ngx_chat_module.so: $(BUILD)/nginx/objs/Makefile $(SRCS)
	$(MAKE) -s -f $(BUILD)/nginx/objs/Makefile -C $(BUILD)/nginx/src modules
	cp $(BUILD)/nginx/objs/ngx_chat_module.so $@.tmp && mv $@.tmp $@

$(BUILD)/asan/objs/Makefile: config
	$(call ngx_chat_configure,$(BUILD)/asan,$(ASAN_CC_OPT),-fPIC $(ASAN_LD_OPT))

$(BUILD)/asan/ngx_chat_module.so: $(BUILD)/asan/objs/Makefile $(SRCS)
	$(MAKE) -s -f $(BUILD)/asan/objs/Makefile -C $(BUILD)/asan/src modules
	cp $(BUILD)/asan/objs/ngx_chat_module.so $@.tmp && mv $@.tmp $@

$(DEBUG_SRC)/configure:
	conf/debian-nginx-src.sh $(DEBUG_SRC)

$(BUILD)/debug/objs/Makefile: config $(DEBUG_SRC)/configure
	$(call ngx_chat_configure,$(BUILD)/debug,$(DEBUG_CC_OPT),-fPIC,\
	    --with-debug,$(DEBUG_SRC))

$(BUILD)/debug/nginx: $(BUILD)/debug/objs/Makefile
	$(MAKE) -s -f $(BUILD)/debug/objs/Makefile -C $(BUILD)/debug/src binary
	cp $(BUILD)/debug/objs/nginx $@.tmp && mv $@.tmp $@

$(BUILD)/debug/ngx_chat_module.so: $(BUILD)/debug/objs/Makefile $(SRCS)
	$(MAKE) -s -f $(BUILD)/debug/objs/Makefile -C $(BUILD)/debug/src modules
	cp $(BUILD)/debug/objs/ngx_chat_module.so $@.tmp && mv $@.tmp $@

$(BUILD)/bench/%: bench/%.c
	@mkdir -p $(BUILD)/bench
	$(CC) $(BENCH_CFLAGS) -o $@ $< -lm

BENCH_BINS = $(BUILD)/bench/chatbench $(BUILD)/bench/floor

# $(1): Debian packages; installs those missing
define ngx_chat_install
	@missing=""; for p in $(1); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null \
	        | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive \
	        apt-get install -y -q --no-install-recommends $$missing; \
	fi
endef

deps:
	$(call ngx_chat_install,$(BUILD_PKGS) $(RUN_PKGS) $(TEST_PKGS) \
	    $(BROWSER_PKGS) $(FUZZ_PKGS) $(BENCH_PKGS) $(DEBUG_PKGS))

build-deps:
	$(call ngx_chat_install,$(BUILD_PKGS))

run-deps:
	$(call ngx_chat_install,$(BUILD_PKGS) $(RUN_PKGS))

test-deps:
	$(call ngx_chat_install,$(BUILD_PKGS) $(RUN_PKGS) $(TEST_PKGS) \
	    $(BROWSER_PKGS))

browser-deps: test-deps
	@if [ ! -f t/browser/node_modules/playwright-core/package.json ]; then \
	    cd t/browser && npm ci --no-audit --no-fund; fi

fuzz-deps:
	$(call ngx_chat_install,$(BUILD_PKGS) $(FUZZ_PKGS))

bench-deps:
	$(call ngx_chat_install,$(BUILD_PKGS) $(RUN_PKGS) $(TEST_PKGS) \
	    $(BENCH_PKGS))

debug-deps:
	$(call ngx_chat_install,$(BUILD_PKGS) $(RUN_PKGS) $(TEST_PKGS) \
	    $(BROWSER_PKGS) $(DEBUG_PKGS))

# Builds, but installs no packages (make build-deps does): a package build
# runs it with DESTDIR and its own build dependencies.  install(1) unlinks
# the old .so before writing the new one, so a running nginx keeps the
# one it mapped.
install: all
	install -d $(DESTDIR)$(MODULES_DIR) $(DESTDIR)$(MODULES_AVAILABLE) \
	    $(DESTDIR)$(MODULES_ENABLED)
	install -m 644 $(BUILD)/ngx_chat_module.so \
	    $(DESTDIR)$(MODULES_DIR)/ngx_chat_module.so
	printf 'load_module %s;\n' $(MODULES_DIR)/ngx_chat_module.so \
	    >$(BUILD)/mod-chat.conf
	install -m 644 $(BUILD)/mod-chat.conf \
	    $(DESTDIR)$(MODULES_AVAILABLE)/mod-chat.conf
	ln -sfn $(MODULES_AVAILABLE)/mod-chat.conf \
	    $(DESTDIR)$(MODULES_ENABLED)/50-mod-chat.conf
	@echo
	@echo "ngx_chat: $(MODULES_ENABLED)/50-mod-chat.conf loads it into every"
	@echo "nginx that includes modules-enabled/*.conf (Debian's nginx.conf"
	@echo "does). Add the chat locations (README, \"Deploying\"), then:"
	@echo "    nginx -t && systemctl reload nginx    (or: nginx -s reload)"
	@echo "A running nginx that has loaded ngx_chat before keeps the old code"
	@echo "on reload (same path, same handle): after an upgrade, restart it:"
	@echo "    nginx -t && systemctl restart nginx"

# removes the three files of install (not the directories, which Debian's
# nginx packages own)
uninstall:
	rm -f $(DESTDIR)$(MODULES_ENABLED)/50-mod-chat.conf \
	    $(DESTDIR)$(MODULES_AVAILABLE)/mod-chat.conf \
	    $(DESTDIR)$(MODULES_DIR)/ngx_chat_module.so
	@echo "ngx_chat: removed. Take the chat directives out of the"
	@echo "configuration, then: nginx -t && systemctl reload nginx"

run: run-deps all
	conf/run-demo.sh $(BUILD) $(NGINX_BIN)

test: test-deps all
	prove -r t

test-asan: test-deps $(BUILD)/asan/ngx_chat_module.so
	CHAT_MODULE=$(BUILD)/asan/ngx_chat_module.so \
	CHAT_ASAN=$$(gcc -print-file-name=libasan.so) prove -r t

debug-nginx: debug-deps $(BUILD)/debug/nginx $(BUILD)/debug/ngx_chat_module.so

test-debug: debug-nginx
	NGINX_BIN=$(BUILD)/debug/nginx CHAT_MODULE=$(BUILD)/debug/ngx_chat_module.so \
	CHAT_TEST_LOG_LEVEL=$(DEBUG_LOG_LEVEL) prove -r t

fuzz: fuzz-deps $(BUILD)/nginx/objs/Makefile $(DEBUG_SRC)/configure
	$(MAKE) -C fuzz BUILD=$(BUILD) NGX_SOURCE=$(DEBUG_SRC) \
	    SECONDS=$(FUZZ_SECONDS) run

bench: bench-deps all $(BENCH_BINS)
	perl bench/run.pl

bench-smoke: bench-deps all $(BENCH_BINS)
	perl bench/run.pl --smoke --out $(BUILD)/bench/results

clean:
	rm -rf $(BUILD)

/* SPDX-License-Identifier: GPL-2.0-or-later */
/* TLS for the core: loads the OpenSSL module (mpopd-tls.so) when [tls] is configured and
 * calls it through its one table. Without [tls] no OpenSSL library is ever mapped: an
 * exec'd (inetd, Accept=yes) process would otherwise relocate libssl and libcrypto at every
 * connection (3.3 M instructions and ~400 KB of private pages; docs/performance.md). */
#include "tls.h"
#include "log.h"
#include "mpopd-build.h"
#include "tls-module.h"
#include "util.h"

#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

static void
log_info(const char *event, const char *message)
{
	mpop_log_event(MPOP_LOG_INFO, event, NULL, "%s", message);
}

static const MpopTlsHost host = {.log_info = log_info};

/* Set once in the process that reads the configuration (as root, before any fork), and
 * inherited by its children; never unloaded (its streams' ops and GLib quarks point into it). */
static const MpopTlsModule *module;

/* dl_iterate_phdr() callback: the RUNPATH of the first object, the executable. */
static int
executable_runpath(struct dl_phdr_info *info, size_t size, void *data)
{
	const ElfW(Dyn) *dyn = NULL;
	ElfW(Addr) strtab = 0;
	ElfW(Xword) runpath = 0;
	gboolean found = FALSE;

	for (int i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
			dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
	for (; dyn && dyn->d_tag != DT_NULL; dyn++) {
		if (dyn->d_tag == DT_STRTAB)
			strtab = dyn->d_un.d_ptr;
		else if (dyn->d_tag == DT_RUNPATH) {
			runpath = dyn->d_un.d_val;
			found = TRUE;
		}
	}
	if (found && strtab) {
		/* glibc relocates the executable's DT_STRTAB in place on most architectures
		 * (x86-64 among them), not on all: a link-time address lies below the base. */
		if (strtab < info->dlpi_addr)
			strtab += info->dlpi_addr;
		*(char **)data = g_strdup((const char *)strtab + runpath);
	}
	return 1;
}

/* The module's path. Installed, mpopd has no RUNPATH (meson drops build_rpath at install: no
 * extra library lookups at every exec) and the module is in MPOPD_TLS_MODULE_DIR. In the
 * build tree the RUNPATH names the build directory: the first of its directories that has
 * the module (else the first, for the error). Read here rather than left to dlopen()'s own
 * search, which uses the RUNPATH of the object that calls it: under ASan that is the
 * sanitizer's dlopen interceptor, not mpopd. */
static char *
module_path(void)
{
	g_autofree char *runpath = NULL;
	g_auto(GStrv) dirs = NULL;
	char *first = NULL;

	dl_iterate_phdr(executable_runpath, &runpath);
	dirs = runpath ? g_strsplit(runpath, ":", -1) : NULL;
	for (guint i = 0; dirs && dirs[i]; i++) {
		char *path;

		if (!g_path_is_absolute(dirs[i]))
			continue; /* meson's placeholder, $ORIGIN */
		path = g_build_filename(dirs[i], MPOP_TLS_MODULE_FILE, NULL);
		if (access(path, F_OK) == 0) {
			g_free(first);
			return path;
		}
		if (!first)
			first = path;
		else
			g_free(path);
	}
	return first ? first : g_strdup(MPOPD_TLS_MODULE_DIR "/" MPOP_TLS_MODULE_FILE);
}

/* The module needs nothing from the executable (util.c is linked into it and it logs
 * through MpopTlsHost), so mpopd is not linked with --export-dynamic. */
static gboolean
load_module(GError **error)
{
	g_autofree char *path = NULL;
	const MpopTlsModule *m;
	void *h;

	if (module)
		return TRUE;
	path = module_path();
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG,
			    "[tls] is configured but the TLS module %s cannot be loaded: %s", path,
			    dlerror());
		return FALSE;
	}
	m = dlsym(h, MPOP_TLS_MODULE_SYMBOL);
	if (!m || m->abi != MPOP_TLS_MODULE_ABI || m->config_size != sizeof(MpopConfig) ||
	    m->stream_size != sizeof(MpopStream) || m->state_size != sizeof(MpopTlsState)) {
		g_set_error(
			error, MPOP_ERROR, MPOP_ERROR_CONFIG,
			"the TLS module %s does not belong to this mpopd %s: %s%s", path,
			MPOPD_VERSION,
			!m ? "no " MPOP_TLS_MODULE_SYMBOL " in it"
			   : "built from other sources (ABI or structures differ), module version ",
			m && m->version ? m->version : "");
		dlclose(h);
		return FALSE;
	}
	m->set_host(&host);
	module = m;
	return TRUE;
}

MpopTlsContext *
mpop_tls_context_new(const MpopConfig *cfg, GError **error)
{
	g_autofree char *warning = NULL;
	MpopTlsContext *ctx;

	if (!load_module(error))
		return NULL;
	ctx = module->context_new(cfg, &warning, error);
	if (ctx && warning)
		mpop_log_warning("%s", warning);
	return ctx;
}

void
mpop_tls_context_free(MpopTlsContext *ctx)
{
	if (ctx)
		module->context_free(ctx);
}

gboolean
mpop_tls_start(MpopStream *st, MpopTlsContext *ctx, int timeout_ms, GError **error)
{
	g_assert(module && ctx);
	return module->start(st, ctx, timeout_ms, error);
}

void
mpop_tls_relay(MpopStream *st, int plain_fd, int timeout_ms)
{
	g_assert(module);
	module->relay(st, plain_fd, timeout_ms);
}

gboolean
mpop_tls_export(MpopStream *st, MpopTlsState *out)
{
	g_assert(module);
	return module->export(st, out);
}

gboolean
mpop_tls_resume(MpopStream *st, const MpopTlsState *state, GError **error)
{
	g_assert(module);
	return module->resume(st, state, error);
}

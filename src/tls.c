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

/* The module's path: next to the executable when it is there (the build tree, where
 * build/src holds both), else the install directory. The installed mpopd lives in sbindir,
 * which only root can write, so the first look finds nothing there. */
static char *
module_path(void)
{
	g_autofree char *exe = g_file_read_link("/proc/self/exe", NULL);

	if (exe) {
		g_autofree char *dir = g_path_get_dirname(exe);
		char *path = g_build_filename(dir, MPOP_TLS_MODULE_FILE, NULL);

		if (access(path, F_OK) == 0)
			return path;
		g_free(path);
	}
	return g_strdup(MPOPD_TLS_MODULE_DIR "/" MPOP_TLS_MODULE_FILE);
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

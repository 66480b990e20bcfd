/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mpopdctl on a systemd host: the service verbs as systemctl calls on the installed units. */
#include "mpopdctl.h"
#include "mpopd-build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

char *
mpop_ctl_systemctl_path(void)
{
	if (g_getenv("MPOPDCTL_NO_SYSTEMD") || sd_booted() <= 0)
		return NULL;
	return g_find_program_in_path("systemctl");
}

/* systemctl with up to six arguments; NULL ones are left out. flags: MPOP_CTL_SPAWN_*. */
static int
systemctl_run(int flags, const char *systemctl_bin, const char *a1, const char *a2, const char *a3,
	      const char *a4, const char *a5, const char *a6)
{
	const char *args[] = {a1, a2, a3, a4, a5, a6};
	char *argv[G_N_ELEMENTS(args) + 2] = {(char *)systemctl_bin};
	guint n = 1;

	for (guint i = 0; i < G_N_ELEMENTS(args); i++)
		if (args[i])
			argv[n++] = (char *)args[i];
	argv[n] = NULL;
	return mpop_ctl_run(argv, flags);
}

static int
systemctl6(const char *systemctl_bin, const char *a1, const char *a2, const char *a3,
	   const char *a4, const char *a5, const char *a6)
{
	return systemctl_run(0, systemctl_bin, a1, a2, a3, a4, a5, a6);
}

static int
systemctl(const char *systemctl_bin, const char *a1, const char *a2, const char *a3)
{
	return systemctl_run(0, systemctl_bin, a1, a2, a3, NULL, NULL, NULL);
}

/* is-active / is-enabled: the answer is the exit status; a unit that is not installed is
 * only "no" (systemctl would say more on stderr). */
static gboolean
systemctl_is(const char *systemctl_bin, const char *what, const char *unit)
{
	return systemctl_run(MPOP_CTL_SPAWN_NULL_STDERR, systemctl_bin, what, "--quiet", unit, NULL,
			     NULL, NULL) == 0;
}

static gboolean
unit_in_use(const char *sc, const char *unit)
{
	return systemctl_is(sc, "is-active", unit) || systemctl_is(sc, "is-enabled", unit);
}

/* Two installs: mpopd.socket (Accept=yes, one mpopd@ instance per connection, the
 * default) or mpopd-daemon.socket feeding the long-running mpopd.service (Accept=no). Each
 * has a port 995 sibling for implicit TLS (mpopd-tls.socket, mpopd-daemon-tls.socket) that
 * follows it where the admin enabled it. */
typedef struct {
	const char *sc; /* systemctl */
	gboolean daemon;
	const char *sock, *tls_sock;	       /* tls_sock NULL when not in use */
	const char *instances, *tls_instances; /* the Accept=yes sessions */
} Units;

static Units
find_units(const char *sc)
{
	Units u = {.sc = sc, .daemon = unit_in_use(sc, "mpopd-daemon.socket")};

	u.sock = u.daemon ? "mpopd-daemon.socket" : "mpopd.socket";
	u.tls_sock = u.daemon ? "mpopd-daemon-tls.socket" : "mpopd-tls.socket";
	if (!unit_in_use(sc, u.tls_sock))
		u.tls_sock = NULL;
	if (!u.daemon) {
		u.instances = "mpopd@*.service";
		u.tls_instances = u.tls_sock ? "mpopd-tls@*.service" : NULL;
	}
	return u;
}

static gboolean
is_active(const Units *u, const char *unit)
{
	return systemctl_is(u->sc, "is-active", unit);
}

static int
sd_result(int r)
{
	return r == 0 ? MPOP_CTL_OK : MPOP_CTL_FAILED;
}

/* config / reload: the daemon re-reads its file; socket-activated instances already do at
 * every connection. */
static int
sd_reload(const Units *u)
{
	if (u->daemon && is_active(u, "mpopd.service"))
		return sd_result(systemctl(u->sc, "reload", "mpopd.service", NULL));
	if (!is_active(u, u->sock)) {
		fprintf(stderr, "mpopdctl: mpopd is not running (%s is not active)\n", u->sock);
		return MPOP_CTL_NOT_RUNNING;
	}
	if (u->daemon)
		printf("nothing to reload: mpopd.service is not running; the next connection "
		       "starts it with the configuration\n");
	else
		printf("nothing to reload: socket-activated instances read the configuration at "
		       "every connection\n");
	return MPOP_CTL_OK;
}

/* refresh: end the sessions without UPDATE (SIGTERM: systemctl stop), then restart the
 * sockets, so that they bind what their units say now. */
static int
sd_refresh(const Units *u)
{
	gboolean service = u->daemon && is_active(u, "mpopd.service");
	int r;

	if (!is_active(u, u->sock)) {
		fprintf(stderr, "mpopdctl: mpopd is not running (%s is not active)\n", u->sock);
		return MPOP_CTL_NOT_RUNNING;
	}
	if (u->daemon)
		r = systemctl6(u->sc, "stop", "mpopd.service", u->sock, u->tls_sock, NULL, NULL);
	else
		r = systemctl6(u->sc, "stop", u->sock, u->tls_sock, u->instances, u->tls_instances,
			       NULL);
	if (r != 0)
		return MPOP_CTL_FAILED;
	r = systemctl6(u->sc, "start", u->sock, u->tls_sock, service ? "mpopd.service" : NULL, NULL,
		       NULL);
	if (r != 0)
		return MPOP_CTL_FAILED;
	printf("mpopd refreshed: sessions ended without UPDATE, %s%s%s restarted\n", u->sock,
	       u->tls_sock ? " and " : "", u->tls_sock ? u->tls_sock : "");
	return MPOP_CTL_OK;
}

/* -c names the file the units read, or it is refused: the units run mpopd without -c. */
gboolean
mpop_ctl_config_fits_units(const MpopCtl *ctl)
{
	g_autofree char *want = NULL, *have = NULL;

	if (!ctl->config)
		return TRUE;
	want = realpath(ctl->config, NULL);
	have = realpath(MPOPD_DEFAULT_CONFIG, NULL);
	if (want && have && strcmp(want, have) == 0)
		return TRUE;
	fprintf(stderr,
		"mpopdctl: -c %s does not apply under systemd: the units read %s (give mpopd "
		"-c FILE in ExecStart= with systemctl edit, and the same -c to mpopdctl check); "
		"MPOPDCTL_NO_SYSTEMD=1 manages a legacy daemon instead\n",
		ctl->config, MPOPD_DEFAULT_CONFIG);
	return FALSE;
}

int
mpop_ctl_systemd_verb(const MpopCtl *ctl, const char *sc)
{
	const char *v = ctl->verb;
	Units u;
	int r;

	if (ctl->port) {
		u = find_units(sc);
		fprintf(stderr,
			"mpopdctl: -p does not apply under systemd: the port is set in %s "
			"(systemctl edit %s)\n",
			u.sock, u.sock);
		return MPOP_CTL_USAGE;
	}
	if (!mpop_ctl_config_fits_units(ctl))
		return MPOP_CTL_USAGE;
	u = find_units(sc);
	if (strcmp(v, "status") == 0)
		return systemctl6(sc, "status", u.sock, u.tls_sock,
				  u.daemon ? "mpopd.service" : NULL, NULL, NULL);
	if (strcmp(v, "stop") == 0)
		return sd_result(systemctl6(sc, "stop", u.sock, u.tls_sock,
					    u.daemon ? "mpopd.service" : NULL, NULL, NULL));
	/* Everything else starts or changes what serves: the file must be valid. */
	if ((r = mpop_ctl_check_config(ctl, TRUE)) != MPOP_CTL_OK)
		return r;
	if (strcmp(v, "config") == 0 || strcmp(v, "reload") == 0)
		return sd_reload(&u);
	if (strcmp(v, "refresh") == 0)
		return sd_refresh(&u);
	/* A socket cannot be restarted under its running service: restart the service. */
	if (strcmp(v, "restart") == 0 && u.daemon)
		return sd_result(systemctl(sc, "restart", "mpopd.service", NULL));
	return sd_result(systemctl(sc, v, u.sock, u.tls_sock));
}

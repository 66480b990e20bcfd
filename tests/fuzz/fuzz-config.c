/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Fuzz the configuration loader: any input loads or fails cleanly, and a loaded one
 * survives dump -> load -> dump unchanged. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(MpopConfig) cfg =
		mpop_config_load_data((const char *)data, size, "fuzz.conf", &error);
	g_autoptr(MpopConfig) again = NULL;
	g_autofree char *d1 = NULL, *d2 = NULL;

	if (!cfg) {
		if (!error || error->domain != MPOP_ERROR || error->code != MPOP_ERROR_CONFIG ||
		    strncmp(error->message, "fuzz.conf: ", 11) != 0)
			abort();
		return 0;
	}
	d1 = mpop_config_dump(cfg);
	again = mpop_config_load_data(d1, strlen(d1), "fuzz.conf", NULL);
	if (!again)
		abort();
	d2 = mpop_config_dump(again);
	if (strcmp(d1, d2) != 0)
		abort();
	(void)mpop_config_auth_for_user(cfg, "bob");
	(void)mpop_config_user_logged(cfg, "bob");
	return 0;
}

/*
 * errors.c - fatal errors of the IDS process: one "error: ..." line on
 * stderr (after flushing what the IDS already printed), exit status 2.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "rt_internal.h"

const char *rt_site_text(uint32_t site)
{
	static char text[512];

	if (site == RT_NO_SITE || site >= __llview_nsites || !__llview_sites[site].file)
		return "an llview library call";
	snprintf(text, sizeof(text), "%s:%u:%u", __llview_sites[site].file,
		 __llview_sites[site].line, __llview_sites[site].column);
	return text;
}

void rt_die(const char *fmt, ...)
{
	va_list ap;

	rt_output_finish();
	fflush(stdout);
	fputs("error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

const char *rt_status_text(uint32_t status)
{
	switch (status) {
	case LLV_OK: return "ok";
	case LLV_UNMAPPED: return "unmapped";
	case LLV_NONCANONICAL: return "non-canonical address";
	case LLV_USER_ADDRESS: return "user-space address";
	case LLV_OUTSIDE_RAM: return "outside guest RAM";
	default: return "refused by the agent";
	}
}

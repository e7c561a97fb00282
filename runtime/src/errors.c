/*
 * errors.c - fatal errors of the IDS process: one "error: ..." line on
 * stderr (after flushing what the IDS already printed), exit status 2.
 * Under --interval, an error during a scan ends just that scan (loop.c).
 */
#include <setjmp.h>
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

	va_start(ap, fmt);
	vsnprintf(rt_last_error, sizeof(rt_last_error), fmt, ap);
	va_end(ap);
	/* Under --interval an error ends the scan (or the connection attempt),
	 * not the process: loop.c reports it. */
	if (rt_loop_armed) {
		rt_loop_armed = 0;
		rt_output_discard();
		longjmp(rt_loop_jmp, 1);
	}
	rt_output_finish();
	fflush(stdout);
	fprintf(stderr, "error: %s\n", rt_last_error);
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

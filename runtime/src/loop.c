/*
 * loop.c - a long-lived IDS: --interval SEC runs the IDS's main once every
 * SEC seconds (--count N times, default until stopped), each run a scan of
 * its own (llview_scan_begin: no guest page older than the scan's start, the
 * read budget renewed).
 *
 * An error that ends a scan (unreadable guest memory, the read limit, the
 * agent gone) ends just that scan: rt_die longjmps back here while
 * rt_loop_armed is set. A lost agent (any transport failure) is reconnected
 * with backoff (0.2 s doubling to 5 s), the guest checked and the kernel
 * symbols resolved again (it may have rebooted); the first connection's
 * failure still ends the process (status 2) as without --interval.
 *
 * --json adds after every scan {"kind":"scan","scan":N,"time":T,"ms":M,
 * "requests":R,"bytes":B} (this scan's requests and bytes sent + received;
 * T its start in Unix time), with "error" when the scan failed, "status"
 * when the IDS's main returned non-zero, and new/gone/changed counts under
 * --changes; and {"kind":"agent","event":"lost","error":E,"time":T} /
 * {"kind":"agent","event":"reconnected","time":T} around a reconnection
 * (text mode: a line on stderr). --stats prints a line per scan to stderr.
 *
 * SIGINT and SIGTERM are held during a scan and end the run after it (at
 * once while waiting for the next scan or a reconnection). Exit status: 2
 * if the last scan failed, else 1 if any scan raised an alert, else 0.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include <llview/ids.h>

#include "rt_internal.h"

#pragma GCC visibility push(hidden)
volatile int rt_loop_armed;
jmp_buf rt_loop_jmp;
char rt_last_error[1024];
int rt_transport_lost;
#pragma GCC visibility pop

#define BACKOFF_FIRST_S 0.2
#define BACKOFF_MAX_S 5.0

static double interval_s; /* 0: one scan, as without --interval */
static long count_n;      /* 0: until stopped */
static const char *count_text;

static const char *where;
static u8 saved_key[LLV_KEY_LEN];
static void (*prepare_guest)(void);
static sigset_t stop_signals;
static int stop_requested;

int rt_loop_takes_value(const char *opt)
{
	return !strcmp(opt, "--interval") || !strcmp(opt, "--count");
}

int rt_loop_option(const char *opt, const char *value)
{
	char *end;

	if (!strcmp(opt, "--interval")) {
		errno = 0;
		interval_s = strtod(value, &end);
		if (errno || end == value || *end || !isfinite(interval_s) || interval_s < 0.001 ||
		    interval_s > 86400)
			rt_die("--interval: '%s' is not a number of seconds from 0.001 to 86400", value);
	} else if (!strcmp(opt, "--count")) {
		errno = 0;
		count_n = strtol(value, &end, 10);
		if (errno || end == value || *end || count_n < 1)
			rt_die("--count: '%s' is not a number from 1 to %ld", value, __LONG_MAX__);
		count_text = value;
	} else if (!strcmp(opt, "--changes")) {
		rt_changes_mode = 1;
	} else {
		return 0;
	}
	return 1;
}

int rt_loop_wanted(void)
{
	if (!interval_s && count_text)
		rt_die("--count needs --interval (see --help)");
	if (!interval_s && rt_changes_mode)
		rt_die("--changes needs --interval (see --help)");
	return interval_s > 0;
}

static double now_s(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits until CLOCK_MONOTONIC reaches `until`; 1 when SIGINT or SIGTERM
 * came (now or during the scan before). */
static int wait_until(double until)
{
	for (;;) {
		double left = until - now_s(CLOCK_MONOTONIC);
		struct timespec ts = { 0, 0 };

		if (left > 0) {
			ts.tv_sec = (time_t)left;
			ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
		}
		if (sigtimedwait(&stop_signals, NULL, &ts) > 0) {
			stop_requested = 1;
			return 1;
		}
		if (left <= 0)
			return 0;
	}
}

static void put_json_text(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void agent_event(const char *event, const char *error)
{
	if (rt_json_mode) {
		printf("{\"kind\":\"agent\",\"event\":\"%s\"", event);
		if (error) {
			printf(",\"error\":");
			put_json_text(error);
		}
		printf(",\"time\":%.3f}\n", now_s(CLOCK_REALTIME));
		fflush(stdout);
	} else if (error) {
		fflush(stdout);
		fprintf(stderr, "llview: agent %s: %s; reconnecting\n", event, error);
	} else {
		fflush(stdout);
		fprintf(stderr, "llview: agent %s at %s\n", event, rt_agent_url);
	}
}

/* Connects, checks the guest and resolves the kernel symbols. 0, or -1
 * with the reason in rt_last_error. */
static int session_open(void)
{
	char err[512];

	if (setjmp(rt_loop_jmp)) {
		rt_transport->close();
		return -1;
	}
	rt_loop_armed = 1;
	rt_transport_lost = 0;
	int rc = rt_transport->connect(where, saved_key, rt_timeout_s, err, sizeof(err));
	if (rc == RT_E_SEE_MESSAGE)
		rt_die("agent at %s: %s", rt_agent_url, err);
	if (rc)
		rt_transport_fail(rc);
	prepare_guest();
	rt_loop_armed = 0;
	return 0;
}

/* After a lost agent: tries again with backoff until connected (0) or
 * stopped by a signal (-1). */
static int reconnect(void)
{
	double delay = BACKOFF_FIRST_S;

	rt_transport->close();
	agent_event("lost", rt_last_error);
	for (;;) {
		if (wait_until(now_s(CLOCK_MONOTONIC) + delay))
			return -1;
		rt_symbols_forget();
		if (!session_open()) {
			agent_event("reconnected", NULL);
			return 0;
		}
		delay = delay * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : delay * 2;
	}
}

/* One scan: 0, or -1 with the reason in rt_last_error. */
static int run_scan(int reprepare, int *ids_status)
{
	if (setjmp(rt_loop_jmp))
		return -1;
	rt_loop_armed = 1;
	if (reprepare) { /* a failed scan may mean a rebooted guest: look again */
		rt_symbols_forget();
		prepare_guest();
	}
	llview_scan_begin();
	*ids_status = __llview_ids_main();
	rt_output_finish();
	rt_loop_armed = 0;
	return 0;
}

int rt_loop_run(const char *where_, u8 key[LLV_KEY_LEN], void (*prepare)(void), int want_stats)
{
	unsigned long scans = 0, failed_scans = 0;
	int last_failed = 0, reprepare = 0;
	double next = now_s(CLOCK_MONOTONIC);

	where = where_;
	prepare_guest = prepare;
	memcpy(saved_key, key, LLV_KEY_LEN); /* kept for reconnections */
	OPENSSL_cleanse(key, LLV_KEY_LEN);
	/* SIGINT/SIGTERM wait for the end of a scan; a write to a closed
	 * socket is an error, not a signal. */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	sigprocmask(SIG_BLOCK, &stop_signals, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (session_open()) { /* the first connection: an error, as without --interval */
		fflush(stdout);
		fprintf(stderr, "error: %s\n", rt_last_error);
		return 2;
	}
	while (!count_n || scans < (unsigned long)count_n) {
		struct rt_stats before = rt_stats;
		double wall = now_s(CLOCK_REALTIME), start = now_s(CLOCK_MONOTONIC);
		int ids_status = 0;
		unsigned long new_n = 0, gone_n = 0, changed_n = 0;

		scans++;
		rt_transport_lost = 0;
		int ok = run_scan(reprepare, &ids_status) == 0;
		reprepare = !ok;
		if (rt_changes_mode)
			rt_changes_scan_end(ok, &new_n, &gone_n, &changed_n);
		double ms = (now_s(CLOCK_MONOTONIC) - start) * 1e3;
		unsigned long requests = (unsigned long)(rt_stats.requests - before.requests);
		unsigned long bytes = (unsigned long)(rt_stats.bytes_sent + rt_stats.bytes_received -
						      before.bytes_sent - before.bytes_received);
		if (!ok) {
			failed_scans++;
			fflush(stdout);
			fprintf(stderr, "error: scan %lu: %s\n", scans, rt_last_error);
		}
		if (rt_json_mode) {
			printf("{\"kind\":\"scan\",\"scan\":%lu,\"time\":%.6f,\"ms\":%.3f,"
			       "\"requests\":%lu,\"bytes\":%lu",
			       scans, wall, ms, requests, bytes);
			if (rt_changes_mode)
				printf(",\"new\":%lu,\"gone\":%lu,\"changed\":%lu", new_n, gone_n,
				       changed_n);
			if (ids_status)
				printf(",\"status\":%d", ids_status);
			if (!ok) {
				printf(",\"error\":");
				put_json_text(rt_last_error);
			}
			printf("}\n");
		}
		if (fflush(stdout) || ferror(stdout)) {
			fprintf(stderr, "error: cannot write the output: %s\n", strerror(errno));
			return 2;
		}
		if (want_stats)
			fprintf(stderr, "llview: scan %lu: %.3f ms, %lu requests, %lu bytes%s\n", scans,
				ms, requests, bytes, ok ? "" : " (failed)");
		last_failed = !ok;
		if (count_n && scans >= (unsigned long)count_n)
			break;
		if (!ok && rt_transport_lost) {
			if (reconnect())
				break;
			reprepare = 0;
			next = now_s(CLOCK_MONOTONIC); /* it has waited long enough */
			continue;
		}
		next += interval_s;
		if (next < now_s(CLOCK_MONOTONIC)) /* a scan longer than the interval */
			next = now_s(CLOCK_MONOTONIC);
		if (wait_until(next))
			break;
	}
	if (want_stats)
		fprintf(stderr, "llview: %lu scans (%lu failed), %lu requests, %lu bytes sent, %lu "
				"bytes received%s\n",
			scans, failed_scans, (unsigned long)rt_stats.requests,
			(unsigned long)rt_stats.bytes_sent, (unsigned long)rt_stats.bytes_received,
			stop_requested ? "; stopped by a signal" : "");
	rt_transport->close();
	OPENSSL_cleanse(saved_key, sizeof(saved_key));
	if (last_failed)
		return 2;
	return rt_alerts ? 1 : 0;
}

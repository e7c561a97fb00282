/*
 * main.c - the IDS process's real entry point: options, the key, the
 * agent connection, kernel symbol resolution, one scan of the IDS's own
 * main (renamed __llview_ids_main by the compiler), statistics and the exit
 * status.
 *
 * Exit status: the IDS main's return value when it is non-zero; otherwise
 * 1 when the IDS raised alerts (llview_alert), else 0. Errors of the
 * runtime itself (bad options, agent unreachable, unreadable guest
 * address, read limit) exit with status 2. --interval (loop.c) runs the
 * scan repeatedly instead, with its own exit status.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <llview/ids.h>

#include "llview_wire.h"
#include "rt_internal.h"

#pragma GCC visibility push(hidden)
const struct rt_transport_ops *rt_transport;
const char *rt_agent_url;
int rt_timeout_s = RT_DEFAULT_TIMEOUT;
char rt_transport_error_text[256];
#pragma GCC visibility pop


static const struct rt_transport_ops *const transports[] = { &rt_tcp_transport,
							     &rt_shm_transport };

static const char usage[] =
	"usage: %s --agent URL --key FILE [--json] [--max-reads N] [--read-ahead N]\n"
	"       [--fetch pages|walks|objects] [--timeout SEC] [--stats]\n"
	"\n"
	"An llview IDS program: reads the monitored kernel's memory through an agent.\n"
	"\n"
	"  --agent URL      the agent to read guest memory from: tcp://HOST:PORT, or\n"
	"                   shm:PATH for a shared-memory region (shm:/dev/shm/NAME)\n"
	"  --key FILE       the 32-byte pre-shared key (mode 0600, e.g. from llview keygen)\n"
	"  --json           records, alerts and printk lines as one JSON object per line\n"
	"  --max-reads N    end the scan after N guest reads (default %ld): bounds a\n"
	"                   corrupted or cyclic list\n"
	"  --read-ahead N   a miss fetches the aligned block of N pages around it in\n"
	"                   one request (a power of two up to 64; default %d)\n"
	"  --fetch MODE     walks (default): a list the program walks is fetched by\n"
	"                   the agent in one request, only the bytes the program reads\n"
	"                   of each node; objects: also an object's fields instead of\n"
	"                   the block of pages around it (fewer bytes, often more\n"
	"                   round trips); pages: page blocks only\n"
	"  --timeout SEC    how long to wait for the agent (default %d)\n"
	"  --stats          print requests, bytes, pages, hits and time to stderr at exit\n"
	"  --help           this text\n"
	"\n"
	"Exit status: the IDS's return value if non-zero, else 1 if it raised alerts,\n"
	"else 0; 2 for errors (agent unreachable, unreadable guest memory, ...).\n";

/* Printed after `usage`. */
static const char usage_loop[] =
	"\n"
	"Long-lived monitoring: ... --interval SEC [--count N] [--changes]\n"
	"  --interval SEC   run the IDS again every SEC seconds (fractions allowed), each\n"
	"                   run a new scan; --json adds after each scan {\"kind\":\"scan\",\n"
	"                   \"scan\":N,\"time\":T,\"ms\":M,\"requests\":R,\"bytes\":B} (\"error\"\n"
	"                   when it failed). An error ends just that scan; a lost agent is\n"
	"                   reconnected with backoff (0.2 s doubling to 5 s), reported as\n"
	"                   {\"kind\":\"agent\",\"event\":\"lost\"|\"reconnected\",...} (text: on\n"
	"                   stderr). SIGINT/SIGTERM end it after the current scan.\n"
	"  --count N        stop after N scans (default: until SIGINT/SIGTERM)\n"
	"  --changes        print only what changed since the previous scan: records\n"
	"                   (identified by kind and first field, or llview_record_key)\n"
	"                   with \"change\":\"new\"|\"changed\"|\"gone\" in JSON, \"+ \", \"~ \",\n"
	"                   \"- \" in text; the first scan prints all as new; an alert only\n"
	"                   when the previous scan did not raise it (docs/longlived.md)\n"
	"Exit status under --interval: 2 if the last scan failed, else 1 if any scan\n"
	"raised an alert, else 0.\n";

void rt_transport_fail(int code)
{
	rt_transport_lost = 1;
	if (code == -LLV_W_TIMEOUT)
		rt_die("agent at %s did not answer within %d s", rt_agent_url, rt_timeout_s);
	if (code == -LLV_W_CLOSED)
		rt_die("agent at %s closed the connection (wrong key, or the agent stopped)",
		       rt_agent_url);
	if (rt_transport_error_text[0])
		rt_die("agent at %s: %s: %s", rt_agent_url, llv_strerror(code),
		       rt_transport_error_text);
	if (code == -LLV_E_AUTH)
		rt_die("agent at %s: frame failed authentication (wrong key? both sides must use "
		       "the same key file)",
		       rt_agent_url);
	rt_die("agent at %s: %s", rt_agent_url, llv_strerror(code));
}

/* A fault the runtime did not catch (a guest address the compiler did not
 * route through the cache, a wild IDS pointer, a stack overflow, the ud2 of
 * a kernel header's BUG()/WARN()) still ends with a message and status 2,
 * not a bare "Segmentation fault". Only async-signal-safe calls here. */
static void on_fault(int sig, siginfo_t *info, void *context)
{
	static const char digits[] = "0123456789abcdef";
	char msg[160] = "error: ";
	size_t n = strlen(msg);
	const char *what = sig == SIGSEGV ? "segmentation fault"
			   : sig == SIGBUS ? "bus error"
			   : sig == SIGILL ? "kernel BUG()/WARN() trap (ud2)"
					   : "arithmetic fault";
	unsigned long addr = (unsigned long)info->si_addr;

	(void)context;
	memcpy(msg + n, what, strlen(what));
	n += strlen(what);
	memcpy(msg + n, " at address 0x", 14);
	n += 14;
	for (int shift = 60; shift >= 0; shift -= 4)
		msg[n++] = digits[(addr >> shift) & 15];
	const char *hint = sig == SIGILL ? " in the IDS (a kernel header's sanity check failed)\n"
					 : " in the IDS (a read llview did not instrument, or a bad "
					   "IDS pointer)\n";
	memcpy(msg + n, hint, strlen(hint));
	n += strlen(hint);
	if (write(2, msg, n) < 0)
		_exit(2);
	_exit(2);
}

static void catch_faults(void)
{
	static char alt_stack[64 * 1024];
	stack_t ss = { .ss_sp = alt_stack, .ss_size = sizeof(alt_stack) };
	struct sigaction sa = { .sa_sigaction = on_fault, .sa_flags = SA_SIGINFO | SA_ONSTACK };

	sigaltstack(&ss, NULL);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGFPE, &sa, NULL);
	sigaction(SIGILL, &sa, NULL);
}

static long parse_number(const char *opt, const char *text, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno || end == text || *end || v < min || v > max)
		rt_die("%s: '%s' is not a number from %ld to %ld", opt, text, min, max);
	return v;
}

static void resolve_kernel_symbols(void)
{
	uint32_t n = __llview_nksyms;
	const char **names;
	uint64_t *addrs;

	if (!n)
		return;
	names = calloc(n, sizeof(*names));
	addrs = calloc(n, sizeof(*addrs));
	if (!names || !addrs)
		rt_die("out of memory resolving %u kernel symbols", n);
	for (uint32_t i = 0; i < n; i++)
		names[i] = __llview_ksyms[i].name;
	int rc = rt_lookup_symbols(names, n, addrs);
	if (rc)
		rt_transport_fail(rc);
	for (uint32_t i = 0; i < n; i++) {
		if (!addrs[i])
			rt_die("kernel symbol '%s' not found in the running guest", names[i]);
		__llview_ksyms[i].addr = (void *)addrs[i];
	}
	free(names);
	free(addrs);
}

/* An IDS built for one kernel release reads another's memory with the
 * wrong struct layouts: refuse before the scan. */
static void check_kernel_release(void)
{
	struct llv_info info;

	if (!__llview_kernel_release || !__llview_kernel_release[0])
		return;
	int rc = rt_info(&info);
	if (rc)
		rt_transport_fail(rc);
	info.release[sizeof(info.release) - 1] = 0;
	/* An agent on a raw image without a located kernel knows no release. */
	if (info.release[0] && strcmp(info.release, __llview_kernel_release))
		rt_die("this IDS was built for kernel %s but the guest runs %s; rebuild it with "
		       "that kernel's headers (llview build --kernel %s)",
		       __llview_kernel_release, info.release, info.release);
}

/* Before the first scan (and after each reconnection under --interval). */
static void prepare_guest(void)
{
	check_kernel_release();
	resolve_kernel_symbols();
}

static double seconds_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void print_stats(const struct timespec *start, long budget_at_start)
{
	long reads = budget_at_start - __llview_read_budget;
	uint64_t hits = (uint64_t)reads > rt_stats.misses ? (uint64_t)reads - rt_stats.misses : 0;

	fprintf(stderr,
		"llview: %lu requests, %lu bytes sent, %lu bytes received, %lu pages fetched\n"
		"llview: %ld reads: %lu hits, %lu misses (%lu native pages, %lu straddling)\n"
		"llview: %lu walks (%lu nodes), %lu object footprints, %lu footprint bytes, "
		"%lu reads served from footprints\n"
		"llview: %.3f ms\n",
		(unsigned long)rt_stats.requests, (unsigned long)rt_stats.bytes_sent,
		(unsigned long)rt_stats.bytes_received, (unsigned long)rt_stats.pages_fetched, reads,
		(unsigned long)hits, (unsigned long)rt_stats.misses,
		(unsigned long)rt_stats.native_pages, (unsigned long)rt_stats.straddles,
		(unsigned long)rt_stats.walks, (unsigned long)rt_stats.walk_nodes,
		(unsigned long)rt_stats.footprints,
		(unsigned long)rt_stats.footprint_bytes, (unsigned long)rt_stats.partial_hits,
		seconds_since(start) * 1e3);
}

int main(int argc, char **argv)
{
	const char *key_path = NULL;
	int want_stats = 0;
	u8 key[LLV_KEY_LEN];
	char err[512];
	struct timespec start;

	clock_gettime(CLOCK_MONOTONIC, &start);
	catch_faults();
	if (argc > 0 && argv[0] && *argv[0]) {
		const char *slash = strrchr(argv[0], '/');

		rt_program = slash ? slash + 1 : argv[0];
	}
	/* An IDS that calls exit() itself still gets its last line out. */
	atexit(rt_output_finish);
	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i];
		const char *value = NULL;
		const char *eq = strchr(opt, '=');
		char name[32];

		/* --opt=value and --opt value */
		if (eq && (size_t)(eq - opt) < sizeof(name)) {
			memcpy(name, opt, (size_t)(eq - opt));
			name[eq - opt] = 0;
			opt = name;
			value = eq + 1;
		}
		int takes_value = !strcmp(opt, "--agent") || !strcmp(opt, "--key") ||
				  !strcmp(opt, "--max-reads") || !strcmp(opt, "--timeout") ||
				  !strcmp(opt, "--read-ahead") || !strcmp(opt, "--fetch");
		takes_value |= rt_loop_takes_value(opt); /* --interval, --count (loop.c) */
		if (takes_value && !value) {
			if (i + 1 >= argc)
				rt_die("%s needs a value (see --help)", opt);
			value = argv[++i];
		} else if (!takes_value && value) {
			rt_die("%s takes no value", opt);
		}
		if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
			printf(usage, argv[0], RT_DEFAULT_MAX_READS, RT_DEFAULT_READ_AHEAD, RT_DEFAULT_TIMEOUT);
			fputs(usage_loop, stdout);
			return 0;
		} else if (rt_loop_option(opt, value)) { /* --interval, --count, --changes */
		} else if (!strcmp(opt, "--agent")) {
			rt_agent_url = value;
		} else if (!strcmp(opt, "--key")) {
			key_path = value;
		} else if (!strcmp(opt, "--json")) {
			rt_json_mode = 1;
		} else if (!strcmp(opt, "--stats")) {
			want_stats = 1;
		} else if (!strcmp(opt, "--max-reads")) {
			rt_max_reads = parse_number("--max-reads", value, 1, LONG_MAX / 2);
		} else if (!strcmp(opt, "--read-ahead")) {
			long pages = parse_number("--read-ahead", value, 1, LLV_MAX_PAGES);

			if (pages & (pages - 1))
				rt_die("--read-ahead: '%s' is not a power of two", value);
			rt_read_ahead = (unsigned int)pages;
		} else if (!strcmp(opt, "--fetch")) {
			static const char *const modes[] = { [RT_FETCH_PAGES] = "pages",
							     [RT_FETCH_WALKS] = "walks",
							     [RT_FETCH_OBJECTS] = "objects" };
			size_t m = 0;

			while (m < sizeof(modes) / sizeof(modes[0]) && strcmp(value, modes[m]))
				m++;
			if (m == sizeof(modes) / sizeof(modes[0]))
				rt_die("--fetch: '%s' is not pages, walks or objects", value);
			rt_fetch = (enum rt_fetch)m;
		} else if (!strcmp(opt, "--timeout")) {
			rt_timeout_s = (int)parse_number("--timeout", value, 1, 3600);
		} else {
			rt_die("unknown option '%s' (see --help)", argv[i]);
		}
	}
	if (!rt_agent_url)
		rt_die("--agent URL is required (e.g. --agent tcp://127.0.0.1:7070; see --help)");
	if (!key_path)
		rt_die("--key FILE is required (see --help)");
	int loop = rt_loop_wanted();

	/* SCHEME:REST; a "//" after the colon is dropped (tcp://HOST:PORT,
	 * shm:/dev/shm/NAME and shm:///dev/shm/NAME all work). */
	const char *sep = strchr(rt_agent_url, ':');
	for (size_t i = 0; sep && i < sizeof(transports) / sizeof(transports[0]); i++) {
		size_t len = strlen(transports[i]->scheme);

		if ((size_t)(sep - rt_agent_url) == len &&
		    !strncmp(rt_agent_url, transports[i]->scheme, len))
			rt_transport = transports[i];
	}
	if (!rt_transport)
		rt_die("--agent '%s': unsupported URL (expected tcp://HOST:PORT or shm:PATH)",
		       rt_agent_url);
	const char *where = sep + 1;
	if (!strncmp(where, "//", 2))
		where += 2;
	else if (rt_transport == &rt_tcp_transport)
		rt_die("--agent '%s': expected tcp://HOST:PORT", rt_agent_url);

	if (llv_load_key(key_path, key, err, sizeof(err)))
		rt_die("%s", err);
	if (loop)
		return rt_loop_run(where, key, prepare_guest, want_stats);
	int rc = rt_transport->connect(where, key, rt_timeout_s, err, sizeof(err));
	/* The session has its own keys now; the pre-shared key is not needed. */
	OPENSSL_cleanse(key, sizeof(key));
	if (rc == RT_E_SEE_MESSAGE)
		rt_die("agent at %s: %s", rt_agent_url, err);
	if (rc)
		rt_transport_fail(rc);

	prepare_guest();
	llview_scan_begin();
	long budget_at_start = __llview_read_budget;
	int status = __llview_ids_main();

	rt_output_finish();
	if (fflush(stdout))
		rt_die("cannot write the output: %s", strerror(errno));
	if (want_stats)
		print_stats(&start, budget_at_start);
	rt_transport->close();
	if (!status && rt_alerts)
		status = 1;
	return status;
}

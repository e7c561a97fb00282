/*
 * shm_pingpong.c - the shared-memory transport's figures, side by side in
 * one run:
 *   1. the floor: two processes ping-ponging one 4 KiB page through shared
 *      memory with nothing else (a flag word, `pause` spinning), sealed with
 *      AES-256-GCM as llview frames and in the clear;
 *   2. one page fetched from the real host agent over its region, through
 *      the IDS runtime's own transport (runtime/src/transport_shm.c);
 *   3. the per-page cost of requests naming 8 and 64 pages;
 *   4. optionally, whole IDS processes (e.g. pslist) run against the region.
 * Rounds of each are timed and reported as median and minimum: the machine
 * has two cores and usually a QEMU guest, so read the minimum too.
 *
 *   llview-shm-pingpong --shm /dev/shm/NAME --key-file key.bin
 *       (--symbol init_task | --addr VA) [--rounds N] [--ids BINARY]...
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "llview_wire.h"
#include "rt_internal.h"

/* What transport_shm.c needs from the rest of the runtime. */
#pragma GCC visibility push(hidden)
struct rt_stats rt_stats;
int rt_timeout_s = 5;
char rt_transport_error_text[256];
const struct rt_transport_ops *rt_transport = &rt_shm_transport;
#pragma GCC visibility pop

#define REQ_PT (sizeof(struct llv_msg) + sizeof(u64))
#define REP_PT (sizeof(struct llv_msg) + sizeof(u32) + LLV_PAGE_SIZE)
#define MAX_ROUNDS 101
#define MAX_IDS 4

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "llview-shm-pingpong: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median and minimum of n samples (sorts them). */
static void summarise(double *v, int n, double *median, double *min)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	*median = v[n / 2];
	*min = v[0];
}

/* ---- 1. the floor ------------------------------------------------------- */

enum { PP_IDLE, PP_SEALED_REQ, PP_PLAIN_REQ, PP_REPLY, PP_QUIT };

struct pingpong {
	u32 flag __attribute__((aligned(64)));
	u32 len;
	u8 request[256] __attribute__((aligned(64)));
	u8 reply[sizeof(struct llv_frame_hdr) + REP_PT + LLV_TAG_LEN] __attribute__((aligned(64)));
};

static void spin_until_not(const u32 *flag, u32 value)
{
	while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) == value)
		__builtin_ia32_pause();
}

static void publish(u32 *flag, u32 value)
{
	__atomic_store_n(flag, value, __ATOMIC_RELEASE);
}

/* The server process: answers each request with the page, sealed or not. */
static void pingpong_server(struct pingpong *pp, struct llv_session *s)
{
	u8 request[REQ_PT], reply[REP_PT];
	u32 status = LLV_OK;

	memset(reply, 0x5a, sizeof(reply));
	memcpy(reply + sizeof(struct llv_msg), &status, sizeof(status));
	for (;;) {
		spin_until_not(&pp->flag, PP_IDLE);
		u32 what = __atomic_load_n(&pp->flag, __ATOMIC_ACQUIRE);

		if (what == PP_QUIT)
			_exit(0);
		if (what == PP_SEALED_REQ) {
			const struct llv_frame_hdr *h = (const struct llv_frame_hdr *)pp->request;

			if (llv_open(s, h, pp->request + sizeof(*h), request))
				_exit(3);
			pp->len = (u32)llv_seal(s, reply, sizeof(reply), pp->reply);
		} else {
			memcpy(request, pp->request, sizeof(request));
			memcpy(pp->reply, reply, sizeof(reply));
			pp->len = sizeof(reply);
		}
		publish(&pp->flag, PP_REPLY);
		spin_until_not(&pp->flag, PP_REPLY);
	}
}

/* One round trip from the client's side. */
static void pingpong_once(struct pingpong *pp, struct llv_session *s, int sealed, u8 *page)
{
	u8 request[REQ_PT] = { 0 };
	u8 reply[REP_PT];

	if (sealed) {
		llv_seal(s, request, sizeof(request), pp->request);
		publish(&pp->flag, PP_SEALED_REQ);
		spin_until_not(&pp->flag, PP_SEALED_REQ);
		if (llv_open(s, (const struct llv_frame_hdr *)pp->reply,
			     pp->reply + sizeof(struct llv_frame_hdr), reply))
			die("%s", "reference reply did not open");
	} else {
		memcpy(pp->request, request, sizeof(request));
		publish(&pp->flag, PP_PLAIN_REQ);
		spin_until_not(&pp->flag, PP_PLAIN_REQ);
		memcpy(reply, pp->reply, sizeof(reply));
	}
	memcpy(page, reply + sizeof(struct llv_msg) + sizeof(u32), LLV_PAGE_SIZE);
	publish(&pp->flag, PP_IDLE);
}

struct floor {
	struct pingpong *pp;
	struct llv_session client, server;
	pid_t child;
};

static void floor_start(struct floor *f)
{
	u8 psk[LLV_KEY_LEN], cr[LLV_RANDOM_LEN], sr[LLV_RANDOM_LEN];

	f->pp = mmap(NULL, sizeof(*f->pp), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		     -1, 0);
	if (f->pp == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	if (RAND_bytes(psk, sizeof(psk)) != 1 || RAND_bytes(cr, sizeof(cr)) != 1 ||
	    RAND_bytes(sr, sizeof(sr)) != 1 ||
	    llv_session_init(&f->client, psk, cr, sr, LLV_ROLE_CLIENT) ||
	    llv_session_init(&f->server, psk, cr, sr, LLV_ROLE_SERVER))
		die("%s", "libcrypto failed");
	f->child = fork();
	if (f->child == 0)
		pingpong_server(f->pp, &f->server);
}

static void floor_stop(struct floor *f)
{
	publish(&f->pp->flag, PP_QUIT);
	waitpid(f->child, NULL, 0);
	llv_session_free(&f->client);
	llv_session_free(&f->server);
	munmap(f->pp, sizeof(*f->pp));
}

/* Microseconds per round trip over `count` round trips. */
static double floor_round(struct floor *f, int sealed, int count)
{
	u8 page[LLV_PAGE_SIZE];
	double t = now_us();

	for (int i = 0; i < count; i++)
		pingpong_once(f->pp, &f->client, sealed, page);
	return (now_us() - t) / count;
}

/* ---- 2, 3. the real agent through the runtime's transport ----------------- */

static void connect_agent(const char *shm, const u8 key[LLV_KEY_LEN])
{
	char err[512];
	int rc = rt_shm_transport.connect(shm, key, rt_timeout_s, err, sizeof(err));

	if (rc == RT_E_SEE_MESSAGE)
		die("%s", err);
	if (rc)
		die("handshake failed: %s", llv_strerror(rc));
}

static u8 pages[LLV_MAX_PAGES][LLV_PAGE_SIZE];

/* Microseconds per page over `count` requests naming n pages from va on. */
static double agent_round(u64 va, uint32_t n, int count)
{
	u8 *out[LLV_MAX_PAGES];
	uint64_t addrs[LLV_MAX_PAGES];
	uint32_t statuses[LLV_MAX_PAGES];
	double t;

	for (uint32_t i = 0; i < n; i++) {
		addrs[i] = (va & ~(u64)(LLV_PAGE_SIZE - 1)) + (u64)i * LLV_PAGE_SIZE;
		out[i] = pages[i];
	}
	t = now_us();
	for (int i = 0; i < count; i++) {
		int rc = rt_read_pages(addrs, n, out, statuses);

		if (rc)
			die("read failed: %s", llv_strerror(rc));
	}
	t = (now_us() - t) / count / n;
	for (uint32_t i = 0; i < n; i++)
		if (statuses[i] != LLV_OK)
			die("%s", "a benchmark page is not mapped in the guest; pick another --addr");
	return t;
}

/* Microseconds per one-page fetch when the agent has gone to sleep: each
 * request follows a pause longer than the agent's spin, so it must be woken
 * (the price of not spinning forever). */
static double agent_cold_round(u64 va, int count)
{
	struct timespec pause_ts = { .tv_nsec = 300000 };
	double total = 0;

	for (int i = 0; i < count; i++) {
		nanosleep(&pause_ts, NULL);
		total += agent_round(va, 1, 1);
	}
	return total / count;
}

/* ---- 4. whole IDS processes -------------------------------------------------- */

/* Milliseconds for one run of the IDS (stats: let its --stats lines through;
 * url NULL: just --help, the cost of starting the process at all). */
static double run_ids(const char *ids, const char *url, const char *key_path, int stats)
{
	double t = now_us();
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		if (!stats)
			dup2(null, 2);
		if (!url)
			execl(ids, ids, "--help", NULL);
		else
			execl(ids, ids, "--agent", url, "--key", key_path, stats ? "--stats" : NULL,
			      NULL);
		_exit(127);
	}
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) > 1)
		die("%s failed", ids);
	return (now_us() - t) / 1e3;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "shm", required_argument, NULL, 's' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "symbol", required_argument, NULL, 'y' },
		{ "addr", required_argument, NULL, 'a' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "ids", required_argument, NULL, 'i' },
		{ 0 },
	};
	const char *shm = NULL, *key_path = NULL, *symbol = NULL, *ids[MAX_IDS];
	int rounds = 21, nids = 0, c;
	u64 va = 0;
	u8 key[LLV_KEY_LEN];
	char err[512], url[4200];

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 's': shm = optarg; break;
		case 'k': key_path = optarg; break;
		case 'y': symbol = optarg; break;
		case 'a': va = strtoull(optarg, NULL, 0); break;
		case 'r': rounds = atoi(optarg); break;
		case 'i':
			if (nids < MAX_IDS)
				ids[nids++] = optarg;
			break;
		default: exit(2);
		}
	}
	if (!shm || !key_path || (!symbol && !va))
		die("%s", "usage: --shm PATH --key-file FILE (--symbol NAME | --addr VA) "
			  "[--rounds N] [--ids BINARY]...");
	if (rounds < 3 || rounds > MAX_ROUNDS)
		die("%s", "--rounds: 3 to 101");
	if (llv_load_key(key_path, key, err, sizeof(err)))
		die("%s", err);
	signal(SIGPIPE, SIG_IGN);

	connect_agent(shm, key);
	if (symbol) {
		const char *names[1] = { symbol };
		uint64_t addr = 0;

		if (rt_lookup_symbols(names, 1, &addr) || !addr)
			die("symbol %s not found by the agent", symbol);
		va = addr;
	}

	/* Rounds interleave the reference and the agent, so both see the same
	 * machine; the first round only warms up. The reference's server spins
	 * all the time, so it lives only during its own part of each round. */
	struct floor f;
	double sealed[MAX_ROUNDS], plain[MAX_ROUNDS], one[MAX_ROUNDS], eight[MAX_ROUNDS],
		all[MAX_ROUNDS], cold[MAX_ROUNDS], sealed_med, med, min;

	for (int r = -1; r < rounds; r++) {
		int k = r < 0 ? 0 : r;

		floor_start(&f);
		floor_round(&f, 1, 100); /* warm up */
		sealed[k] = floor_round(&f, 1, 1000);
		plain[k] = floor_round(&f, 0, 1000);
		floor_stop(&f);
		one[k] = agent_round(va, 1, 1000);
		eight[k] = agent_round(va, 8, 200);
		all[k] = agent_round(va, LLV_MAX_PAGES, 30);
		cold[k] = agent_cold_round(va, 20);
	}
	rt_shm_transport.close(); /* frees the region for the IDS processes */

	printf("shared memory, 4 KiB pages (%d rounds, interleaved; median and minimum)\n", rounds);
	printf("  reference: two processes ping-ponging one page, nothing else\n");
	summarise(sealed, rounds, &sealed_med, &min);
	printf("    sealed (AES-256-GCM frames)      %7.2f us  min %7.2f us\n", sealed_med, min);
	summarise(plain, rounds, &med, &min);
	printf("    in the clear                     %7.2f us  min %7.2f us\n", med, min);
	printf("  the host agent at %s, through the runtime's shm transport\n", shm);
	summarise(one, rounds, &med, &min);
	printf("    one page per request             %7.2f us  min %7.2f us  = %.2fx the sealed "
	       "reference (target 1.3x)\n", med, min, med / sealed_med);
	summarise(cold, rounds, &med, &min);
	printf("    one page, agent asleep (futex)   %7.2f us  min %7.2f us  (after 300 us idle)\n",
	       med, min);
	summarise(eight, rounds, &med, &min);
	printf("    8 pages per request (read-ahead) %7.2f us/page  min %7.2f\n", med, min);
	summarise(all, rounds, &med, &min);
	printf("    64 pages per request             %7.2f us/page  min %7.2f  (target ~2)\n",
	       med, min);
	fflush(stdout);

	snprintf(url, sizeof(url), "shm:%s", shm);
	for (int i = 0; i < nids; i++) {
		double samples[MAX_ROUNDS], start[MAX_ROUNDS], start_med, start_min;

		run_ids(ids[i], url, key_path, 0); /* warm the page cache and the agent */
		for (int r = 0; r < rounds; r++) {
			start[r] = run_ids(ids[i], NULL, key_path, 0);
			samples[r] = run_ids(ids[i], url, key_path, 0);
		}
		summarise(samples, rounds, &med, &min);
		summarise(start, rounds, &start_med, &start_min);
		printf("  %s over shm, whole IDS process: %.2f ms  min %.2f ms  (its --help alone: "
		       "%.2f ms, min %.2f)\n", ids[i], med, min, start_med, start_min);
		fflush(stdout);
		run_ids(ids[i], url, key_path, 1); /* its --stats lines, on stderr */
	}
	return 0;
}

/*
 * agent.c - llview's host-side agent: stands where the paper's hypervisor
 * agent stands, outside the monitored kernel. It maps the guest's RAM file
 * or a memory dump (memsrc.c: an ELF core from QEMU dump-guest-memory or
 * kdump, or a raw image), finds the kernel through its VMCOREINFO note,
 * walks the guest's page tables itself, answers symbol look-ups from the
 * kernel's own kallsyms and
 * serves page reads over the encrypted llview protocol
 * (docs/protocol.md), one thread per client, and over a shared-memory
 * region (shm_server.c) when asked with --shm.
 *
 *   llview-agent --ram /dev/shm/vm.ram --listen 127.0.0.1:7070 --key-file key.bin
 *   llview-agent --ram /dev/shm/vm.ram --shm /dev/shm/llview-ids --key-file key.bin
 *   llview-agent --image guest.elf --listen 127.0.0.1:0 --key-file key.bin
 *   llview-agent --image mem.raw --pgd 0x1000 --levels 5 --listen 127.0.0.1:0 --key-file k
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "llview_core.h"
#include "llview_wire.h"
#include "kernel.h"
#include "memsrc.h"
#include "shm_server.h"

struct options {
	const char *mem_path, *driver, *key_path, *listen, *system_map, *shm_path;
	u64 ram_size, pgd;
	int levels, have_pgd, allow_remote, verbose, listen_given;
	int wait_s, idle_s, handshake_s, max_clients;
};

static struct options opt = {
	.listen = "127.0.0.1:7070", .wait_s = 120, .idle_s = 300, .handshake_s = 5,
	.max_clients = 32,
};
static struct llv_mem mem;
static struct llv_kernel kernel;
static u8 psk[LLV_KEY_LEN];
static int active_clients;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("llview-agent: error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void usage(FILE *f)
{
	fputs("usage: llview-agent (--ram FILE | --image FILE) --key-file FILE [options]\n"
	      "  --ram FILE          QEMU memory-backend-file of a q35 guest (RAM above 4 GiB handled)\n"
	      "  --image FILE        a memory dump, its format told by its first bytes: an ELF\n"
	      "                      core (QEMU dump-guest-memory paging=false, a kdump vmcore;\n"
	      "                      its VMCOREINFO note is used when present) or a raw image\n"
	      "                      (file offset = physical address)\n"
	      "  --ram-size N        guest RAM size (K/M/G suffix; default: the file size;\n"
	      "                      not for an ELF core)\n"
	      "  --key-file FILE     32-byte pre-shared key, mode 0600\n"
	      "  --listen ADDR:PORT  default 127.0.0.1:7070; port 0 picks a free port\n"
	      "  --shm PATH          also serve a shared-memory region (created mode 0600, or an\n"
	      "                      existing QEMU ivshmem backend file); without --listen, only it\n"
	      "  --allow-remote      permit a non-loopback listen address\n"
	      "  --pgd PHYS --levels 4|5   raw mode: explicit page-table root, no VMCOREINFO,\n"
	      "                      no symbols (SYMS answers 0)\n"
	      "  --wait SECONDS      how long to wait for a booting guest's kernel (default 120)\n"
	      "  --idle-timeout S    drop a client silent this long (default 300)\n"
	      "  --max-clients N     concurrent clients (default 32)\n"
	      "  --system-map FILE   cross-check kallsyms against a real System.map\n"
	      "  --verbose           log every connection\n",
	      f);
}

static u64 parse_number(const char *flag, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		die("%s: '%s' is not a number", flag, s);
	switch (*end) {
	case 'K': case 'k': v <<= 10; end++; break;
	case 'M': case 'm': v <<= 20; end++; break;
	case 'G': case 'g': v <<= 30; end++; break;
	}
	if (*end)
		die("%s: '%s' is not a number", flag, s);
	return v;
}

static void parse_args(int argc, char **argv)
{
	enum { RAM = 256, IMAGE, RAM_SIZE, KEY, LISTEN, REMOTE, PGD, LEVELS, WAIT, IDLE, MAXC,
	       SYSMAP, VERBOSE, HELP, SHM };
	static const struct option longopts[] = {
		{ "ram", required_argument, NULL, RAM },
		{ "image", required_argument, NULL, IMAGE },
		{ "ram-size", required_argument, NULL, RAM_SIZE },
		{ "key-file", required_argument, NULL, KEY },
		{ "listen", required_argument, NULL, LISTEN },
		{ "shm", required_argument, NULL, SHM },
		{ "allow-remote", no_argument, NULL, REMOTE },
		{ "pgd", required_argument, NULL, PGD },
		{ "levels", required_argument, NULL, LEVELS },
		{ "wait", required_argument, NULL, WAIT },
		{ "idle-timeout", required_argument, NULL, IDLE },
		{ "max-clients", required_argument, NULL, MAXC },
		{ "system-map", required_argument, NULL, SYSMAP },
		{ "verbose", no_argument, NULL, VERBOSE },
		{ "help", no_argument, NULL, HELP },
		{ 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case RAM: opt.mem_path = optarg; opt.driver = "q35-ram"; break;
		case IMAGE: opt.mem_path = optarg; opt.driver = "image"; break;
		case RAM_SIZE: opt.ram_size = parse_number("--ram-size", optarg); break;
		case KEY: opt.key_path = optarg; break;
		case LISTEN: opt.listen = optarg; opt.listen_given = 1; break;
		case SHM: opt.shm_path = optarg; break;
		case REMOTE: opt.allow_remote = 1; break;
		case PGD: opt.pgd = parse_number("--pgd", optarg); opt.have_pgd = 1; break;
		case LEVELS: opt.levels = (int)parse_number("--levels", optarg); break;
		case WAIT: opt.wait_s = (int)parse_number("--wait", optarg); break;
		case IDLE: opt.idle_s = (int)parse_number("--idle-timeout", optarg); break;
		case MAXC: opt.max_clients = (int)parse_number("--max-clients", optarg); break;
		case SYSMAP: opt.system_map = optarg; break;
		case VERBOSE: opt.verbose = 1; break;
		case HELP: usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind < argc)
		die("unexpected argument '%s' (see --help)", argv[optind]);
	if (!opt.mem_path)
		die("name the guest memory with --ram FILE or --image FILE");
	if (!opt.key_path)
		die("name the key with --key-file FILE (the key itself never goes on a command line)");
	if (opt.have_pgd != (opt.levels != 0))
		die("raw mode needs both --pgd PHYS and --levels 4|5");
	if (opt.idle_s <= 0 || opt.max_clients <= 0)
		die("--idle-timeout and --max-clients must be positive");
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Finds the kernel, waiting for a guest that is still booting. A note from
 * an earlier boot left in the RAM file fails the checks and is skipped. */
static void find_kernel(void)
{
	char err[512] = "", last[512] = "";
	double deadline = now_s() + opt.wait_s;
	int said_waiting = 0;

	if (opt.have_pgd) {
		if (llv_kernel_raw(&kernel, &mem, opt.pgd, opt.levels, err, sizeof(err)))
			die("%s", err);
		return;
	}
	if (mem.vmcoreinfo) { /* a dump's own note: no need to scan its RAM */
		struct llv_vmcoreinfo vi;

		if (llv_parse_vmcoreinfo(mem.vmcoreinfo, mem.vmcoreinfo_len, &vi))
			snprintf(err, sizeof(err), "it lacks OSRELEASE, init_top_pgt or phys_base");
		else if (!llv_kernel_from_vmcoreinfo(&kernel, &mem, &vi, err, sizeof(err)))
			return;
		fprintf(stderr, "llview-agent: warning: the dump's VMCOREINFO note: %s; scanning "
			"its RAM instead\n", err);
	}
	for (;;) {
		struct llv_vmcoreinfo vi;
		u64 cursor = 0;

		while (!llv_find_vmcoreinfo(&mem, &cursor, &vi, err, sizeof(err))) {
			if (!llv_kernel_from_vmcoreinfo(&kernel, &mem, &vi, last, sizeof(last)))
				return;
		}
		if (!last[0])
			snprintf(last, sizeof(last), "%s", err);
		if (!mem.live) /* a dump: nothing will change */
			die("%s: %s", opt.mem_path, last);
		if (now_s() >= deadline)
			die("%s: gave up after %d s: %s", opt.mem_path, opt.wait_s, last);
		if (!said_waiting) {
			fprintf(stderr, "llview-agent: waiting for the guest kernel (%s)...\n", last);
			said_waiting = 1;
		}
		last[0] = 0;
		usleep(500 * 1000);
	}
}

static int open_listener(struct sockaddr_in *addr)
{
	char host[64];
	const char *colon = strrchr(opt.listen, ':');
	int fd, one = 1;
	socklen_t alen = sizeof(*addr);

	if (!colon || colon == opt.listen || (size_t)(colon - opt.listen) >= sizeof(host))
		die("--listen '%s': expected ADDR:PORT, e.g. 127.0.0.1:7070", opt.listen);
	memcpy(host, opt.listen, colon - opt.listen);
	host[colon - opt.listen] = 0;
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	u64 port = parse_number("--listen port", colon + 1);

	if (port > 65535 || inet_pton(AF_INET, host, &addr->sin_addr) != 1)
		die("--listen '%s': expected an IPv4 ADDR:PORT", opt.listen);
	addr->sin_port = htons((u16)port);
	if ((ntohl(addr->sin_addr.s_addr) >> 24) != 127 && !opt.allow_remote)
		die("--listen %s is not a loopback address; guest memory would be served to the "
		    "network (pass --allow-remote if you mean it)", opt.listen);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)addr, sizeof(*addr)) < 0)
		die("cannot listen on %s: %s", opt.listen, strerror(errno));
	if (listen(fd, 16) < 0)
		die("listen: %s", strerror(errno));
	getsockname(fd, (struct sockaddr *)addr, &alen);
	return fd;
}

/* ---- one client ------------------------------------------------------ */

struct conn {
	int fd;
	char peer[64];
	struct llv_session s;
	u8 *req, *rep, *frame; /* allocated once per connection */
	u8 *in;                /* received bytes not yet consumed */
	size_t have;
};

#define IN_CAP llv_frame_size(LLV_MAX_PAYLOAD)

/* Receives and opens the next request frame. Reads whatever the socket
 * holds into c->in, so a whole small request costs one recv (llv_recv_msg
 * needs two); the header is still checked before the body is awaited.
 * Returns 0 or a negative enum llv_error (with a message in msg) /
 * llv_wire_error. */
static int recv_request(struct conn *c, u32 *len, char *msg)
{
	struct llv_frame_hdr h;
	size_t need = sizeof(h);
	int rc;

	for (int have_header = 0;;) {
		while (c->have < need) {
			ssize_t n = recv(c->fd, c->in + c->have, IN_CAP - c->have, 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return errno == EAGAIN || errno == EWOULDBLOCK ? -LLV_W_TIMEOUT : -LLV_W_IO;
			if (n == 0)
				return -LLV_W_CLOSED;
			c->have += (size_t)n;
		}
		if (have_header)
			break;
		memcpy(&h, c->in, sizeof(h));
		if ((rc = llv_core_check_frame(&h, c->s.recv_seq, msg)))
			return rc;
		need = llv_frame_size(h.len); /* <= IN_CAP: the check bounds h.len */
		have_header = 1;
	}
	if ((rc = llv_open(&c->s, &h, c->in + sizeof(h), c->req))) {
		snprintf(msg, LLV_CORE_MSG_MAX, "%s", llv_error_text(rc));
		return rc;
	}
	*len = h.len;
	c->have -= need;
	memmove(c->in, c->in + need, c->have);
	return 0;
}

static void set_timeout(int fd, int seconds)
{
	struct timeval tv = { .tv_sec = seconds };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* ---- the memory source of the request core (protocol/llview_core.c) ---- */

static u32 src_read(void *ctx, u64 addr, u32 len, u8 *out)
{
	int st;
	const u8 *page = llv_kernel_page(ctx, addr & ~(u64)(LLV_PAGE_SIZE - 1), &st);

	if (page)
		memcpy(out, page + (addr & (LLV_PAGE_SIZE - 1)), len);
	return (u32)st;
}

static u64 src_lookup(void *ctx, const char *name)
{
	return llv_kernel_symbol(ctx, name);
}

static int src_symbolize(void *ctx, u64 addr, u64 *start, u64 *size, char *name, u32 cap)
{
	const char *found = llv_kernel_symbolize(ctx, addr, start, size);

	if (!found)
		return -1;
	snprintf(name, cap, "%s", found);
	return 0;
}

static void src_info(void *ctx, struct llv_info *info)
{
	const struct llv_kernel *k = ctx;

	info->kaslr_offset = k->vi.kernel_offset;
	info->page_offset_base = k->page_offset_base;
	info->paging_levels = k->mode->nlevels;
	snprintf(info->release, sizeof(info->release), "%s", k->vi.release);
}

static const struct llv_source_ops source_ops = {
	.read = src_read, .lookup = src_lookup, .symbolize = src_symbolize, .info = src_info,
};

/* Serves one decrypted request through the core; returns 0 with the reply
 * in rep, or a negative enum llv_error with a message. */
static int serve(const u8 *req, u32 len, u8 *rep, u32 *rep_len, char *msg, size_t msglen)
{
	(void)msglen; /* >= LLV_CORE_MSG_MAX at both callers */
	return llv_core_serve(&source_ops, &kernel, req, len, rep, rep_len, msg);
}

/* Sends a sealed REP_ERROR, then closes gracefully: half-close and drain
 * what the client still sends, so the error is not lost to a TCP reset. */
static void send_error_and_close(struct conn *c, int code, const char *msg)
{
	struct llv_msg m = { .type = LLV_REP_ERROR, .count = (u32)-code };
	size_t n = strlen(msg) + 1;
	char drain[4096];
	double deadline = now_s() + 1.0;
	size_t drained = 0;

	memcpy(c->rep, &m, sizeof(m));
	memcpy(c->rep + sizeof(m), msg, n);
	if (opt.verbose)
		fprintf(stderr, "llview-agent: %s: %s\n", c->peer, msg);
	if (llv_send_msg(c->fd, &c->s, c->rep, (u32)(sizeof(m) + n), c->frame))
		return;
	shutdown(c->fd, SHUT_WR);
	set_timeout(c->fd, 1);
	while (drained < (4u << 20) && now_s() < deadline) {
		ssize_t r = recv(c->fd, drain, sizeof(drain), 0);

		if (r <= 0)
			break;
		drained += (size_t)r;
	}
}

/* The server's hello: the client's is checked by the core; a bad one is
 * closed without a reply (no key yet to seal one with), as the in-kernel
 * agent does. */
static int handshake(struct conn *c, char *msg)
{
	struct llv_hello theirs, mine = { .magic = LLV_MAGIC, .version = LLV_VERSION,
					  .role = LLV_ROLE_SERVER };
	size_t got = 0;
	int rc;

	while (got < sizeof(theirs)) {
		ssize_t n = recv(c->fd, (u8 *)&theirs + got, sizeof(theirs) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -LLV_W_TIMEOUT : -LLV_W_IO;
		if (n == 0)
			return -LLV_W_CLOSED;
		got += (size_t)n;
	}
	if ((rc = llv_core_check_hello(&theirs, msg)))
		return rc;
	if (RAND_bytes(mine.random, LLV_RANDOM_LEN) != 1)
		return -LLV_W_CRYPTO;
	for (size_t sent = 0; sent < sizeof(mine);) {
		ssize_t n = send(c->fd, (const u8 *)&mine + sent, sizeof(mine) - sent, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -LLV_W_TIMEOUT : -LLV_W_IO;
		sent += (size_t)n;
	}
	return llv_session_init(&c->s, psk, theirs.random, mine.random, LLV_ROLE_SERVER);
}

static void *client_thread(void *arg)
{
	struct conn *c = arg;
	u32 len, rep_len;
	int rc, one = 1;
	char msg[256];

	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	set_timeout(c->fd, opt.handshake_s < opt.idle_s ? opt.handshake_s : opt.idle_s);
	if ((rc = handshake(c, msg))) {
		if (opt.verbose)
			fprintf(stderr, "llview-agent: %s: handshake failed: %s\n", c->peer,
				rc == -LLV_E_BAD_MAGIC ? msg : llv_strerror(rc));
		goto out;
	}
	set_timeout(c->fd, opt.idle_s);
	for (;;) {
		rc = recv_request(c, &len, msg);
		if (rc) {
			if (-rc >= LLV_E_BAD_MAGIC && -rc <= LLV_E_INTERNAL)
				send_error_and_close(c, rc, msg);
			else if (opt.verbose && rc != -LLV_W_CLOSED)
				fprintf(stderr, "llview-agent: %s: %s\n", c->peer, llv_strerror(rc));
			break;
		}
		rc = serve(c->req, len, c->rep, &rep_len, msg, sizeof(msg));
		if (rc) {
			send_error_and_close(c, rc, msg);
			break;
		}
		if (llv_send_msg(c->fd, &c->s, c->rep, rep_len, c->frame))
			break;
	}
out:
	llv_session_free(&c->s);
	OPENSSL_cleanse(c->req, LLV_MAX_PAYLOAD);
	close(c->fd);
	free(c->req);
	free(c->rep);
	free(c->frame);
	free(c->in);
	free(c);
	__atomic_sub_fetch(&active_clients, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void accept_loop(int lfd)
{
	pthread_attr_t attr;
	double last_check = now_s();

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		struct sockaddr_in peer;
		socklen_t plen = sizeof(peer);
		int fd = -1;
		struct conn *c;
		pthread_t t;
		struct pollfd pfd = { .fd = lfd, .events = POLLIN };
		char err[256];

		/* At least once a second, notice the guest going away. */
		int ready = poll(&pfd, 1, 1000);

		if (now_s() - last_check >= 1.0) {
			last_check = now_s();
			if (llv_mem_check(&mem, err, sizeof(err))) {
				fprintf(stderr, "llview-agent: %s: %s; exiting\n", opt.mem_path, err);
				exit(3);
			}
		}
		if (ready <= 0)
			continue;
		fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				usleep(10000); /* e.g. out of descriptors: do not spin */
			continue;
		}
		if (__atomic_add_fetch(&active_clients, 1, __ATOMIC_SEQ_CST) > opt.max_clients) {
			fprintf(stderr, "llview-agent: refusing a client: %d already connected\n",
				opt.max_clients);
			__atomic_sub_fetch(&active_clients, 1, __ATOMIC_SEQ_CST);
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (c) {
			c->fd = fd;
			snprintf(c->peer, sizeof(c->peer), "%s:%u", inet_ntoa(peer.sin_addr),
				 ntohs(peer.sin_port));
			c->req = malloc(LLV_MAX_PAYLOAD);
			c->rep = malloc(LLV_MAX_PAYLOAD);
			c->frame = malloc(llv_frame_size(LLV_MAX_PAYLOAD));
			c->in = malloc(IN_CAP);
		}
		if (!c || !c->req || !c->rep || !c->frame || !c->in || pthread_create(&t, &attr, client_thread, c)) {
			fprintf(stderr, "llview-agent: out of memory for a client\n");
			if (c) {
				free(c->req);
				free(c->rep);
				free(c->frame);
				free(c->in);
				free(c);
			}
			close(fd);
			__atomic_sub_fetch(&active_clients, 1, __ATOMIC_SEQ_CST);
		}
	}
}

static void *shm_thread(void *arg)
{
	(void)arg;
	llv_shm_server_run(psk, serve, opt.idle_s, opt.verbose);
	return NULL;
}

/* SIGTERM/SIGINT: tell a client on the region that the agent is gone. */
static void on_stop_signal(int sig)
{
	(void)sig;
	llv_shm_server_shutdown();
	_exit(0);
}

/* Serves the region; without a TCP listener, the main thread only watches
 * for the guest going away. */
static void start_shm_server(void)
{
	struct sigaction sa = { .sa_handler = on_stop_signal };
	pthread_t t;
	char err[512];

	if (llv_shm_server_open(opt.shm_path, err, sizeof(err)))
		die("%s", err);
	atexit(llv_shm_server_shutdown);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (pthread_create(&t, NULL, shm_thread, NULL))
		die("cannot start the shared-memory server thread");
	pthread_detach(t);
}

static void watch_guest(void)
{
	char err[256];

	for (;;) {
		sleep(1);
		if (llv_mem_check(&mem, err, sizeof(err))) {
			fprintf(stderr, "llview-agent: %s: %s; exiting\n", opt.mem_path, err);
			exit(3);
		}
	}
}

int main(int argc, char **argv)
{
	const struct llv_mem_driver *driver;
	struct sockaddr_in addr;
	char err[512], where[PATH_MAX + 64] = "";
	int lfd = -1;

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	parse_args(argc, argv);
	if (llv_load_key(opt.key_path, psk, err, sizeof(err)))
		die("%s", err);
	driver = llv_mem_driver_named(opt.driver);
	if (llv_mem_open(&mem, driver, opt.mem_path, opt.ram_size, err, sizeof(err)))
		die("%s", err);
	fprintf(stderr, "llview-agent: %s: %s\n", opt.mem_path, mem.what);
	find_kernel();
	if (kernel.have_vmcoreinfo) {
		char at[64] = "from the dump's ELF note";

		if (kernel.vi.found_at != LLV_NO_PHYS)
			snprintf(at, sizeof(at), "at physical 0x%llx",
				 (unsigned long long)kernel.vi.found_at);
		fprintf(stderr,
			"llview-agent: VMCOREINFO %s; page tables at 0x%llx; "
			"kallsyms: %u symbols decoded in %.1f ms, _stext 0x%llx matches\n",
			at, (unsigned long long)kernel.root, kernel.nsyms, kernel.decode_ms,
			(unsigned long long)kernel.vi.stext);
	}
	if (opt.system_map && llv_kernel_check_system_map(&kernel, opt.system_map) != 0)
		die("%s does not match the running kernel", opt.system_map);
	if (!opt.shm_path || opt.listen_given) {
		lfd = open_listener(&addr);
		snprintf(where, sizeof(where), "listening on %s:%u", inet_ntoa(addr.sin_addr),
			 ntohs(addr.sin_port));
	}
	if (opt.shm_path) {
		start_shm_server();
		snprintf(where + strlen(where), sizeof(where) - strlen(where),
			 "%sshared memory at %s", lfd >= 0 ? ", " : "", opt.shm_path);
	}
	if (kernel.have_vmcoreinfo)
		printf("llview-agent ready: release %s, KASLR slide 0x%llx, %u-level paging, "
		       "%u symbols, %s\n",
		       kernel.vi.release, (unsigned long long)kernel.vi.kernel_offset,
		       kernel.mode->nlevels, kernel.nsyms, where);
	else
		printf("llview-agent ready: raw image, page tables at 0x%llx, %u-level paging, "
		       "no symbols, %s\n",
		       (unsigned long long)kernel.root, kernel.mode->nlevels, where);
	if (lfd >= 0)
		accept_loop(lfd);
	else
		watch_guest();
	return 0;
}

/*
 * fetch_bench.c - measures one encrypted 4 KiB page fetch from a running
 * llview agent against a bare loopback TCP round trip that moves the same
 * number of bytes (request frame out, reply frame back), in the same run,
 * interleaved so both see the same machine state. The bare peer is a
 * process of its own, as the agent is: a thread of this process would be
 * woken more cheaply than another process, and the ratio would compare
 * unlike with unlike.
 *
 *   llview-fetch-bench --agent 127.0.0.1:7070 --key-file key.bin [--symbol linux_banner |
 *                      --addr VA] [--iterations N]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "llview_wire.h"

#define REQ_PT (sizeof(struct llv_msg) + sizeof(u64))
#define REP_PT (sizeof(struct llv_msg) + sizeof(u32) + LLV_PAGE_SIZE)
/* llv_frame_size() as a constant expression, for static buffers. */
#define FRAME(n) (sizeof(struct llv_frame_hdr) + (n) + LLV_TAG_LEN)

static void die(const char *what)
{
	fprintf(stderr, "llview-fetch-bench: %s\n", what);
	exit(1);
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int connect_to(const struct sockaddr_in *a)
{
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || connect(fd, (const struct sockaddr *)a, sizeof(*a)) < 0)
		die("cannot connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int full(int fd, void *buf, size_t len, int sending)
{
	u8 *p = buf;

	while (len) {
		ssize_t n = sending ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);

		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The bare peer: answers each request-sized message with a reply-sized one. */
static void bare_server(int lfd)
{
	int one = 1;
	int fd = accept(lfd, NULL, NULL);
	static u8 req[FRAME(REQ_PT)], rep[FRAME(REP_PT)];

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while (!full(fd, req, sizeof(req), 0) && !full(fd, rep, sizeof(rep), 1))
		;
	close(fd);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "agent", required_argument, NULL, 'a' }, { "key-file", required_argument, NULL, 'k' },
		{ "symbol", required_argument, NULL, 's' }, { "addr", required_argument, NULL, 'v' },
		{ "iterations", required_argument, NULL, 'n' }, { 0 },
	};
	const char *agent = "127.0.0.1:7070", *key_path = NULL, *symbol = "linux_banner";
	u64 va = 0;
	int iterations = 2000, c;
	u8 key[LLV_KEY_LEN];
	char err[256], host[64];
	static u8 pt[LLV_MAX_PAYLOAD], frame[FRAME(LLV_MAX_PAYLOAD)];
	struct llv_session s;
	struct sockaddr_in a = { .sin_family = AF_INET };
	u32 len;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'a': agent = optarg; break;
		case 'k': key_path = optarg; break;
		case 's': symbol = optarg; break;
		case 'v': va = strtoull(optarg, NULL, 0); break;
		case 'n': iterations = atoi(optarg); break;
		default: return 2;
		}
	}
	if (!key_path || iterations < 10)
		die("usage: llview-fetch-bench --agent ADDR:PORT --key-file FILE [--symbol S | --addr VA]"
		    " [--iterations N>=10]");
	if (llv_load_key(key_path, key, err, sizeof(err)))
		die(err);
	const char *colon = strrchr(agent, ':');

	if (!colon || colon - agent >= (long)sizeof(host))
		die("--agent must be ADDR:PORT");
	memcpy(host, agent, colon - agent);
	host[colon - agent] = 0;
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
		die("--agent must be an IPv4 ADDR:PORT");
	a.sin_port = htons((u16)atoi(colon + 1));

	int afd = connect_to(&a);

	if (llv_handshake_client(afd, key, &s))
		die("handshake with the agent failed");
	if (!va) {
		struct llv_msg m = { .type = LLV_REQ_SYMS, .count = 1 };
		size_t n = strlen(symbol) + 1;

		memcpy(pt, &m, sizeof(m));
		memcpy(pt + sizeof(m), symbol, n);
		if (llv_send_msg(afd, &s, pt, (u32)(sizeof(m) + n), frame) ||
		    llv_recv_msg(afd, &s, pt, sizeof(pt), &len, frame) || len != sizeof(m) + 8)
			die("SYMS failed");
		memcpy(&va, pt + sizeof(m), sizeof(va));
		if (!va)
			die("the agent does not know that symbol; pass --addr");
	}

	/* The bare loopback peer, same sizes as the encrypted exchange. */
	struct sockaddr_in b = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t blen = sizeof(b);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	pid_t peer;

	if (lfd < 0 || bind(lfd, (struct sockaddr *)&b, sizeof(b)) < 0 || listen(lfd, 1) < 0)
		die("cannot open the bare loopback server");
	getsockname(lfd, (struct sockaddr *)&b, &blen);
	peer = fork();
	if (peer < 0)
		die("cannot start the bare loopback peer");
	if (peer == 0) {
		close(afd);
		bare_server(lfd);
		_exit(0);
	}
	close(lfd);
	int bfd = connect_to(&b);
	static u8 breq[FRAME(REQ_PT)], brep[FRAME(REP_PT)];

	double *enc = malloc(sizeof(double) * iterations), *bare = malloc(sizeof(double) * iterations);

	for (int i = 0; i < iterations; i++) {
		struct llv_msg m = { .type = LLV_REQ_READ, .count = 1 };
		u32 status;
		double t0 = now_us();

		if (full(bfd, breq, sizeof(breq), 1) || full(bfd, brep, sizeof(brep), 0))
			die("bare round trip failed");
		bare[i] = now_us() - t0;

		t0 = now_us();
		memcpy(pt, &m, sizeof(m));
		memcpy(pt + sizeof(m), &va, sizeof(va));
		if (llv_send_msg(afd, &s, pt, REQ_PT, frame) ||
		    llv_recv_msg(afd, &s, pt, sizeof(pt), &len, frame))
			die("READ failed");
		enc[i] = now_us() - t0;
		memcpy(&status, pt + sizeof(m), sizeof(status));
		if (len != REP_PT || status != LLV_OK)
			die("READ did not return the page");
	}
	close(bfd);
	waitpid(peer, NULL, 0);
	double me = median(enc, iterations), mb = median(bare, iterations);

	printf("encrypted 4 KiB fetch: median %.1f us; bare loopback round trip to another process "
	       "(%zu B out, %zu B back): median %.1f us; ratio %.2fx (%d iterations, page 0x%llx)\n",
	       me, llv_frame_size(REQ_PT), llv_frame_size(REP_PT), mb, me / mb, iterations,
	       (unsigned long long)va);
	return 0;
}

/*
 * fetch_rtt.c - one encrypted 4 KiB page fetch from an llview agent vs a
 * bare loopback TCP round trip of the same size, measured side by side.
 *
 *   fetch_rtt --agent 127.0.0.1:PORT --key FILE --addr HEXADDR [--iters N]
 *
 * The bare reference is a forked echo-style server in this process tree:
 * the client sends 8 bytes (an address) and reads 4096 back, exactly the
 * shape of an llview READ without the crypto and the page-table walk.
 * Prints both medians in microseconds and their ratio.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "llview_wire.h"

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
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

static int connect_to(const char *host, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	inet_pton(AF_INET, host, &sa.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("connect");
		exit(1);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void full_io(ssize_t (*op)(int, void *, size_t, int), int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = op(fd, p, len, 0);

		if (n <= 0) {
			perror("bare transfer");
			exit(1);
		}
		p += n;
		len -= (size_t)n;
	}
}

static ssize_t send_op(int fd, void *buf, size_t len, int flags)
{
	return send(fd, buf, len, flags);
}

/* The reference server: 8 bytes in, one 4 KiB page out, until EOF. */
static int start_bare_server(pid_t *child)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);

	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0) {
		perror("bare server");
		exit(1);
	}
	getsockname(lfd, (struct sockaddr *)&sa, &sl);
	*child = fork();
	if (*child == 0) {
		static char page[4096];
		unsigned long long addr;
		int fd = accept(lfd, NULL, NULL);

		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		while (recv(fd, &addr, sizeof(addr), MSG_WAITALL) == sizeof(addr)) {
			page[0] = (char)addr;
			full_io(send_op, fd, page, sizeof(page));
		}
		_exit(0);
	}
	close(lfd);
	return ntohs(sa.sin_port);
}

int main(int argc, char **argv)
{
	const char *agent = NULL, *key_path = NULL;
	unsigned long long addr = 0;
	int iters = 2000;
	char host[64], err[256];
	u8 key[LLV_KEY_LEN];

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--agent"))
			agent = argv[i + 1];
		else if (!strcmp(argv[i], "--key"))
			key_path = argv[i + 1];
		else if (!strcmp(argv[i], "--addr"))
			addr = strtoull(argv[i + 1], NULL, 16);
		else if (!strcmp(argv[i], "--iters"))
			iters = atoi(argv[i + 1]);
	}
	if (!agent || !key_path || !addr || iters < 10 ||
	    sscanf(agent, "%63[^:]:", host) != 1 || !strchr(agent, ':')) {
		fprintf(stderr, "usage: fetch_rtt --agent HOST:PORT --key FILE --addr HEX [--iters N]\n");
		return 2;
	}
	if (llv_load_key(key_path, key, err, sizeof(err))) {
		fprintf(stderr, "fetch_rtt: %s\n", err);
		return 2;
	}

	double *bare = calloc(iters, sizeof(double)), *sealed = calloc(iters, sizeof(double));
	static u8 pt[LLV_MAX_PAYLOAD], buf[LLV_MAX_PAYLOAD + 64];
	static char page[4096];
	pid_t child;
	int bfd = connect_to("127.0.0.1", start_bare_server(&child));
	int afd = connect_to(host, atoi(strchr(agent, ':') + 1));
	struct llv_session s;
	struct { struct llv_msg m; u64 a; } __attribute__((packed)) req = {
		{ LLV_REQ_READ, 0, 1 }, addr };
	u32 len;
	int rc = llv_handshake_client(afd, key, &s);

	if (rc) {
		fprintf(stderr, "fetch_rtt: handshake: %s\n", llv_strerror(rc));
		return 1;
	}
	/* Interleave the two so machine noise hits both alike. */
	for (int i = 0; i < iters; i++) {
		double t0 = now_us();

		full_io(send_op, bfd, &addr, sizeof(addr));
		full_io(recv, bfd, page, sizeof(page));
		double t1 = now_us();

		rc = llv_send_msg(afd, &s, &req, sizeof(req), buf);
		if (!rc)
			rc = llv_recv_msg(afd, &s, pt, sizeof(pt), &len, buf);
		double t2 = now_us();

		const struct llv_msg *m = (const void *)pt;
		if (rc || m->type != LLV_REP_READ || len != sizeof(*m) + 4 + 4096 ||
		    *(const u32 *)(pt + sizeof(*m)) != LLV_OK) {
			fprintf(stderr, "fetch_rtt: agent read of %#llx failed: %s\n", addr,
				rc ? llv_strerror(rc) : "bad reply");
			return 1;
		}
		bare[i] = t1 - t0;
		sealed[i] = t2 - t1;
	}
	close(bfd);
	waitpid(child, NULL, 0);
	double b = median(bare, iters), e = median(sealed, iters);
	printf("bare loopback 4 KiB round trip:    %7.2f us (median of %d)\n", b, iters);
	printf("llview encrypted 4 KiB page fetch:  %7.2f us (median of %d)\n", e, iters);
	printf("ratio encrypted / bare:             %7.2fx (target <= 1.5x)\n", e / b);
	llv_session_free(&s);
	return 0;
}

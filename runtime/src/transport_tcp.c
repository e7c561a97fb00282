/*
 * transport_tcp.c - the TCP transport: connect with a timeout, the llview
 * handshake, then one encrypted request and one reply at a time (frames by
 * protocol/llview_wire.c). SO_RCVTIMEO/SO_SNDTIMEO bound every wait,
 * so a dead agent gives an error instead of a hang.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "llview_wire.h"
#include "rt_internal.h"

static int sock = -1;
static struct llv_session session;
static u8 *plain;   /* decrypted reply, LLV_MAX_PAYLOAD */
static u8 *scratch; /* frame scratch for llv_send_msg/llv_recv_msg */

static int connect_with_timeout(const struct addrinfo *ai, int timeout_s)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	struct pollfd pfd;
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (fd < 0)
		return -1;
	int flags = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS)
			goto fail;
		pfd.fd = fd;
		pfd.events = POLLOUT;
		int ready = poll(&pfd, 1, timeout_s * 1000);
		if (ready == 0) {
			errno = ETIMEDOUT;
			goto fail;
		}
		if (ready < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			goto fail;
		if (soerr) {
			errno = soerr;
			goto fail;
		}
	}
	fcntl(fd, F_SETFL, flags);
	return fd;
fail: {
	int saved = errno;
	close(fd);
	errno = saved;
	return -1;
}
}

static int tcp_connect(const char *where, const u8 key[LLV_KEY_LEN], int timeout_s, char *err,
		       size_t errlen)
{
	char host[256];
	const char *colon = strrchr(where, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	struct timeval tv = { .tv_sec = timeout_s };
	int one = 1, rc;

	if (!colon || colon == where || !colon[1] || (size_t)(colon - where) >= sizeof(host)) {
		snprintf(err, errlen, "expected tcp://HOST:PORT");
		return RT_E_SEE_MESSAGE;
	}
	memcpy(host, where, (size_t)(colon - where));
	host[colon - where] = 0;
	if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [::1]:7070 */
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port <= 0 || port > 65535) {
		snprintf(err, errlen, "bad port '%s'", colon + 1);
		return RT_E_SEE_MESSAGE;
	}
	rc = getaddrinfo(host, colon + 1, &hints, &res);
	if (rc) {
		snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(rc));
		return RT_E_SEE_MESSAGE;
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		sock = connect_with_timeout(ai, timeout_s);
		if (sock >= 0)
			break;
	}
	freeaddrinfo(res);
	if (sock < 0) {
		snprintf(err, errlen, "cannot connect: %s", strerror(errno));
		return RT_E_SEE_MESSAGE;
	}
	setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

	plain = malloc(LLV_MAX_PAYLOAD);
	scratch = malloc(llv_frame_size(LLV_MAX_PAYLOAD));
	if (!plain || !scratch) {
		snprintf(err, errlen, "out of memory");
		return RT_E_SEE_MESSAGE;
	}
	return llv_handshake_client(sock, key, &session);
}

static int tcp_exchange(const u8 *req, u32 req_len, const u8 **reply, u32 *len)
{
	int rc = llv_send_msg(sock, &session, req, req_len, scratch);

	if (rc)
		return rc;
	rt_stats.requests++;
	rt_stats.bytes_sent += llv_frame_size(req_len);
	rc = llv_recv_msg(sock, &session, plain, LLV_MAX_PAYLOAD, len, scratch);
	if (rc)
		return rc;
	rt_stats.bytes_received += llv_frame_size(*len);
	*reply = plain;
	return 0;
}

static void tcp_close(void)
{
	if (sock >= 0)
		close(sock);
	sock = -1;
	llv_session_free(&session);
	free(plain);
	free(scratch);
	plain = scratch = NULL;
}

const struct rt_transport_ops rt_tcp_transport = {
	.scheme = "tcp",
	.connect = tcp_connect,
	.exchange = tcp_exchange,
	.close = tcp_close,
};

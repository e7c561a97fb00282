// SPDX-License-Identifier: GPL-2.0
/*
 * tcp.c - the TCP transport of the in-kernel agent: kernel-socket I/O for one
 * IDS connection (clear-text hellos, then whole frames), with the timeouts
 * that keep a stalled peer from holding the single connection slot. The
 * session itself (keys, sealing, requests) is session.c's.
 */
#include <linux/kernel.h>
#include <linux/net.h>
#include <linux/string.h>
#include <linux/tcp.h>
#include <linux/uio.h>
#include <net/sock.h>
#include <net/tcp.h>

#include "agent.h"

/* Once a frame has started, the rest must follow promptly, and the hello
 * within the host agent's 5 s: a stalled peer must not hold the single
 * connection slot for ever. */
#define LLV_IO_TIMEOUT (10 * HZ)
#define LLV_HELLO_TIMEOUT (5 * HZ)
/* At most this much is read and dropped after an error reply. */
#define LLV_DRAIN_MAX (4u << 20)

static void set_recv_timeout(struct socket *sock, long timeout)
{
	WRITE_ONCE(sock->sk->sk_rcvtimeo, timeout);
}

/* One receive of up to len bytes (at least one): how a frame starts. */
static int recv_some(struct socket *sock, void *buf, size_t len, size_t *got)
{
	struct kvec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = { };
	int n;

	*got = 0;
	do {
		n = kernel_recvmsg(sock, &msg, &iov, 1, len, 0);
	} while (n == -EINTR || n == -ERESTARTSYS);
	if (n < 0)
		return n;
	if (n == 0)
		return -EPIPE;
	*got = n;
	return 0;
}

/* Reads exactly len bytes. Returns 0, or a negative errno with *got set to
 * the bytes read before the failure (0 and -EPIPE: the peer closed cleanly). */
static int recv_all(struct socket *sock, void *buf, size_t len, size_t *got)
{
	*got = 0;
	while (*got < len) {
		struct kvec iov = { .iov_base = (u8 *)buf + *got, .iov_len = len - *got };
		struct msghdr msg = { };
		int n = kernel_recvmsg(sock, &msg, &iov, 1, iov.iov_len, 0);

		if (n == -EINTR || n == -ERESTARTSYS)
			continue;
		if (n < 0)
			return n;
		if (n == 0)
			return -EPIPE;
		*got += n;
	}
	return 0;
}

static int send_all(struct socket *sock, const void *buf, size_t len)
{
	size_t sent = 0;

	while (sent < len) {
		struct kvec iov = { .iov_base = (u8 *)buf + sent, .iov_len = len - sent };
		struct msghdr msg = { .msg_flags = MSG_NOSIGNAL };
		int n = kernel_sendmsg(sock, &msg, &iov, 1, iov.iov_len);

		if (n == -EINTR || n == -ERESTARTSYS)
			continue;
		if (n <= 0)
			return n ? n : -EPIPE;
		sent += n;
	}
	return 0;
}

/* The sealed REP_ERROR at c->tx (frame_len bytes) that ends a bad connection,
 * then, as the host agent does, a half-close and a short drain of what the IDS
 * still sends, so the reply is not lost to a TCP reset caused by unread data. */
static void send_error_frame(struct llv_conn *c, int frame_len)
{
	size_t drained = 0, got;
	unsigned long deadline = jiffies + HZ;

	if (frame_len < 0 || send_all(c->sock, c->tx, frame_len))
		return;
	kernel_sock_shutdown(c->sock, SHUT_WR);
	set_recv_timeout(c->sock, HZ);
	while (drained < LLV_DRAIN_MAX && time_before(jiffies, deadline)) {
		if (recv_some(c->sock, c->rx, LLV_FRAME_MAX, &got))
			break;
		drained += got;
	}
}

static void send_error(struct llv_conn *c, enum llv_error code, const char *why)
{
	send_error_frame(c, llv_seal_error(c->session, c->tx, code, why));
}

static int handshake(struct llv_conn *c)
{
	struct llv_hello theirs, mine;
	size_t got;
	int rc;

	set_recv_timeout(c->sock, LLV_HELLO_TIMEOUT);
	rc = recv_all(c->sock, &theirs, sizeof(theirs), &got);
	if (rc)
		return rc;
	/* No session key yet, so nothing can be sealed: a bad hello is just closed
	 * (llv_session_start logs the core's reason), as the host agent does. */
	rc = llv_session_start(c->session, &theirs, &mine);
	if (rc) {
		if (rc != -EPROTO)
			pr_info_ratelimited("llview_agent: closing connection: %s\n",
					    rc == -ENOKEY ? "no key installed yet" :
					    "cannot key the session");
		return rc;
	}
	return send_all(c->sock, &mine, sizeof(mine));
}

void llv_serve_connection(struct llv_conn *c, const bool *stopping, long idle_timeout)
{
	struct llv_frame_hdr *hdr = (struct llv_frame_hdr *)c->rx;
	char why[LLV_CORE_MSG_MAX];
	size_t got;
	bool last;
	int rc;

	WRITE_ONCE(c->sock->sk->sk_sndtimeo, LLV_IO_TIMEOUT);
	tcp_sock_set_nodelay(c->sock->sk);
	if (handshake(c))
		return;
	for (;;) {
		/* An IDS idle longer than idle_timeout between requests is dropped (it
		 * would hold the one connection slot); once a frame has started, the rest
		 * must come within LLV_IO_TIMEOUT. */
		set_recv_timeout(c->sock, idle_timeout);
		rc = recv_some(c->sock, hdr, LLV_HDR_LEN, &got);
		if (!rc && got < LLV_HDR_LEN) {
			size_t more;

			set_recv_timeout(c->sock, LLV_IO_TIMEOUT);
			rc = recv_all(c->sock, (u8 *)hdr + got, LLV_HDR_LEN - got, &more);
		}
		if (READ_ONCE(*stopping)) {
			send_error(c, LLV_E_INTERNAL, "agent is being unloaded");
			return;
		}
		/* A peer that hangs up or stalls mid-frame is gone: close, as the host agent does. */
		if (rc)
			return;
		/* Checked before the body is read, so an oversized frame costs nothing. */
		rc = llv_frame_check(c->session, hdr, why);
		if (rc) {
			send_error(c, rc, why);
			return;
		}
		set_recv_timeout(c->sock, LLV_IO_TIMEOUT);
		rc = recv_all(c->sock, c->rx + LLV_HDR_LEN, hdr->len + LLV_TAG_LEN, &got);
		if (READ_ONCE(*stopping)) {
			send_error(c, LLV_E_INTERNAL, "agent is being unloaded");
			return;
		}
		if (rc)
			return;
		rc = llv_session_answer(c->session, c->rx, c->tx, &last);
		if (last) {
			send_error_frame(c, rc);
			return;
		}
		if (rc < 0 || send_all(c->sock, c->tx, rc))
			return;
	}
}

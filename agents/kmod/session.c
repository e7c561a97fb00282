// SPDX-License-Identifier: GPL-2.0
/*
 * session.c - one llview connection inside the kernel: the clear-text hello
 * exchange, the HMAC-SHA256 session key, AES-256-GCM frames (header as AAD,
 * nonce = u32 sender role || u64 seq, strict sequence) and kernel-socket I/O.
 * Mirrors agents/common/llview_wire.c, which does the same with OpenSSL.
 */
#include <linux/kernel.h>
#include <linux/net.h>
#include <linux/random.h>
#include <linux/scatterlist.h>
#include <linux/string.h>
#include <linux/tcp.h>
#include <linux/uio.h>
#include <asm/unaligned.h>
#include <crypto/aead.h>
#include <crypto/hash.h>
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

/* hmac(sha256) keyed with the pre-shared key: the module keeps the key only
 * as this transform's state, which crypto_free_shash wipes (kfree_sensitive). */
static struct crypto_shash *psk_hmac;
static struct crypto_aead *gcm;
static struct aead_request *gcm_req;
static bool psk_installed;
static DEFINE_MUTEX(psk_lock);

int llv_crypto_init(void)
{
	psk_hmac = crypto_alloc_shash("hmac(sha256)", 0, 0);
	if (IS_ERR(psk_hmac)) {
		pr_err("llview_agent: hmac(sha256) unavailable (%ld)\n", PTR_ERR(psk_hmac));
		return PTR_ERR(psk_hmac);
	}
	gcm = crypto_alloc_aead("gcm(aes)", 0, 0);
	if (IS_ERR(gcm)) {
		pr_err("llview_agent: gcm(aes) unavailable (%ld): load gcm, ctr and ghash-generic "
		       "(or aesni-intel) first\n", PTR_ERR(gcm));
		crypto_free_shash(psk_hmac);
		return PTR_ERR(gcm);
	}
	gcm_req = aead_request_alloc(gcm, GFP_KERNEL);
	if (!gcm_req || crypto_aead_setauthsize(gcm, LLV_TAG_LEN) ||
	    crypto_aead_ivsize(gcm) != LLV_NONCE_LEN) {
		llv_crypto_exit();
		return -ENOMEM;
	}
	pr_info("llview_agent: AES-256-GCM by %s\n",
		crypto_tfm_alg_driver_name(crypto_aead_tfm(gcm)));
	return 0;
}

void llv_crypto_exit(void)
{
	aead_request_free(gcm_req); /* kfree_sensitive */
	gcm_req = NULL;
	if (!IS_ERR_OR_NULL(gcm))
		crypto_free_aead(gcm);
	gcm = NULL;
	if (!IS_ERR_OR_NULL(psk_hmac))
		crypto_free_shash(psk_hmac);
	psk_hmac = NULL;
	WRITE_ONCE(psk_installed, false);
}

bool llv_have_psk(void)
{
	return smp_load_acquire(&psk_installed);
}

int llv_set_psk(const u8 key[LLV_KEY_LEN])
{
	int rc;

	mutex_lock(&psk_lock);
	if (psk_installed) {
		rc = -EBUSY;
	} else {
		rc = crypto_shash_setkey(psk_hmac, key, LLV_KEY_LEN);
		if (!rc)
			smp_store_release(&psk_installed, true);
	}
	mutex_unlock(&psk_lock);
	return rc;
}

void llv_wipe_psk(void)
{
	mutex_lock(&psk_lock);
	WRITE_ONCE(psk_installed, false);
	if (!IS_ERR_OR_NULL(psk_hmac))
		crypto_free_shash(psk_hmac); /* wipes the keyed HMAC state */
	psk_hmac = NULL;
	mutex_unlock(&psk_lock);
}

/* session = HMAC-SHA256(psk, label || client_random || server_random), set as the GCM key. */
static int key_session(const u8 client_random[LLV_RANDOM_LEN],
		       const u8 server_random[LLV_RANDOM_LEN])
{
	SHASH_DESC_ON_STACK(desc, psk_hmac);
	u8 key[LLV_KEY_LEN];
	int rc;

	desc->tfm = psk_hmac;
	rc = crypto_shash_init(desc) ?:
	     crypto_shash_update(desc, LLV_SESSION_LABEL, sizeof(LLV_SESSION_LABEL) - 1) ?:
	     crypto_shash_update(desc, client_random, LLV_RANDOM_LEN) ?:
	     crypto_shash_update(desc, server_random, LLV_RANDOM_LEN) ?:
	     crypto_shash_final(desc, key) ?:
	     crypto_aead_setkey(gcm, key, LLV_KEY_LEN);
	shash_desc_zero(desc);
	memzero_explicit(key, sizeof(key));
	return rc;
}

/* Seals or opens frame in place: header (AAD) || text || tag. */
static int gcm_crypt(u8 *frame, u32 len, u32 dir, u64 seq, bool encrypt)
{
	struct scatterlist sg;
	DECLARE_CRYPTO_WAIT(wait);
	u8 iv[LLV_NONCE_LEN];

	put_unaligned_le32(dir, iv);
	put_unaligned_le64(seq, iv + sizeof(u32));
	sg_init_one(&sg, frame, LLV_HDR_LEN + len + LLV_TAG_LEN);
	aead_request_set_callback(gcm_req, CRYPTO_TFM_REQ_MAY_BACKLOG | CRYPTO_TFM_REQ_MAY_SLEEP,
				  crypto_req_done, &wait);
	aead_request_set_crypt(gcm_req, &sg, &sg, encrypt ? len : len + LLV_TAG_LEN, iv);
	aead_request_set_ad(gcm_req, LLV_HDR_LEN);
	return crypto_wait_req(encrypt ? crypto_aead_encrypt(gcm_req) : crypto_aead_decrypt(gcm_req),
			       &wait);
}

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

/* Seals the len-byte message already at c->tx + LLV_HDR_LEN and sends it. */
static int send_frame(struct llv_conn *c, u32 len)
{
	struct llv_frame_hdr *hdr = (struct llv_frame_hdr *)c->tx;
	int rc;

	hdr->magic = LLV_MAGIC;
	hdr->len = len;
	hdr->seq = c->send_seq;
	rc = gcm_crypt(c->tx, len, LLV_ROLE_SERVER, c->send_seq, true);
	if (rc)
		return rc;
	c->send_seq++;
	return send_all(c->sock, c->tx, LLV_HDR_LEN + len + LLV_TAG_LEN);
}

/* The sealed REP_ERROR that ends a bad connection, then, as the host agent
 * does, a half-close and a short drain of what the IDS still sends, so the
 * reply is not lost to a TCP reset caused by unread data. */
static void send_error(struct llv_conn *c, enum llv_error code, const char *why)
{
	struct llv_msg *msg = (struct llv_msg *)(c->tx + LLV_HDR_LEN);
	size_t text = strlen(why) + 1, drained = 0, got;
	unsigned long deadline = jiffies + HZ;

	msg->type = LLV_REP_ERROR;
	msg->flags = 0;
	msg->count = code;
	memcpy(msg + 1, why, text);
	pr_info_ratelimited("llview_agent: closing connection: %s\n", why);
	if (send_frame(c, sizeof(*msg) + text))
		return;
	kernel_sock_shutdown(c->sock, SHUT_WR);
	set_recv_timeout(c->sock, HZ);
	while (drained < LLV_DRAIN_MAX && time_before(jiffies, deadline)) {
		if (recv_some(c->sock, c->rx, LLV_FRAME_MAX, &got))
			break;
		drained += got;
	}
}

static int handshake(struct llv_conn *c)
{
	struct llv_hello theirs, mine = {
		.magic = LLV_MAGIC, .version = LLV_VERSION, .role = LLV_ROLE_SERVER,
	};
	size_t got;
	int rc;

	set_recv_timeout(c->sock, LLV_HELLO_TIMEOUT);
	rc = recv_all(c->sock, &theirs, sizeof(theirs), &got);
	if (rc)
		return rc;
	/* No session key yet, so nothing can be sealed: a bad hello is just closed. */
	if (theirs.magic != LLV_MAGIC || theirs.version != LLV_VERSION ||
	    theirs.role != LLV_ROLE_CLIENT) {
		pr_info_ratelimited("llview_agent: closing connection: bad hello\n");
		return -EPROTO;
	}
	get_random_bytes(mine.random, sizeof(mine.random));
	rc = send_all(c->sock, &mine, sizeof(mine));
	if (rc)
		return rc;
	c->send_seq = 0;
	c->recv_seq = 0;
	return key_session(theirs.random, mine.random);
}

void llv_serve_connection(struct llv_conn *c, const bool *stopping, long idle_timeout)
{
	struct llv_frame_hdr *hdr = (struct llv_frame_hdr *)c->rx;
	const char *why;
	size_t got;
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
		/* Same checks, same order as llv_check_header: before any allocation or read. */
		if (hdr->magic != LLV_MAGIC) {
			send_error(c, LLV_E_BAD_MAGIC, "not an llview peer (bad magic or version)");
			return;
		}
		if (hdr->len > LLV_MAX_PAYLOAD) {
			send_error(c, LLV_E_TOO_LARGE, "frame or request too large");
			return;
		}
		if (hdr->seq != c->recv_seq) {
			send_error(c, LLV_E_SEQUENCE, "frame out of sequence (replayed or reordered)");
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
		if (gcm_crypt(c->rx, hdr->len, LLV_ROLE_CLIENT, hdr->seq, false)) {
			memzero_explicit(c->rx + LLV_HDR_LEN, hdr->len); /* no unauthenticated text */
			send_error(c, LLV_E_AUTH, "frame failed authentication (wrong key or tampered)");
			return;
		}
		c->recv_seq++;
		why = "";
		rc = llv_handle_request(c->rx + LLV_HDR_LEN, hdr->len, c->tx + LLV_HDR_LEN, &why);
		if (rc < 0) {
			send_error(c, -rc, why);
			return;
		}
		if (send_frame(c, rc))
			return;
	}
}

// SPDX-License-Identifier: GPL-2.0
/*
 * session.c - one llview session inside the kernel, whatever transport
 * carries it: the pre-shared key, the hello check and HMAC-SHA256 session key,
 * AES-256-GCM frames (header as AAD, nonce = u32 sender role || u64 seq,
 * strict sequence) and the dispatch of an opened request to requests.c.
 * Mirrors protocol/llview_wire.c, which does the same with OpenSSL.
 * tcp.c and shm.c only move the frames.
 */
#include <linux/kernel.h>
#include <linux/mutex.h>
#include <linux/random.h>
#include <linux/scatterlist.h>
#include <linux/string.h>
#include <asm/unaligned.h>
#include <crypto/aead.h>
#include <crypto/hash.h>

#include "agent.h"

/* hmac(sha256) keyed with the pre-shared key: the module keeps the key only
 * as this transform's state, which crypto_free_shash wipes (kfree_sensitive).
 * Sessions only read it (their desc is on their stack), so both transports
 * may derive keys at once. */
static struct crypto_shash *psk_hmac;
static bool psk_installed;
static DEFINE_MUTEX(psk_lock);

int llv_crypto_init(void)
{
	psk_hmac = crypto_alloc_shash("hmac(sha256)", 0, 0);
	if (IS_ERR(psk_hmac)) {
		pr_err("llview_agent: hmac(sha256) unavailable (%ld)\n", PTR_ERR(psk_hmac));
		return PTR_ERR(psk_hmac);
	}
	return 0;
}

void llv_crypto_exit(void)
{
	llv_wipe_psk();
}

bool llv_have_psk(void)
{
	return smp_load_acquire(&psk_installed);
}

int llv_set_psk(const u8 key[LLV_KEY_LEN])
{
	int rc;

	mutex_lock(&psk_lock);
	if (psk_installed || IS_ERR_OR_NULL(psk_hmac)) {
		rc = -EBUSY;
	} else {
		rc = crypto_shash_setkey(psk_hmac, key, LLV_KEY_LEN);
		if (!rc)
			smp_store_release(&psk_installed, true);
	}
	mutex_unlock(&psk_lock);
	return rc;
}

/* Called once no session can use the key any more (every thread stopped). */
void llv_wipe_psk(void)
{
	mutex_lock(&psk_lock);
	WRITE_ONCE(psk_installed, false);
	if (!IS_ERR_OR_NULL(psk_hmac))
		crypto_free_shash(psk_hmac); /* wipes the keyed HMAC state */
	psk_hmac = NULL;
	mutex_unlock(&psk_lock);
}

int llv_session_alloc(struct llv_session *s)
{
	memset(s, 0, sizeof(*s));
	s->gcm = crypto_alloc_aead("gcm(aes)", 0, 0);
	if (IS_ERR(s->gcm)) {
		int rc = PTR_ERR(s->gcm);

		pr_err("llview_agent: gcm(aes) unavailable (%d): load gcm, ctr and ghash-generic "
		       "(or aesni-intel) first\n", rc);
		s->gcm = NULL;
		return rc;
	}
	s->req = aead_request_alloc(s->gcm, GFP_KERNEL);
	if (!s->req || crypto_aead_setauthsize(s->gcm, LLV_TAG_LEN) ||
	    crypto_aead_ivsize(s->gcm) != LLV_NONCE_LEN) {
		llv_session_free(s);
		return -ENOMEM;
	}
	pr_info_once("llview_agent: AES-256-GCM by %s\n",
		     crypto_tfm_alg_driver_name(crypto_aead_tfm(s->gcm)));
	return 0;
}

void llv_session_free(struct llv_session *s)
{
	aead_request_free(s->req); /* kfree_sensitive */
	if (s->gcm)
		crypto_free_aead(s->gcm); /* wipes the session key */
	memset(s, 0, sizeof(*s));
}

/* session = HMAC-SHA256(psk, label || client_random || server_random), set as the GCM key. */
static int key_session(struct llv_session *s, const u8 client_random[LLV_RANDOM_LEN],
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
	     crypto_aead_setkey(s->gcm, key, LLV_KEY_LEN);
	shash_desc_zero(desc);
	memzero_explicit(key, sizeof(key));
	return rc;
}

int llv_session_start(struct llv_session *s, const struct llv_hello *client,
		      struct llv_hello *server)
{
	char why[LLV_CORE_MSG_MAX];
	int rc;

	s->keyed = false;
	if (llv_core_check_hello(client, why)) {
		pr_info_ratelimited("llview_agent: closing session: %s\n", why);
		return -EPROTO;
	}
	if (!llv_have_psk())
		return -ENOKEY;
	server->magic = LLV_MAGIC;
	server->version = LLV_VERSION;
	server->role = LLV_ROLE_SERVER;
	get_random_bytes(server->random, sizeof(server->random));
	rc = key_session(s, client->random, server->random);
	if (rc)
		return rc;
	s->send_seq = 0;
	s->recv_seq = 0;
	s->keyed = true;
	return 0;
}

/* Seals or opens frame in place: header (AAD) || text || tag. */
static int gcm_crypt(struct llv_session *s, u8 *frame, u32 len, u32 dir, u64 seq, bool encrypt)
{
	struct scatterlist sg;
	DECLARE_CRYPTO_WAIT(wait);
	u8 iv[LLV_NONCE_LEN];

	put_unaligned_le32(dir, iv);
	put_unaligned_le64(seq, iv + sizeof(u32));
	sg_init_one(&sg, frame, LLV_HDR_LEN + len + LLV_TAG_LEN);
	aead_request_set_callback(s->req, CRYPTO_TFM_REQ_MAY_BACKLOG | CRYPTO_TFM_REQ_MAY_SLEEP,
				  crypto_req_done, &wait);
	aead_request_set_crypt(s->req, &sg, &sg, encrypt ? len : len + LLV_TAG_LEN, iv);
	aead_request_set_ad(s->req, LLV_HDR_LEN);
	return crypto_wait_req(encrypt ? crypto_aead_encrypt(s->req) : crypto_aead_decrypt(s->req),
			       &wait);
}

/* Seals the len-byte message already at frame + LLV_HDR_LEN; returns the frame length. */
static int seal(struct llv_session *s, u8 *frame, u32 len)
{
	struct llv_frame_hdr *hdr = (struct llv_frame_hdr *)frame;
	int rc;

	hdr->magic = LLV_MAGIC;
	hdr->len = len;
	hdr->seq = s->send_seq;
	rc = gcm_crypt(s, frame, len, LLV_ROLE_SERVER, s->send_seq, true);
	if (rc)
		return rc;
	s->send_seq++;
	return LLV_HDR_LEN + len + LLV_TAG_LEN;
}

int llv_seal_error(struct llv_session *s, u8 *tx, enum llv_error code, const char *why)
{
	u32 len = llv_core_error_reply(tx + LLV_HDR_LEN, -(int)code, why);

	pr_info_ratelimited("llview_agent: closing session: %s\n", why);
	s->keyed = false; /* the session ends with this frame */
	return seal(s, tx, len);
}

int llv_frame_check(const struct llv_session *s, const struct llv_frame_hdr *hdr, char *why)
{
	return -llv_core_check_frame(hdr, s->recv_seq, why);
}

int llv_session_answer(struct llv_session *s, u8 *rx, u8 *tx, bool *last)
{
	const struct llv_frame_hdr *hdr = (const struct llv_frame_hdr *)rx;
	char why[LLV_CORE_MSG_MAX];
	int rc;

	*last = true;
	if (gcm_crypt(s, rx, hdr->len, LLV_ROLE_CLIENT, hdr->seq, false)) {
		memzero_explicit(rx + LLV_HDR_LEN, hdr->len); /* no unauthenticated text */
		return llv_seal_error(s, tx, LLV_E_AUTH, llv_error_text(-LLV_E_AUTH));
	}
	s->recv_seq++;
	rc = llv_handle_request(rx + LLV_HDR_LEN, hdr->len, tx + LLV_HDR_LEN, why);
	if (rc < 0)
		return llv_seal_error(s, tx, -rc, why);
	*last = false;
	return seal(s, tx, rc);
}

/*
 * llview_wire.c - llview frames in user space: session keys, AES-256-GCM
 * sealing with sequence-number nonces, and whole-frame stream I/O.
 * See llview_proto.h for the format and docs/protocol.md for the reasons.
 */
#include "llview_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

int llv_load_key(const char *path, u8 key[LLV_KEY_LEN], char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open key file: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || (st.st_mode & 077)) {
		snprintf(err, errlen, "%s: key file is readable by others (chmod 600 it)", path);
		close(fd);
		return -1;
	}
	if (st.st_size != LLV_KEY_LEN || read(fd, key, LLV_KEY_LEN) != LLV_KEY_LEN) {
		snprintf(err, errlen, "%s: key file must hold exactly %u bytes", path, LLV_KEY_LEN);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static void *keyed_gcm(const u8 key[LLV_KEY_LEN], int encrypt)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

	if (ctx && EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, NULL, encrypt) == 1)
		return ctx;
	EVP_CIPHER_CTX_free(ctx);
	return NULL;
}

int llv_session_init(struct llv_session *s, const u8 psk[LLV_KEY_LEN],
		     const u8 client_random[LLV_RANDOM_LEN],
		     const u8 server_random[LLV_RANDOM_LEN], int role)
{
	u8 input[sizeof(LLV_SESSION_LABEL) - 1 + 2 * LLV_RANDOM_LEN];
	u8 key[EVP_MAX_MD_SIZE];
	unsigned int key_len = 0;
	size_t label = sizeof(LLV_SESSION_LABEL) - 1;

	memset(s, 0, sizeof(*s));
	memcpy(input, LLV_SESSION_LABEL, label);
	memcpy(input + label, client_random, LLV_RANDOM_LEN);
	memcpy(input + label + LLV_RANDOM_LEN, server_random, LLV_RANDOM_LEN);
	if (!HMAC(EVP_sha256(), psk, LLV_KEY_LEN, input, sizeof(input), key, &key_len) ||
	    key_len != LLV_KEY_LEN)
		return -LLV_W_CRYPTO;
	s->enc = keyed_gcm(key, 1);
	s->dec = keyed_gcm(key, 0);
	OPENSSL_cleanse(key, sizeof(key));
	if (!s->enc || !s->dec) {
		llv_session_free(s);
		return -LLV_W_CRYPTO;
	}
	s->send_dir = role;
	s->recv_dir = role == LLV_ROLE_CLIENT ? LLV_ROLE_SERVER : LLV_ROLE_CLIENT;
	return 0;
}

void llv_session_free(struct llv_session *s)
{
	EVP_CIPHER_CTX_free(s->enc); /* frees wipe the key schedule */
	EVP_CIPHER_CTX_free(s->dec);
	memset(s, 0, sizeof(*s));
}

static void make_nonce(u8 nonce[LLV_NONCE_LEN], u32 dir, u64 seq)
{
	memcpy(nonce, &dir, sizeof(dir));
	memcpy(nonce + sizeof(dir), &seq, sizeof(seq));
}

size_t llv_seal(struct llv_session *s, const void *pt, u32 len, u8 *out)
{
	struct llv_frame_hdr hdr = { .magic = LLV_MAGIC, .len = len, .seq = s->send_seq };
	u8 nonce[LLV_NONCE_LEN];
	u8 *ct = out + sizeof(hdr);
	int n, fin;

	make_nonce(nonce, s->send_dir, s->send_seq);
	memcpy(out, &hdr, sizeof(hdr));
	if (EVP_EncryptInit_ex(s->enc, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_EncryptUpdate(s->enc, NULL, &n, out, sizeof(hdr)) != 1 ||
	    EVP_EncryptUpdate(s->enc, ct, &n, pt, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(s->enc, ct + n, &fin) != 1 ||
	    EVP_CIPHER_CTX_ctrl(s->enc, EVP_CTRL_GCM_GET_TAG, LLV_TAG_LEN, ct + len) != 1)
		return 0;
	s->send_seq++;
	return llv_frame_size(len);
}

int llv_check_header(const struct llv_session *s, const struct llv_frame_hdr *h)
{
	if (h->magic != LLV_MAGIC)
		return -LLV_E_BAD_MAGIC;
	if (h->len > LLV_MAX_PAYLOAD)
		return -LLV_E_TOO_LARGE;
	if (h->seq != s->recv_seq)
		return -LLV_E_SEQUENCE;
	return 0;
}

int llv_open(struct llv_session *s, const struct llv_frame_hdr *h, const u8 *ct_and_tag,
	     u8 *pt)
{
	u8 nonce[LLV_NONCE_LEN];
	int n, fin, rc = llv_check_header(s, h);

	if (rc)
		return rc;
	make_nonce(nonce, s->recv_dir, h->seq);
	if (EVP_DecryptInit_ex(s->dec, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_DecryptUpdate(s->dec, NULL, &n, (const u8 *)h, sizeof(*h)) != 1 ||
	    EVP_DecryptUpdate(s->dec, pt, &n, ct_and_tag, (int)h->len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(s->dec, EVP_CTRL_GCM_SET_TAG, LLV_TAG_LEN,
				(void *)(ct_and_tag + h->len)) != 1)
		return -LLV_W_CRYPTO;
	if (EVP_DecryptFinal_ex(s->dec, pt + n, &fin) != 1) {
		OPENSSL_cleanse(pt, h->len); /* never hand out unauthenticated plaintext */
		return -LLV_E_AUTH;
	}
	s->recv_seq++;
	return 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const u8 *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -LLV_W_TIMEOUT : -LLV_W_IO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
	u8 *p = buf;

	while (len) {
		ssize_t n = recv(fd, p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -LLV_W_TIMEOUT : -LLV_W_IO;
		if (n == 0)
			return -LLV_W_CLOSED;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The client's side of the handshake; the agents' side checks the client's
 * hello with the request core (llv_core_check_hello, llview_core.c). */
int llv_handshake_client(int fd, const u8 psk[LLV_KEY_LEN], struct llv_session *s)
{
	struct llv_hello mine = { .magic = LLV_MAGIC, .version = LLV_VERSION,
				  .role = LLV_ROLE_CLIENT };
	struct llv_hello theirs;
	int rc;

	if (RAND_bytes(mine.random, LLV_RANDOM_LEN) != 1)
		return -LLV_W_CRYPTO;
	/* The client speaks first; the server answers only a well-formed hello. */
	if ((rc = write_all(fd, &mine, sizeof(mine))))
		return rc;
	if ((rc = read_all(fd, &theirs, sizeof(theirs))))
		return rc;
	if (theirs.magic != LLV_MAGIC || theirs.version != LLV_VERSION ||
	    theirs.role != LLV_ROLE_SERVER)
		return -LLV_E_BAD_MAGIC;
	return llv_session_init(s, psk, mine.random, theirs.random, LLV_ROLE_CLIENT);
}

int llv_send_msg(int fd, struct llv_session *s, const void *pt, u32 len, u8 *buf)
{
	size_t n = llv_seal(s, pt, len, buf);

	return n ? write_all(fd, buf, n) : -LLV_W_CRYPTO;
}

int llv_recv_msg(int fd, struct llv_session *s, u8 *pt, u32 cap, u32 *len, u8 *buf)
{
	struct llv_frame_hdr h;
	int rc;

	if ((rc = read_all(fd, &h, sizeof(h))))
		return rc;
	if ((rc = llv_check_header(s, &h)))
		return rc;
	if (h.len > cap)
		return -LLV_E_TOO_LARGE;
	if ((rc = read_all(fd, buf, h.len + LLV_TAG_LEN)))
		return rc;
	if ((rc = llv_open(s, &h, buf, pt)))
		return rc;
	*len = h.len;
	return 0;
}

const char *llv_strerror(int code)
{
	switch (-code) {
	case LLV_W_IO: return "connection error";
	case LLV_W_CLOSED: return "connection closed by peer";
	case LLV_W_TIMEOUT: return "peer did not answer in time";
	case LLV_W_CRYPTO: return "libcrypto failure";
	default: return llv_error_text(code);
	}
}

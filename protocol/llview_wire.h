/*
 * llview_wire.h - sealing, opening and moving llview frames in user space
 * (OpenSSL libcrypto AES-256-GCM and HMAC-SHA256). Used by the IDS runtime
 * and the host-side agent; the kernel agent does the same with the kernel
 * crypto API. The frame format is in llview_proto.h.
 */
#ifndef LLVIEW_WIRE_H
#define LLVIEW_WIRE_H

#include <stddef.h>
#include "llview_proto.h"

/* Failures that are not protocol errors (those are enum llv_error). */
enum llv_wire_error {
	LLV_W_IO = 100,      /* read/write failed */
	LLV_W_CLOSED = 101,  /* peer closed the connection */
	LLV_W_TIMEOUT = 102, /* peer did not answer in time */
	LLV_W_CRYPTO = 103,  /* libcrypto failed */
};

struct llv_session {
	void *enc; /* EVP_CIPHER_CTX, keyed once per session */
	void *dec;
	u32 send_dir, recv_dir;
	u64 send_seq, recv_seq;
};

/* Reads a 32-byte key file, refusing one readable by group or others.
 * Returns 0, or -1 with a message in err. */
int llv_load_key(const char *path, u8 key[LLV_KEY_LEN], char *err, size_t errlen);

/* Derives the session key from the pre-shared key and both hellos' randoms
 * and keys the ciphers. role is the local side (LLV_ROLE_CLIENT/SERVER). */
int llv_session_init(struct llv_session *s, const u8 psk[LLV_KEY_LEN],
		     const u8 client_random[LLV_RANDOM_LEN],
		     const u8 server_random[LLV_RANDOM_LEN], int role);
void llv_session_free(struct llv_session *s);

/* Seals len bytes of plaintext into out as one frame (header, ciphertext,
 * tag); out must hold llv_frame_size(len). Returns the frame size or 0. */
static inline size_t llv_frame_size(size_t len)
{
	return sizeof(struct llv_frame_hdr) + len + LLV_TAG_LEN;
}
size_t llv_seal(struct llv_session *s, const void *pt, u32 len, u8 *out);

/* Checks a received header against the session (magic, size limit, next
 * seq) and decrypts len bytes of ciphertext + tag into pt. Returns 0 or a
 * negative enum llv_error. The sequence advances only on success. */
int llv_check_header(const struct llv_session *s, const struct llv_frame_hdr *h);
int llv_open(struct llv_session *s, const struct llv_frame_hdr *h, const u8 *ct_and_tag,
	     u8 *pt);

/* Stream transport (TCP), the client's side (the agents serve theirs with
 * the request core's checks, llview_core.h). Each returns 0 or a negative enum llv_error /
 * llv_wire_error. llv_recv_msg decrypts into pt (capacity cap >=
 * LLV_MAX_PAYLOAD) and sets *len; buf is scratch of llv_frame_size(cap). */
int llv_handshake_client(int fd, const u8 psk[LLV_KEY_LEN], struct llv_session *s);
int llv_send_msg(int fd, struct llv_session *s, const void *pt, u32 len, u8 *buf);
int llv_recv_msg(int fd, struct llv_session *s, u8 *pt, u32 cap, u32 *len, u8 *buf);

/* Human-readable text for a negative code returned above. */
const char *llv_strerror(int code);

#endif /* LLVIEW_WIRE_H */

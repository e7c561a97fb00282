/* SPDX-License-Identifier: GPL-2.0 */
/*
 * agent.h - shared internals of the llview in-kernel agent (llview_agent.ko):
 * the transport-independent session (keys, AES-256-GCM frames, request
 * dispatch) that both transports use, and the functions the source files
 * offer each other. The wire format is protocol/llview_proto.h; the
 * shared-memory layout is protocol/llview_shm.h; requests are decoded and
 * answered by the core shared with the host agent, protocol/llview_core.c.
 */
#ifndef LLVIEW_KMOD_AGENT_H
#define LLVIEW_KMOD_AGENT_H

#include <linux/net.h>
#include <linux/types.h>

#include "llview_proto.h"
#include "llview_core.h"

#define LLV_HDR_LEN ((u32)sizeof(struct llv_frame_hdr))
/* One whole frame of the largest payload: header, ciphertext, tag. */
#define LLV_FRAME_MAX (LLV_HDR_LEN + (u32)LLV_MAX_PAYLOAD + LLV_TAG_LEN)

/* One IDS session, whatever carries its frames. Each transport owns one (its
 * own GCM transform: the key is per transform, and both transports serve at
 * the same time). Frames are sealed and opened in place in private buffers. */
struct llv_session {
	struct crypto_aead *gcm;
	struct aead_request *req;
	u64 send_seq, recv_seq;
	bool keyed;
};

/* session.c: the pre-shared key, sessions, frames. */
int llv_crypto_init(void);
void llv_crypto_exit(void);
/* 0 once a key is installed; the key device calls llv_set_psk exactly once. */
bool llv_have_psk(void);
int llv_set_psk(const u8 key[LLV_KEY_LEN]);
void llv_wipe_psk(void);

int llv_session_alloc(struct llv_session *s);
void llv_session_free(struct llv_session *s);
/* Checks the client's hello, fills in ours and keys the session (seqs from 0).
 * -EPROTO: not an llview client hello; -ENOKEY: no key installed yet. Either
 * way nothing can be sealed, so the transport just closes. */
int llv_session_start(struct llv_session *s, const struct llv_hello *client,
		      struct llv_hello *server);
/* Checks a received frame header before its body is read or copied (magic,
 * size limit, next seq: llv_core_check_frame, as the host agent checks).
 * Returns 0 or an enum llv_error with the reason in why (LLV_CORE_MSG_MAX). */
int llv_frame_check(const struct llv_session *s, const struct llv_frame_hdr *hdr, char *why);
/* The whole received frame at rx (header already checked) is opened in place
 * and served; the reply, or a REP_ERROR that ends the session (*last set), is
 * sealed at tx. Returns the sealed frame's length or a negative errno. */
int llv_session_answer(struct llv_session *s, u8 *rx, u8 *tx, bool *last);
/* Seals a REP_ERROR (code, why) at tx; returns its length or a negative errno. */
int llv_seal_error(struct llv_session *s, u8 *tx, enum llv_error code, const char *why);

/* tcp.c: serves one TCP connection until it ends; returns when the peer
 * leaves or stays silent between requests for idle_timeout jiffies, on a
 * protocol error (after the sealed error reply) or when *stopping is set. */
struct llv_conn {
	struct socket *sock;
	struct llv_session *session;
	u8 *rx, *tx;
};
void llv_serve_connection(struct llv_conn *c, const bool *stopping, long idle_timeout);

/* shm.c: the ivshmem PCI driver; each bound device is served by its own thread.
 * A client silent for idle_seconds (0: never) loses the region. */
int llv_shm_register(unsigned int idle_seconds);
void llv_shm_unregister(void);

/* requests.c: answers one authenticated request through the request core.
 * req/len is the plaintext message; the reply is written at out (capacity
 * LLV_MAX_PAYLOAD) and its length returned, or a negative enum llv_error with
 * a reason in why (capacity LLV_CORE_MSG_MAX). */
int llv_symbols_init(void);
int llv_handle_request(const u8 *req, u32 len, u8 *out, char *why);

#endif /* LLVIEW_KMOD_AGENT_H */

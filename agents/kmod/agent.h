/* SPDX-License-Identifier: GPL-2.0 */
/*
 * agent.h - shared internals of the llview in-kernel agent (llview_agent.ko):
 * the session state of the one connected IDS and the functions the three
 * source files offer each other. The wire format is agents/common/llview_proto.h.
 */
#ifndef LLVIEW_KMOD_AGENT_H
#define LLVIEW_KMOD_AGENT_H

#include <linux/net.h>
#include <linux/types.h>

#include "llview_proto.h"

#define LLV_HDR_LEN ((u32)sizeof(struct llv_frame_hdr))
/* One whole frame of the largest payload: header, ciphertext, tag. */
#define LLV_FRAME_MAX (LLV_HDR_LEN + (u32)LLV_MAX_PAYLOAD + LLV_TAG_LEN)

/* One connected IDS. The buffers hold whole frames (header at offset 0, the
 * message at LLV_HDR_LEN) and are sealed / opened in place. */
struct llv_conn {
	struct socket *sock;
	u64 send_seq, recv_seq;
	u8 *rx, *tx;
};

/* session.c: keys, AES-256-GCM frames, socket I/O. */
int llv_crypto_init(void);
void llv_crypto_exit(void);
/* 0 once a key is installed; the key device calls llv_set_psk exactly once. */
bool llv_have_psk(void);
int llv_set_psk(const u8 key[LLV_KEY_LEN]);
void llv_wipe_psk(void);
/* Serves one connection until it ends; returns when the peer leaves or stays
 * silent between requests for idle_timeout jiffies, on a protocol error (after
 * the sealed error reply) or when *stopping is set. */
void llv_serve_connection(struct llv_conn *c, const bool *stopping, long idle_timeout);

/* requests.c: answers one authenticated request. req/len is the plaintext
 * message; the reply is written at out (capacity LLV_MAX_PAYLOAD) and its
 * length returned, or a negative enum llv_error with a reason in *why. */
int llv_symbols_init(void);
int llv_handle_request(const u8 *req, u32 len, u8 *out, const char **why);

#endif /* LLVIEW_KMOD_AGENT_H */

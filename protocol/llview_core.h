/*
 * llview_core.h - the one request core of both agents: it decodes an
 * authenticated request, checks its lengths and limits, serves it from a
 * memory source and builds the reply, or says what is wrong with it. The
 * host-side agent (agents/host/) and the in-kernel agent (agents/kmod/)
 * compile the same llview_core.c; each only supplies a struct
 * llv_source_ops and moves frames. docs/protocol.md describes the requests.
 *
 * Freestanding: llview_core.c uses nothing but llview_compat.h.
 */
#ifndef LLVIEW_CORE_H
#define LLVIEW_CORE_H

#include "llview_proto.h"

/* Room for any message the core writes (NUL included). */
#define LLV_CORE_MSG_MAX 160u

/* What an agent serves memory and symbols from. ctx is the agent's. */
struct llv_source_ops {
	/* Reads len (1..LLV_PAGE_SIZE) bytes at addr into out; the range never
	 * crosses a page. Returns an enum llv_status: out is filled only on
	 * LLV_OK. Must not fault or block for long, whatever addr is. */
	u32 (*read)(void *ctx, u64 addr, u32 len, u8 *out);
	/* A symbol's address (name is NUL-terminated, never empty), 0 if unknown. */
	u64 (*lookup)(void *ctx, const char *name);
	/* The core-kernel symbol holding addr: writes its NUL-terminated name
	 * (at most cap bytes, cap = LLV_SYM_NAME_MAX) into name and sets *start
	 * and *size; returns 0, or -1 when no core-kernel symbol holds addr. */
	int (*symbolize)(void *ctx, u64 addr, u64 *start, u64 *size, char *name, u32 cap);
	/* Fills everything of struct llv_info (it comes zeroed). */
	void (*info)(void *ctx, struct llv_info *info);
	/* Called between units of work (pages, names, walk nodes): cond_resched()
	 * in the kernel; may be NULL. */
	void (*yield)(void *ctx);
};

/*
 * Serves one authenticated request (req, len bytes of plaintext). On success
 * returns 0 with the reply at rep (capacity LLV_MAX_PAYLOAD) and its length in
 * *rep_len. Otherwise returns a negative enum llv_error with a message in msg
 * (capacity LLV_CORE_MSG_MAX); the agent then sends REP_ERROR and closes.
 */
int llv_core_serve(const struct llv_source_ops *ops, void *ctx, const u8 *req, u32 len,
		   u8 *rep, u32 *rep_len, char *msg);

/*
 * The checks around requests that both agents make, with one message each:
 *  - a client hello (0, or -LLV_E_BAD_MAGIC: close without a reply, there is
 *    no key to seal one with);
 *  - a frame header before its body is read (magic, size limit, next seq);
 *  - a shared-memory request_len, before the header is read (header == NULL)
 *    and against the header's own length (header given).
 * Each returns 0 or a negative enum llv_error with a message in msg.
 */
int llv_core_check_hello(const struct llv_hello *hello, char *msg);
int llv_core_check_frame(const struct llv_frame_hdr *h, u64 expected_seq, char *msg);
int llv_core_check_shm_request(u32 request_len, u32 area_size, const struct llv_frame_hdr *h,
			       char *msg);

/* A shared-memory state word the agent did not write and no client may:
 * always -LLV_E_MALFORMED, with the message in msg. */
int llv_core_check_shm_state(u32 state, char *msg);


/* Writes the plaintext of a REP_ERROR (code a negative enum llv_error) at
 * rep; returns its length. */
u32 llv_core_error_reply(u8 *rep, int code, const char *msg);

#endif /* LLVIEW_CORE_H */

/*
 * llview_shm.h - the shared-memory transport's layout: one region (a file
 * in /dev/shm on the host, the same file as an ivshmem-plain BAR 2 inside a
 * guest) holding a control block and one request/reply slot. Frames in the
 * slot are exactly the TCP frames of llview_proto.h (header as AAD,
 * AES-256-GCM, per-direction sequence numbers), so everything but the
 * transport is shared with TCP. docs/protocol.md explains the choices.
 *
 * Signalling, as in the paper: a peer writes its frame, then publishes it
 * by storing a new value into a flag word (release); the other side
 * busy-waits on that word (acquire, with `pause`), then reads the frame.
 */
#ifndef LLVIEW_SHM_H
#define LLVIEW_SHM_H

#include "llview_proto.h"

#define LLV_SHM_MAGIC 0x53564c4cu /* "LLVS" */
#define LLV_SHM_VERSION 1
/* Region size: a power of two, as ivshmem wants; holds the control page and
 * one request area and one reply area, each large enough for any frame. */
#define LLV_SHM_SIZE (1u << 20)
#define LLV_SHM_CONTROL_SIZE 4096u
#define LLV_SHM_AREA_SIZE ((LLV_SHM_SIZE - LLV_SHM_CONTROL_SIZE) / 2)

/* Values of llv_shm_control.state (docs/protocol.md, "States"). The client
 * (the region's owner) stores HELLO unconditionally to start a session and
 * moves WELCOME/REPLY to REQUEST; the agent moves HELLO to WELCOME, REQUEST
 * to REPLY, and anything to CLOSED; moves are compare-and-swaps from the
 * state last acted on, each followed by generation += 1. */
enum llv_shm_state {
	LLV_SHM_IDLE = 0,    /* no session: a client may claim the region */
	LLV_SHM_HELLO = 1,   /* client wrote client_hello; server answers */
	LLV_SHM_WELCOME = 2, /* server wrote server_hello; session keyed */
	LLV_SHM_REQUEST = 3, /* a sealed request frame is in the request area */
	LLV_SHM_REPLY = 4,   /* a sealed reply frame is in the reply area */
	LLV_SHM_CLOSED = 5,  /* agent ended the session; reply_len > 0: a sealed
			      * REP_ERROR is in the reply area */
};

/*
 * The control block at offset 0. `server_ready` is set once by the agent
 * when it serves the region (and cleared when it stops), `owner` is the
 * claiming client's pid (claimed with compare-and-swap from 0) so two IDS
 * processes never share a session; `generation` grows with every state
 * change so a waiter can tell a new publish from an old one.
 */
struct llv_shm_control {
	u32 magic;
	u32 version;
	u32 server_ready;
	u32 owner;
	u32 state;
	u32 generation;
	u32 request_len;  /* bytes of the frame in the request area */
	u32 reply_len;    /* bytes of the reply frame so far: the client zeroes it
			   * before each request, the agent raises it as sealed
			   * pieces land (streamed replies) */
	struct llv_hello client_hello;
	struct llv_hello server_hello;
} __attribute__((aligned(64)));

static inline unsigned char *llv_shm_request_area(void *base)
{
	return (unsigned char *)base + LLV_SHM_CONTROL_SIZE;
}

static inline unsigned char *llv_shm_reply_area(void *base)
{
	return (unsigned char *)base + LLV_SHM_CONTROL_SIZE + LLV_SHM_AREA_SIZE;
}

#endif /* LLVIEW_SHM_H */

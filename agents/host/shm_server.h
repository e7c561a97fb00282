/*
 * shm_server.h - the host agent's shared-memory server: serves one region
 * (protocol/llview_shm.h) with the same requests and error replies as
 * the TCP server. docs/protocol.md ("Shared memory") describes it.
 */
#ifndef LLVIEW_SHM_SERVER_H
#define LLVIEW_SHM_SERVER_H

#include <stddef.h>

#include "llview_proto.h"

/* Serves one decrypted request: 0 with the reply plaintext in rep, or a
 * negative enum llv_error with a message (agent.c's serve()). */
typedef int (*llv_serve_fn)(const u8 *req, u32 len, u8 *rep, u32 *rep_len, char *msg,
			    size_t msglen);

/* Creates the region file (mode 0600, O_EXCL) or opens an existing one of
 * the right size (a QEMU ivshmem backend), locks it against a second agent,
 * maps and initialises it. Returns 0, or -1 with a message in err. */
int llv_shm_server_open(const char *path, char *err, size_t errlen);

/* Serves the region forever (run it in its own thread). A client silent
 * for idle_s seconds, or whose process is gone, loses the region. */
void llv_shm_server_run(const u8 psk[LLV_KEY_LEN], llv_serve_fn serve, int idle_s,
			int verbose);

/* Marks the region as no longer served, ends a session in progress (the
 * client sees CLOSED) and removes a region file the agent created.
 * Async-signal-safe; idempotent. */
void llv_shm_server_shutdown(void);

#endif /* LLVIEW_SHM_SERVER_H */

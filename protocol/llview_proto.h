/*
 * llview_proto.h - the llview wire protocol: the one definition of frame
 * layout, message kinds and error codes, shared by the IDS runtime, the
 * host-side agent and the in-kernel agent. docs/protocol.md explains it.
 *
 * All integers on the wire are little-endian (every peer is x86-64).
 */
#ifndef LLVIEW_PROTO_H
#define LLVIEW_PROTO_H

#ifdef __KERNEL__
#include <linux/types.h>
#else
#include <stdint.h>
typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int32_t s32;
#endif

#define LLV_MAGIC 0x31564c4cu       /* "LLV1" as little-endian bytes */
#define LLV_VERSION 1
#define LLV_PAGE_SIZE 4096u
#define LLV_KEY_LEN 32u
#define LLV_RANDOM_LEN 32u
#define LLV_NONCE_LEN 12u
#define LLV_TAG_LEN 16u

/* Most pages one READ request may name (and one reply may carry). */
#define LLV_MAX_PAGES 64u
/* Most addresses one SYMBOLIZE request may name, and the longest symbol
 * name a reply carries (the kernel's KSYM_NAME_LEN on 6.1, NUL included):
 * a full reply stays far below LLV_MAX_PAYLOAD. */
#define LLV_MAX_SYMBOLIZE 128u
#define LLV_SYM_NAME_MAX 512u
/* Largest plaintext a frame may carry: a full READ reply. A frame header
 * announcing more is refused before anything is read into memory. */
#define LLV_MAX_PAYLOAD \
	(sizeof(struct llv_msg) + LLV_MAX_PAGES * (sizeof(u32) + LLV_PAGE_SIZE))

/*
 * Handshake, in the clear, one hello each way (client first). Each side
 * contributes 32 random bytes; both derive the session key
 *   session = HMAC-SHA256(psk, "llview-v1 session" || client_random || server_random)
 * so every connection has a fresh key and nonces never repeat under a key.
 */
struct llv_hello {
	u32 magic;
	u16 version;
	u16 role; /* LLV_ROLE_CLIENT or LLV_ROLE_SERVER */
	u8 random[LLV_RANDOM_LEN];
} __attribute__((packed));

#define LLV_ROLE_CLIENT 1
#define LLV_ROLE_SERVER 2
#define LLV_SESSION_LABEL "llview-v1 session"

/*
 * Every later frame: this header (authenticated as AAD, not encrypted),
 * then `len` bytes of AES-256-GCM ciphertext, then the 16-byte tag.
 * nonce = u32 direction (the sender's role) || u64 seq, both little-endian.
 * seq starts at 0 in each direction and grows by one per frame; a receiver
 * accepts only the exact next seq, so replayed, dropped and reordered frames
 * fail, and so does any frame that does not authenticate.
 */
struct llv_frame_hdr {
	u32 magic;
	u32 len;
	u64 seq;
} __attribute__((packed));

/* The plaintext of a frame starts with this message header. */
struct llv_msg {
	u16 type;
	u16 flags;
	u32 count;
} __attribute__((packed));

enum llv_msg_type {
	/* count page addresses (u64, any address in the page) follow. */
	LLV_REQ_READ = 1,
	/* count u32 statuses (enum llv_status) follow, then one 4 KiB page
	 * for each status LLV_OK, in request order. */
	LLV_REP_READ = 2,
	/* count NUL-terminated symbol names follow, back to back. */
	LLV_REQ_SYMS = 3,
	/* count u64 addresses follow (0: the symbol is unknown). */
	LLV_REP_SYMS = 4,
	/* no body. */
	LLV_REQ_INFO = 5,
	/* struct llv_info follows. */
	LLV_REP_INFO = 6,
	/* count = enum llv_error; a NUL-terminated message follows. The
	 * sender closes the connection after it. */
	LLV_REP_ERROR = 7,
	/* count u64 addresses follow: which core-kernel symbol holds each. */
	LLV_REQ_SYMBOLIZE = 8,
	/* count struct llv_symbol follow, then count NUL-terminated names back
	 * to back ("" where start is 0: the address is not in the core kernel's
	 * image, e.g. a module, the heap, or nothing). */
	LLV_REP_SYMBOLIZE = 9,
	/* count struct llv_range follow: byte ranges, each within one page. */
	LLV_REQ_READ_RANGES = 10,
	/* count struct llv_range_data, in request order, each followed by its
	 * len bytes when its status is LLV_OK (nothing otherwise, no padding). */
	LLV_REP_READ_RANGES = 11,
	/* one struct llv_walk (count = 0): follow a linked list in the agent. */
	LLV_REQ_WALK = 12,
	/* struct llv_walk_end, then count struct llv_range_data records, each
	 * followed by its bytes when LLV_OK, in the order the agent read them. */
	LLV_REP_WALK = 13,
};

/*
 * Reads by range (READ_RANGES) and agent-side list walks (WALK).
 *
 * A READ_RANGES request names up to LLV_MAX_RANGES ranges; each has
 * 1 <= len <= LLV_PAGE_SIZE and lies within one page ((addr & 4095) + len <=
 * 4096), reserved is 0, and together they ask for at most
 * LLV_MAX_RANGE_BYTES. The reply carries one record per range, in request
 * order. LLV_MAX_RANGE_BYTES is what is left of LLV_MAX_PAYLOAD once the
 * message header and LLV_MAX_RANGES records are counted (262408 - 8 - 256 *
 * 16), so every valid request's reply fits in one frame (64 whole pages
 * would not: their 64 records need 768 bytes more than READ's statuses).
 */
#define LLV_MAX_RANGES 256u
#define LLV_MAX_RANGE_BYTES 258304u

struct llv_range {
	u64 addr;
	u32 len;
	u32 reserved; /* 0 */
} __attribute__((packed));

/* One range as the agent answers it: len bytes of guest memory at addr
 * follow when status is LLV_OK; for any other enum llv_status, nothing
 * follows (a range is served whole or not at all). */
struct llv_range_data {
	u64 addr;
	u32 len;
	u32 status;
} __attribute__((packed));

/*
 * WALK: the agent follows a list through the guest's memory, as the IDS's
 * loop would, and returns every node's footprint, so a whole list costs one
 * round trip. It executes only this description of offsets, never code:
 *
 *   link_at = first
 *   for (n = 0; n < max_nodes; n++) {
 *       node = *(u64 *)link_at          (read 8 bytes; a record of its own)
 *       if (node == 0 || node == stop)  end: LLV_WALK_STOP
 *       for each range r:  record [node + r.offset, + r.len)
 *       for each deref d:  p = *(u64 *)(node + d.pointer) (taken from the
 *                          node's records when a range covers it, else
 *                          read as a record of its own);
 *                          if p != 0: record [p + d.offset, + d.len)
 *       link_at = node + link
 *   }
 *   end: LLV_WALK_LIMIT
 *
 * A link that cannot be read ends the walk with LLV_WALK_BAD_LINK (next =
 * link_at, its record carries the status). A reply that would grow past
 * LLV_MAX_PAYLOAD ends before the node that does not fit, with
 * LLV_WALK_FULL; next is then the link_at to continue from. The record of a
 * range that cannot be read carries its status and the walk goes on (the
 * IDS's own read of it will report it). Ranges and derefs may straddle a
 * page boundary; offsets are signed (a list node is often inside its
 * object: ranges before it have negative offsets).
 *
 * As both agents implement it (protocol/llview_core.c):
 *  - a deref's pointer comes from a range of the same node that covers all
 *    8 bytes and was read (LLV_OK); otherwise it is its own 8-byte record,
 *    and when that record is not LLV_OK there is no target record;
 *  - "fits" counts each record with all its len bytes, before it is read;
 *    a node that does not fit is taken back whole (its link record
 *    included), so next always names a link that was not yet followed;
 *  - nodes counts the nodes whose records are in the reply; on STOP next
 *    is 0 (the link record that held 0 or stop is in the reply);
 *  - link, like the offsets, is below LLV_MAX_WALK_OFFSET; count is 0 in
 *    the request and the number of records in the reply.
 */
#define LLV_MAX_WALK_NODES 4096u
#define LLV_MAX_WALK_RANGES 32u
#define LLV_MAX_WALK_DEREFS 16u
#define LLV_MAX_WALK_OFFSET (1 << 20) /* |offset| and |pointer| below 1 MiB */

struct llv_walk {
	u64 first;     /* guest address of the pointer to the first node (&head->next) */
	u64 stop;      /* a node equal to this ends the walk (the list head); 0 always does */
	u32 link;      /* offset in a node of the pointer to the next node */
	u32 max_nodes; /* 1 .. LLV_MAX_WALK_NODES */
	u16 nranges;   /* 0 .. LLV_MAX_WALK_RANGES struct llv_walk_range follow */
	u16 nderefs;   /* 0 .. LLV_MAX_WALK_DEREFS struct llv_walk_deref follow them */
	u32 reserved;  /* 0 */
} __attribute__((packed));

struct llv_walk_range {
	s32 offset; /* from the node */
	u32 len;    /* 1 .. LLV_PAGE_SIZE */
} __attribute__((packed));

struct llv_walk_deref {
	s32 pointer; /* offset from the node of a u64 pointer */
	s32 offset;  /* from the pointer's value */
	u32 len;     /* 1 .. LLV_PAGE_SIZE */
	u32 reserved; /* 0 */
} __attribute__((packed));

enum llv_walk_reason {
	LLV_WALK_STOP = 0,     /* reached stop or a NULL link */
	LLV_WALK_LIMIT = 1,    /* max_nodes visited */
	LLV_WALK_FULL = 2,     /* the reply is full; continue from next */
	LLV_WALK_BAD_LINK = 3, /* the link at next could not be read */
};

struct llv_walk_end {
	u32 nodes;  /* nodes visited */
	u32 reason; /* enum llv_walk_reason */
	u64 next;   /* LLV_WALK_LIMIT/FULL: the link_at to continue from; BAD_LINK: the link */
} __attribute__((packed));

/* One SYMBOLIZE answer, as the kernel's own kallsyms_lookup() gives it for
 * the core kernel (its image from _stext to _end; modules are not looked
 * up, so both agents answer alike): the symbol's start and its size (up to
 * the next symbol with a higher address). */
struct llv_symbol {
	u64 start;
	u64 size;
} __attribute__((packed));

/* Per-page outcome of a READ. */
enum llv_status {
	LLV_OK = 0,
	LLV_UNMAPPED = 1,     /* no translation in the guest page tables */
	LLV_NONCANONICAL = 2, /* not a canonical 48/57-bit address */
	LLV_USER_ADDRESS = 3, /* lower half: not kernel memory */
	LLV_OUTSIDE_RAM = 4,  /* translates to a physical address with no RAM */
};

/* Why a connection was refused or ended. */
enum llv_error {
	LLV_E_BAD_MAGIC = 1,  /* not an llview peer, or wrong version */
	LLV_E_AUTH = 2,       /* frame did not authenticate: wrong key or tampered */
	LLV_E_SEQUENCE = 3,   /* replayed or reordered frame */
	LLV_E_TOO_LARGE = 4,  /* frame or request over the limits above */
	LLV_E_MALFORMED = 5,  /* frame authenticated but its message is malformed */
	LLV_E_BAD_TYPE = 6,   /* unknown message type */
	LLV_E_INTERNAL = 7,   /* the agent could not serve (guest not ready, ...) */
};

struct llv_info {
	u64 kaslr_offset;
	u64 page_offset_base;
	u32 paging_levels; /* 4 or 5 */
	u32 reserved;
	char release[64];  /* the running kernel's uname -r, NUL-terminated */
} __attribute__((packed));

/* What each enum llv_error means, for messages (the one table: the agents'
 * error replies and the runtime's errors both use it). code is negative. */
static inline const char *llv_error_text(int code)
{
	switch (-code) {
	case LLV_E_BAD_MAGIC: return "not an llview peer (bad magic or version)";
	case LLV_E_AUTH: return "frame failed authentication (wrong key or tampered)";
	case LLV_E_SEQUENCE: return "frame out of sequence (replayed or reordered)";
	case LLV_E_TOO_LARGE: return "frame or request too large";
	case LLV_E_MALFORMED: return "malformed message";
	case LLV_E_BAD_TYPE: return "unknown message type";
	case LLV_E_INTERNAL: return "agent could not serve the request";
	default: return "unknown error";
	}
}

#endif /* LLVIEW_PROTO_H */

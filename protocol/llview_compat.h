/*
 * llview_compat.h - the little the request core (llview_core.c) needs from
 * its surroundings, so the same file compiles freestanding into the kernel
 * module (Kbuild) and into the host agent: fixed-width types (through
 * llview_proto.h), memcpy/memset and little-endian loads and stores. Nothing
 * else of libc or of the kernel is used by the core.
 */
#ifndef LLVIEW_COMPAT_H
#define LLVIEW_COMPAT_H

#include "llview_proto.h"

#define llv_memcpy(d, s, n) __builtin_memcpy((d), (s), (n))
#define llv_memset(d, c, n) __builtin_memset((d), (c), (n))

/* Unaligned little-endian access (every peer is x86-64, but the core says
 * what it means): through memcpy, which compilers turn into one move. */
static inline u64 llv_get_le64(const void *p)
{
	const u8 *b = (const u8 *)p;

	return (u64)b[0] | (u64)b[1] << 8 | (u64)b[2] << 16 | (u64)b[3] << 24 |
	       (u64)b[4] << 32 | (u64)b[5] << 40 | (u64)b[6] << 48 | (u64)b[7] << 56;
}

static inline u32 llv_get_le32(const void *p)
{
	const u8 *b = (const u8 *)p;

	return (u32)b[0] | (u32)b[1] << 8 | (u32)b[2] << 16 | (u32)b[3] << 24;
}

static inline u16 llv_get_le16(const void *p)
{
	const u8 *b = (const u8 *)p;

	return (u16)(b[0] | b[1] << 8);
}

static inline void llv_put_le64(void *p, u64 v)
{
	u8 *b = (u8 *)p;
	int i;

	for (i = 0; i < 8; i++)
		b[i] = (u8)(v >> (8 * i));
}

static inline void llv_put_le32(void *p, u32 v)
{
	u8 *b = (u8 *)p;

	b[0] = (u8)v;
	b[1] = (u8)(v >> 8);
	b[2] = (u8)(v >> 16);
	b[3] = (u8)(v >> 24);
}

static inline void llv_put_le16(void *p, u16 v)
{
	u8 *b = (u8 *)p;

	b[0] = (u8)v;
	b[1] = (u8)(v >> 8);
}

#endif /* LLVIEW_COMPAT_H */

/*
 * llview_core.c - the request core shared by both agents (llview_core.h):
 * decoding, length and limit checks, dispatch and reply building, over a
 * struct llv_source_ops. Freestanding: compiled as is into the host agent
 * and, through agents/kmod/core.c, into the kernel module.
 *
 * Every count, length and offset comes from the network: each is checked
 * before it is used, every reply is bounded by LLV_MAX_PAYLOAD, and the core
 * only ever reads guest memory through ops->read.
 */
#include "llview_compat.h"
#include "llview_core.h"

/* ---- messages -------------------------------------------------------- */

/* A tiny formatter for the messages (%s %u %d %llu %llx): neither libc's nor
 * the kernel's snprintf is at hand in both places. Truncates to
 * LLV_CORE_MSG_MAX - 1 characters. */
static void put_char(char *out, u32 *n, char c)
{
	if (*n + 1 < LLV_CORE_MSG_MAX)
		out[(*n)++] = c;
}

static void put_number(char *out, u32 *n, unsigned long long v, unsigned int base)
{
	char digits[24];
	int i = 0;

	do {
		digits[i++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (i)
		put_char(out, n, digits[--i]);
}

static int fmt(char *out, const char *f, ...) __attribute__((format(printf, 2, 3)));
static int fmt(char *out, const char *f, ...)
{
	__builtin_va_list ap;
	u32 n = 0;

	__builtin_va_start(ap, f);
	for (; *f; f++) {
		if (*f != '%') {
			put_char(out, &n, *f);
			continue;
		}
		f++;
		if (*f == 's') {
			const char *s = __builtin_va_arg(ap, const char *);

			while (*s)
				put_char(out, &n, *s++);
		} else if (*f == 'u') {
			put_number(out, &n, __builtin_va_arg(ap, unsigned int), 10);
		} else if (*f == 'd') {
			int v = __builtin_va_arg(ap, int);

			if (v < 0)
				put_char(out, &n, '-');
			put_number(out, &n, v < 0 ? -(long long)v : v, 10);
		} else if (f[0] == 'l' && f[1] == 'l' && (f[2] == 'u' || f[2] == 'x')) {
			put_number(out, &n, __builtin_va_arg(ap, unsigned long long),
				   f[2] == 'u' ? 10 : 16);
			f += 2;
		} else {
			put_char(out, &n, '%');
			if (!*f)
				break;
			put_char(out, &n, *f);
		}
	}
	__builtin_va_end(ap);
	out[n] = 0;
	return 0;
}

u32 llv_core_error_reply(u8 *rep, int code, const char *msg)
{
	u32 n = 0;

	llv_put_le16(rep, LLV_REP_ERROR);
	llv_put_le16(rep + 2, 0);
	llv_put_le32(rep + 4, (u32)-code);
	while (msg[n] && n + 1 < LLV_CORE_MSG_MAX)
		n++;
	llv_memcpy(rep + sizeof(struct llv_msg), msg, n);
	rep[sizeof(struct llv_msg) + n] = 0;
	return (u32)sizeof(struct llv_msg) + n + 1;
}

/* ---- checks around requests ------------------------------------------ */

int llv_core_check_hello(const struct llv_hello *hello, char *msg)
{
	u32 magic = llv_get_le32(&hello->magic);
	u16 version = llv_get_le16(&hello->version), role = llv_get_le16(&hello->role);

	if (magic != LLV_MAGIC || version != LLV_VERSION || role != LLV_ROLE_CLIENT) {
		fmt(msg, "bad hello (magic %llx, version %u, role %u): not an llview client",
		    (unsigned long long)magic, version, role);
		return -LLV_E_BAD_MAGIC;
	}
	return 0;
}

int llv_core_check_frame(const struct llv_frame_hdr *h, u64 expected_seq, char *msg)
{
	if (llv_get_le32(&h->magic) != LLV_MAGIC) {
		fmt(msg, "%s", llv_error_text(-LLV_E_BAD_MAGIC));
		return -LLV_E_BAD_MAGIC;
	}
	if (llv_get_le32(&h->len) > LLV_MAX_PAYLOAD) {
		fmt(msg, "frame of %u bytes: at most %u", llv_get_le32(&h->len),
		    (unsigned int)LLV_MAX_PAYLOAD);
		return -LLV_E_TOO_LARGE;
	}
	if (llv_get_le64(&h->seq) != expected_seq) {
		fmt(msg, "%s", llv_error_text(-LLV_E_SEQUENCE));
		return -LLV_E_SEQUENCE;
	}
	return 0;
}

int llv_core_check_shm_request(u32 n, u32 area_size, const struct llv_frame_hdr *h, char *msg)
{
	const u32 overhead = (u32)sizeof(struct llv_frame_hdr) + LLV_TAG_LEN;

	if (!h) {
		if (n > area_size) {
			fmt(msg, "request_len %u exceeds the request area (%u bytes)", n, area_size);
			return -LLV_E_TOO_LARGE;
		}
		if (n < overhead) {
			fmt(msg, "request_len %u is shorter than a frame", n);
			return -LLV_E_MALFORMED;
		}
		return 0;
	}
	/* h->len <= LLV_MAX_PAYLOAD here (llv_core_check_frame): no overflow. */
	if (n != llv_get_le32(&h->len) + overhead) {
		fmt(msg, "request_len %u does not match the frame's length (%u)", n,
		    llv_get_le32(&h->len) + overhead);
		return -LLV_E_MALFORMED;
	}
	return 0;
}

int llv_core_check_shm_state(u32 state, char *msg)
{
	fmt(msg, "state word holds %u, not a client state", state);
	return -LLV_E_MALFORMED;
}

/* ---- requests -------------------------------------------------------- */

struct core {
	const struct llv_source_ops *ops;
	void *ctx;
	const u8 *req; /* the request: header, then body */
	u32 len;
	u32 count;
	u8 *rep;
	char *msg;
};

static void yield(const struct core *c)
{
	if (c->ops->yield)
		c->ops->yield(c->ctx);
}

/* A request whose body is count u64 addresses (READ, SYMBOLIZE): at most max
 * of them, and exactly that many bytes. */
static int check_addresses(const struct core *c, const char *what, const char *unit, u32 max)
{
	unsigned long long want = sizeof(struct llv_msg) + (unsigned long long)c->count * 8;

	if (c->count > max) {
		fmt(c->msg, "%s of %u %s: at most %u per request", what, c->count, unit, max);
		return -LLV_E_TOO_LARGE;
	}
	if (c->len != want) {
		fmt(c->msg, "%s of %u %s must carry %llu bytes, not %u", what, c->count, unit, want,
		    c->len);
		return -LLV_E_MALFORMED;
	}
	return 0;
}

/* READ: count page addresses in; count statuses, then each mapped page, out. */
static int serve_read(struct core *c, u32 *rep_len)
{
	u8 *status = c->rep + sizeof(struct llv_msg);
	u8 *page = status + c->count * 4;
	u32 i;
	int rc = check_addresses(c, "READ", "pages", LLV_MAX_PAGES);

	if (rc)
		return rc;
	for (i = 0; i < c->count; i++) {
		u64 va = llv_get_le64(c->req + sizeof(struct llv_msg) + i * 8);
		u32 st = c->ops->read(c->ctx, va & ~(u64)(LLV_PAGE_SIZE - 1), LLV_PAGE_SIZE, page);

		llv_put_le32(status + i * 4, st);
		if (st == LLV_OK)
			page += LLV_PAGE_SIZE;
		yield(c);
	}
	*rep_len = (u32)(page - c->rep);
	return 0;
}

/* SYMS: count NUL-terminated names in, count addresses out. */
static int serve_syms(struct core *c, u32 *rep_len)
{
	const u32 max = (LLV_MAX_PAYLOAD - sizeof(struct llv_msg)) / 8;
	const char *p = (const char *)c->req + sizeof(struct llv_msg);
	const char *end = (const char *)c->req + c->len;
	u8 *out = c->rep + sizeof(struct llv_msg);
	u32 i;

	if (c->count > max) {
		fmt(c->msg, "SYMS of %u names: at most %u per request", c->count, max);
		return -LLV_E_TOO_LARGE;
	}
	for (i = 0; i < c->count; i++) {
		const char *nul = p;

		while (nul < end && *nul)
			nul++;
		if (nul == end) {
			fmt(c->msg, "SYMS announces %u names but carries only %u", c->count, i);
			return -LLV_E_MALFORMED;
		}
		llv_put_le64(out + i * 8, nul > p ? c->ops->lookup(c->ctx, p) : 0);
		p = nul + 1;
		yield(c); /* a look-up may scan all of kallsyms */
	}
	if (p != end) {
		fmt(c->msg, "SYMS carries %u bytes after its %u names", (unsigned int)(end - p),
		    c->count);
		return -LLV_E_MALFORMED;
	}
	*rep_len = (u32)sizeof(struct llv_msg) + c->count * 8;
	return 0;
}

/* SYMBOLIZE: count addresses in; count struct llv_symbol, then the names, out. */
static int serve_symbolize(struct core *c, u32 *rep_len)
{
	u8 *sym = c->rep + sizeof(struct llv_msg);
	char *names = (char *)(sym + c->count * sizeof(struct llv_symbol));
	u32 i;
	int rc = check_addresses(c, "SYMBOLIZE", "addresses", LLV_MAX_SYMBOLIZE);

	if (rc)
		return rc;
	for (i = 0; i < c->count; i++) {
		u64 va = llv_get_le64(c->req + sizeof(struct llv_msg) + i * 8);
		u64 start = 0, size = 0;
		u32 n = 0;

		/* The reply has room for count full-length names (LLV_SYM_NAME_MAX each). */
		if (c->ops->symbolize(c->ctx, va, &start, &size, names, LLV_SYM_NAME_MAX) == 0) {
			names[LLV_SYM_NAME_MAX - 1] = 0;
			while (names[n])
				n++;
		}
		if (!n)
			start = size = 0;
		names[n] = 0;
		llv_put_le64(sym + i * sizeof(struct llv_symbol), start);
		llv_put_le64(sym + i * sizeof(struct llv_symbol) + 8, size);
		names += n + 1;
	}
	*rep_len = (u32)((u8 *)names - c->rep);
	return 0;
}

static int serve_info(struct core *c, u32 *rep_len)
{
	struct llv_info info;

	if (c->len != sizeof(struct llv_msg)) {
		fmt(c->msg, "INFO has no body, but %u bytes came",
		    c->len - (u32)sizeof(struct llv_msg));
		return -LLV_E_MALFORMED;
	}
	llv_memset(&info, 0, sizeof(info));
	c->ops->info(c->ctx, &info);
	info.release[sizeof(info.release) - 1] = 0;
	llv_memcpy(c->rep + sizeof(struct llv_msg), &info, sizeof(info));
	*rep_len = (u32)(sizeof(struct llv_msg) + sizeof(info));
	return 0;
}

/* ---- READ_RANGES and WALK: records of byte ranges ---------------------- */

/* Not an enum llv_status: a record that does not fit in the reply. */
#define NO_ROOM 0xffffffffu

/* Reads len (1..LLV_PAGE_SIZE) bytes at addr, which may straddle one page
 * boundary: both parts, or the status of the first that fails. */
static u32 read_span(const struct core *c, u64 addr, u32 len, u8 *out)
{
	u32 first = LLV_PAGE_SIZE - (u32)(addr & (LLV_PAGE_SIZE - 1));
	u32 st;

	if (first >= len)
		return c->ops->read(c->ctx, addr, len, out);
	st = c->ops->read(c->ctx, addr, first, out);
	if (st == LLV_OK)
		st = c->ops->read(c->ctx, addr + first, len - first, out + first);
	return st;
}

/* Appends the record of [addr, addr + len) at *pos: a struct llv_range_data,
 * then its bytes when they could be read. Returns its status (*data points at
 * the bytes when LLV_OK), or NO_ROOM, with nothing written, when the record
 * with all its bytes would not fit in LLV_MAX_PAYLOAD. */
static u32 record(struct core *c, u32 *pos, u32 *nrec, u64 addr, u32 len, const u8 **data)
{
	u8 *r = c->rep + *pos;
	u32 st;

	if (*pos + sizeof(struct llv_range_data) + len > LLV_MAX_PAYLOAD)
		return NO_ROOM;
	st = read_span(c, addr, len, r + sizeof(struct llv_range_data));
	llv_put_le64(r, addr);
	llv_put_le32(r + 8, len);
	llv_put_le32(r + 12, st);
	*pos += (u32)sizeof(struct llv_range_data) + (st == LLV_OK ? len : 0);
	(*nrec)++;
	if (data)
		*data = st == LLV_OK ? r + sizeof(struct llv_range_data) : 0;
	return st;
}

_Static_assert(sizeof(struct llv_msg) + LLV_MAX_RANGES * sizeof(struct llv_range_data) +
		       LLV_MAX_RANGE_BYTES <= LLV_MAX_PAYLOAD,
	       "every valid READ_RANGES reply fits in one frame");

/* READ_RANGES: count struct llv_range in, count records out, in order. */
static int serve_read_ranges(struct core *c, u32 *rep_len)
{
	const u8 *ranges = c->req + sizeof(struct llv_msg);
	unsigned long long want = sizeof(struct llv_msg) +
				  (unsigned long long)c->count * sizeof(struct llv_range);
	unsigned long long total = 0;
	u32 pos = sizeof(struct llv_msg), nrec = 0, i;

	if (c->count > LLV_MAX_RANGES) {
		fmt(c->msg, "READ_RANGES of %u ranges: at most %u per request", c->count,
		    LLV_MAX_RANGES);
		return -LLV_E_TOO_LARGE;
	}
	if (c->len != want) {
		fmt(c->msg, "READ_RANGES of %u ranges must carry %llu bytes, not %u", c->count, want,
		    c->len);
		return -LLV_E_MALFORMED;
	}
	for (i = 0; i < c->count; i++) {
		const u8 *r = ranges + i * sizeof(struct llv_range);
		u64 addr = llv_get_le64(r);
		u32 len = llv_get_le32(r + 8);

		if (llv_get_le32(r + 12)) {
			fmt(c->msg, "READ_RANGES range %u: reserved is %u, not 0", i,
			    llv_get_le32(r + 12));
			return -LLV_E_MALFORMED;
		}
		if (len == 0 || len > LLV_PAGE_SIZE) {
			fmt(c->msg, "READ_RANGES range %u: len %u is not 1..%u", i, len, LLV_PAGE_SIZE);
			return -LLV_E_MALFORMED;
		}
		if ((addr & (LLV_PAGE_SIZE - 1)) + len > LLV_PAGE_SIZE) {
			fmt(c->msg, "READ_RANGES range %u: %u bytes at 0x%llx cross a page boundary", i,
			    len, (unsigned long long)addr);
			return -LLV_E_MALFORMED;
		}
		total += len;
	}
	if (total > LLV_MAX_RANGE_BYTES) {
		fmt(c->msg, "READ_RANGES asks for %llu bytes: at most %u per request", total,
		    (unsigned int)LLV_MAX_RANGE_BYTES);
		return -LLV_E_TOO_LARGE;
	}
	for (i = 0; i < c->count; i++) {
		const u8 *r = ranges + i * sizeof(struct llv_range);

		/* Cannot be NO_ROOM: the assertion above. */
		record(c, &pos, &nrec, llv_get_le64(r), llv_get_le32(r + 8), 0);
		yield(c);
	}
	*rep_len = pos;
	return 0;
}

static int offset_ok(long long v)
{
	return v > -(long long)LLV_MAX_WALK_OFFSET && v < (long long)LLV_MAX_WALK_OFFSET;
}

static u64 at(u64 base, s32 offset)
{
	return base + (u64)(long long)offset;
}

/* The most one node can add (link, ranges, derefs with their pointers):
 * every WALK reply has room for at least one node. */
_Static_assert(sizeof(struct llv_msg) + sizeof(struct llv_walk_end) +
		       (sizeof(struct llv_range_data) + 8) +
		       LLV_MAX_WALK_RANGES * (sizeof(struct llv_range_data) + LLV_PAGE_SIZE) +
		       LLV_MAX_WALK_DEREFS * (2 * sizeof(struct llv_range_data) + 8 + LLV_PAGE_SIZE)
	       <= LLV_MAX_PAYLOAD, "one node always fits in a WALK reply");

/* Checks a WALK description; 0 or an error with c->msg set. */
static int check_walk(struct core *c, const u8 *w, u32 *max_nodes, u16 *nranges, u16 *nderefs)
{
	const u8 *ranges = w + sizeof(struct llv_walk), *derefs;
	unsigned long long want;
	u32 link = llv_get_le32(w + 16), i;

	if (c->count) {
		fmt(c->msg, "WALK carries one description: count must be 0, not %u", c->count);
		return -LLV_E_MALFORMED;
	}
	if (c->len < sizeof(struct llv_msg) + sizeof(struct llv_walk)) {
		fmt(c->msg, "WALK of %u bytes is shorter than its header and struct llv_walk (%u)",
		    c->len, (unsigned int)(sizeof(struct llv_msg) + sizeof(struct llv_walk)));
		return -LLV_E_MALFORMED;
	}
	*max_nodes = llv_get_le32(w + 20);
	*nranges = llv_get_le16(w + 24);
	*nderefs = llv_get_le16(w + 26);
	if (llv_get_le32(w + 28)) {
		fmt(c->msg, "WALK: reserved is %u, not 0", llv_get_le32(w + 28));
		return -LLV_E_MALFORMED;
	}
	if (*max_nodes == 0) {
		fmt(c->msg, "WALK: max_nodes is 0 (1..%u)", LLV_MAX_WALK_NODES);
		return -LLV_E_MALFORMED;
	}
	if (*max_nodes > LLV_MAX_WALK_NODES) {
		fmt(c->msg, "WALK: max_nodes %u is over the limit of %u", *max_nodes,
		    LLV_MAX_WALK_NODES);
		return -LLV_E_TOO_LARGE;
	}
	if (*nranges > LLV_MAX_WALK_RANGES || *nderefs > LLV_MAX_WALK_DEREFS) {
		fmt(c->msg, "WALK of %u ranges and %u derefs: at most %u and %u", *nranges, *nderefs,
		    LLV_MAX_WALK_RANGES, LLV_MAX_WALK_DEREFS);
		return -LLV_E_TOO_LARGE;
	}
	want = sizeof(struct llv_msg) + sizeof(struct llv_walk) +
	       (unsigned long long)*nranges * sizeof(struct llv_walk_range) +
	       (unsigned long long)*nderefs * sizeof(struct llv_walk_deref);
	if (c->len != want) {
		fmt(c->msg, "WALK of %u ranges and %u derefs must carry %llu bytes, not %u", *nranges,
		    *nderefs, want, c->len);
		return -LLV_E_MALFORMED;
	}
	if (link >= LLV_MAX_WALK_OFFSET) {
		fmt(c->msg, "WALK: link offset %u is beyond LLV_MAX_WALK_OFFSET (%u)", link,
		    (unsigned int)LLV_MAX_WALK_OFFSET);
		return -LLV_E_MALFORMED;
	}
	for (i = 0; i < *nranges; i++) {
		const u8 *r = ranges + i * sizeof(struct llv_walk_range);
		s32 offset = (s32)llv_get_le32(r);
		u32 len = llv_get_le32(r + 4);

		if (!offset_ok(offset)) {
			fmt(c->msg, "WALK range %u: offset %d is beyond +-LLV_MAX_WALK_OFFSET (%u)", i,
			    offset, (unsigned int)LLV_MAX_WALK_OFFSET);
			return -LLV_E_MALFORMED;
		}
		if (len == 0 || len > LLV_PAGE_SIZE) {
			fmt(c->msg, "WALK range %u: len %u is not 1..%u", i, len, LLV_PAGE_SIZE);
			return -LLV_E_MALFORMED;
		}
	}
	derefs = ranges + *nranges * sizeof(struct llv_walk_range);
	for (i = 0; i < *nderefs; i++) {
		const u8 *d = derefs + i * sizeof(struct llv_walk_deref);
		s32 pointer = (s32)llv_get_le32(d), offset = (s32)llv_get_le32(d + 4);
		u32 len = llv_get_le32(d + 8);

		if (llv_get_le32(d + 12)) {
			fmt(c->msg, "WALK deref %u: reserved is %u, not 0", i, llv_get_le32(d + 12));
			return -LLV_E_MALFORMED;
		}
		if (!offset_ok(pointer) || !offset_ok(offset)) {
			fmt(c->msg, "WALK deref %u: pointer %d or offset %d is beyond "
			    "+-LLV_MAX_WALK_OFFSET (%u)", i, pointer, offset,
			    (unsigned int)LLV_MAX_WALK_OFFSET);
			return -LLV_E_MALFORMED;
		}
		if (len == 0 || len > LLV_PAGE_SIZE) {
			fmt(c->msg, "WALK deref %u: len %u is not 1..%u", i, len, LLV_PAGE_SIZE);
			return -LLV_E_MALFORMED;
		}
	}
	return 0;
}

/*
 * WALK: follows the list as llview_proto.h's pseudo-code says. Bounded by
 * max_nodes (a cycle ends there) and by LLV_MAX_PAYLOAD: a node whose records
 * do not all fit (each counted with all its bytes) is taken back whole and
 * the walk ends FULL at its link. Only ops->read touches guest memory.
 */
static int serve_walk(struct core *c, u32 *rep_len)
{
	const u8 *w = c->req + sizeof(struct llv_msg);
	const u8 *ranges = w + sizeof(struct llv_walk), *derefs;
	const u8 *rdata[LLV_MAX_WALK_RANGES];
	u8 *end = c->rep + sizeof(struct llv_msg);
	u32 pos = sizeof(struct llv_msg) + sizeof(struct llv_walk_end), nrec = 0;
	u32 max_nodes, n, reason = LLV_WALK_LIMIT, i;
	u16 nranges, nderefs;
	u64 stop, link_at, next;
	int rc = check_walk(c, w, &max_nodes, &nranges, &nderefs);

	if (rc)
		return rc;
	derefs = ranges + nranges * sizeof(struct llv_walk_range);
	link_at = llv_get_le64(w);
	stop = llv_get_le64(w + 8);
	next = link_at;
	for (n = 0; n < max_nodes; n++) {
		u32 mark_pos = pos, mark_nrec = nrec, st;
		const u8 *link;
		u64 node;

		st = record(c, &pos, &nrec, link_at, 8, &link);
		if (st == NO_ROOM)
			goto full;
		if (st != LLV_OK) {
			reason = LLV_WALK_BAD_LINK;
			next = link_at;
			goto done;
		}
		node = llv_get_le64(link);
		if (node == 0 || node == stop) {
			reason = LLV_WALK_STOP;
			next = 0;
			goto done;
		}
		for (i = 0; i < nranges; i++) {
			const u8 *r = ranges + i * sizeof(struct llv_walk_range);

			st = record(c, &pos, &nrec, at(node, (s32)llv_get_le32(r)), llv_get_le32(r + 4),
				    &rdata[i]);
			if (st == NO_ROOM)
				goto take_back;
		}
		for (i = 0; i < nderefs; i++) {
			const u8 *d = derefs + i * sizeof(struct llv_walk_deref);
			s32 pointer = (s32)llv_get_le32(d);
			const u8 *value = 0;
			u32 j;

			/* From a range of this node that covers the pointer and was read... */
			for (j = 0; j < nranges && !value; j++) {
				const u8 *r = ranges + j * sizeof(struct llv_walk_range);
				long long from = (s32)llv_get_le32(r);

				if (rdata[j] && from <= pointer &&
				    (long long)pointer + 8 <= from + llv_get_le32(r + 4))
					value = rdata[j] + (pointer - from);
			}
			/* ... else read as a record of its own. */
			if (!value) {
				st = record(c, &pos, &nrec, at(node, pointer), 8, &value);
				if (st == NO_ROOM)
					goto take_back;
			}
			if (value && llv_get_le64(value)) {
				st = record(c, &pos, &nrec, at(llv_get_le64(value),
								(s32)llv_get_le32(d + 4)),
					    llv_get_le32(d + 8), 0);
				if (st == NO_ROOM)
					goto take_back;
			}
		}
		link_at = node + llv_get_le32(w + 16);
		next = link_at;
		yield(c);
		continue;
take_back:
		pos = mark_pos;
		nrec = mark_nrec;
full:
		reason = LLV_WALK_FULL;
		next = link_at;
		goto done;
	}
done:
	llv_put_le32(end, n);
	llv_put_le32(end + 4, reason);
	llv_put_le64(end + 8, next);
	c->count = nrec;
	*rep_len = pos;
	return 0;
}

int llv_core_serve(const struct llv_source_ops *ops, void *ctx, const u8 *req, u32 len,
		   u8 *rep, u32 *rep_len, char *msg)
{
	struct core c = { .ops = ops, .ctx = ctx, .req = req, .len = len, .rep = rep, .msg = msg };
	u16 type;
	int rc;

	msg[0] = 0;
	if (len < sizeof(struct llv_msg)) {
		fmt(msg, "message of %u bytes is shorter than its header", len);
		return -LLV_E_MALFORMED;
	}
	type = llv_get_le16(req);
	c.count = llv_get_le32(req + 4);
	switch (type) {
	case LLV_REQ_READ:
		rc = serve_read(&c, rep_len);
		break;
	case LLV_REQ_SYMS:
		rc = serve_syms(&c, rep_len);
		break;
	case LLV_REQ_INFO:
		rc = serve_info(&c, rep_len);
		break;
	case LLV_REQ_SYMBOLIZE:
		rc = serve_symbolize(&c, rep_len);
		break;
	case LLV_REQ_READ_RANGES:
		rc = serve_read_ranges(&c, rep_len);
		break;
	case LLV_REQ_WALK:
		rc = serve_walk(&c, rep_len);
		break;
	default:
		fmt(msg, "unknown request type %u", type);
		return -LLV_E_BAD_TYPE;
	}
	if (!rc) {
		llv_put_le16(rep, (u16)(type + 1));
		llv_put_le16(rep + 2, 0);
		llv_put_le32(rep + 4, c.count);
	}
	return rc;
}

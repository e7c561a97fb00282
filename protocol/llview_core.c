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

const char *llv_core_error_text(int code)
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
		fmt(msg, "%s", llv_core_error_text(-LLV_E_BAD_MAGIC));
		return -LLV_E_BAD_MAGIC;
	}
	if (llv_get_le32(&h->len) > LLV_MAX_PAYLOAD) {
		fmt(msg, "frame of %u bytes: at most %u", llv_get_le32(&h->len),
		    (unsigned int)LLV_MAX_PAYLOAD);
		return -LLV_E_TOO_LARGE;
	}
	if (llv_get_le64(&h->seq) != expected_seq) {
		fmt(msg, "%s", llv_core_error_text(-LLV_E_SEQUENCE));
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

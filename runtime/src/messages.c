/*
 * messages.c - the llview requests the runtime makes (READ, SYMS, SYMBOLIZE, INFO),
 * built and checked once for every transport: a transport only moves one
 * sealed request and its reply (rt_transport->exchange).
 */
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"

static u8 request[LLV_MAX_PAYLOAD];

/* Sends `request` and checks the reply: an agent's REP_ERROR becomes its
 * code (text kept in rt_transport_error_text), any other type than
 * `expect` is an error. On success *reply holds the plaintext. */
static int exchange(u16 type, u32 count, u32 req_len, u16 expect, const u8 **reply, u32 *len)
{
	struct llv_msg *m = (struct llv_msg *)request;
	int rc;

	m->type = type;
	m->flags = 0;
	m->count = count;
	rc = rt_transport->exchange(request, req_len, reply, len);
	if (rc)
		return rc;
	if (*len < sizeof(struct llv_msg))
		return -LLV_E_MALFORMED;
	const struct llv_msg *r = (const struct llv_msg *)*reply;
	if (r->type == LLV_REP_ERROR) {
		size_t text = *len - sizeof(*r);

		if (text >= sizeof(rt_transport_error_text))
			text = sizeof(rt_transport_error_text) - 1;
		memcpy(rt_transport_error_text, *reply + sizeof(*r), text);
		rt_transport_error_text[text] = 0;
		return r->count ? -(int)r->count : -LLV_E_INTERNAL;
	}
	return r->type == expect ? 0 : -LLV_E_BAD_TYPE;
}

int rt_read_pages(const uint64_t *addrs, uint32_t n, u8 *const *out, uint32_t *statuses)
{
	const u8 *reply;
	u32 len, ok = 0;
	int rc;

	memcpy(request + sizeof(struct llv_msg), addrs, n * sizeof(u64));
	rc = exchange(LLV_REQ_READ, n, sizeof(struct llv_msg) + n * sizeof(u64), LLV_REP_READ,
		      &reply, &len);
	if (rc)
		return rc;
	const struct llv_msg *r = (const struct llv_msg *)reply;
	size_t head = sizeof(*r) + (size_t)n * sizeof(u32);
	if (r->count != n || len < head)
		return -LLV_E_MALFORMED;
	memcpy(statuses, reply + sizeof(*r), n * sizeof(u32));
	for (u32 i = 0; i < n; i++)
		ok += statuses[i] == LLV_OK;
	if (len != head + (size_t)ok * LLV_PAGE_SIZE)
		return -LLV_E_MALFORMED;
	const u8 *page = reply + head;
	for (u32 i = 0; i < n; i++) {
		if (statuses[i] != LLV_OK)
			continue;
		memcpy(out[i], page, LLV_PAGE_SIZE);
		page += LLV_PAGE_SIZE;
	}
	return 0;
}

int rt_lookup_symbols(const char *const *names, uint32_t n, uint64_t *addrs)
{
	uint32_t done = 0;

	while (done < n) {
		size_t used = sizeof(struct llv_msg);
		uint32_t count = 0;
		const u8 *reply;
		u32 len;

		/* As many names as fit in one frame. */
		while (done + count < n) {
			size_t name_len = strlen(names[done + count]) + 1;

			if (used + name_len > sizeof(request))
				break;
			memcpy(request + used, names[done + count], name_len);
			used += name_len;
			count++;
		}
		if (!count)
			return -LLV_E_TOO_LARGE;
		int rc = exchange(LLV_REQ_SYMS, count, (u32)used, LLV_REP_SYMS, &reply, &len);
		if (rc)
			return rc;
		const struct llv_msg *r = (const struct llv_msg *)reply;
		if (r->count != count || len != sizeof(*r) + count * sizeof(u64))
			return -LLV_E_MALFORMED;
		memcpy(addrs + done, reply + sizeof(*r), count * sizeof(u64));
		done += count;
	}
	return 0;
}

int rt_info(struct llv_info *info)
{
	const u8 *reply;
	u32 len;
	int rc = exchange(LLV_REQ_INFO, 0, sizeof(struct llv_msg), LLV_REP_INFO, &reply, &len);

	if (rc)
		return rc;
	if (len != sizeof(struct llv_msg) + sizeof(*info))
		return -LLV_E_MALFORMED;
	memcpy(info, reply + sizeof(struct llv_msg), sizeof(*info));
	return 0;
}

int rt_symbolize(const uint64_t *addrs, uint32_t n, struct llv_symbol *syms, char (*names)[LLV_SYM_NAME_MAX])
{
	const u8 *reply;
	u32 len;

	if (n > LLV_MAX_SYMBOLIZE)
		return -LLV_E_TOO_LARGE;
	memcpy(request + sizeof(struct llv_msg), addrs, n * sizeof(u64));
	int rc = exchange(LLV_REQ_SYMBOLIZE, n, sizeof(struct llv_msg) + n * sizeof(u64),
			  LLV_REP_SYMBOLIZE, &reply, &len);
	if (rc)
		return rc;
	const struct llv_msg *r = (const struct llv_msg *)reply;
	size_t head = sizeof(*r) + (size_t)n * sizeof(struct llv_symbol);
	if (r->count != n || len < head)
		return -LLV_E_MALFORMED;
	memcpy(syms, reply + sizeof(*r), n * sizeof(struct llv_symbol));
	const char *name = (const char *)reply + head, *end = (const char *)reply + len;
	for (uint32_t i = 0; i < n; i++) {
		size_t k = strnlen(name, (size_t)(end - name));

		/* Every name is terminated inside the reply and fits LLV_SYM_NAME_MAX. */
		if (name + k == end || k >= LLV_SYM_NAME_MAX)
			return -LLV_E_MALFORMED;
		memcpy(names[i], name, k + 1);
		name += k + 1;
	}
	return name == end ? 0 : -LLV_E_MALFORMED;
}

/* Checks the records of a READ_RANGES or WALK reply, [p, end), and hands each
 * to `got`: exactly `count` of them, each header and its bytes inside the
 * reply, no record longer than a page, nothing left over. */
static int each_record(const u8 *p, const u8 *end, u32 count, rt_record_fn got, void *arg)
{
	for (u32 i = 0; i < count; i++) {
		struct llv_range_data rec;

		if ((size_t)(end - p) < sizeof(rec))
			return -LLV_E_MALFORMED;
		memcpy(&rec, p, sizeof(rec));
		p += sizeof(rec);
		if (rec.len == 0 || rec.len > LLV_PAGE_SIZE || rec.addr + rec.len < rec.addr)
			return -LLV_E_MALFORMED;
		if (rec.status != LLV_OK) {
			got(arg, &rec, NULL);
			continue;
		}
		if ((size_t)(end - p) < rec.len)
			return -LLV_E_MALFORMED;
		got(arg, &rec, p);
		p += rec.len;
	}
	return p == end ? 0 : -LLV_E_MALFORMED;
}

int rt_read_ranges(const struct llv_range *ranges, uint32_t n, rt_record_fn got, void *arg)
{
	const u8 *reply;
	u32 len;

	if (n > LLV_MAX_RANGES)
		return -LLV_E_TOO_LARGE;
	memcpy(request + sizeof(struct llv_msg), ranges, n * sizeof(*ranges));
	int rc = exchange(LLV_REQ_READ_RANGES, n, sizeof(struct llv_msg) + n * sizeof(*ranges),
			  LLV_REP_READ_RANGES, &reply, &len);
	if (rc)
		return rc;
	const struct llv_msg *r = (const struct llv_msg *)reply;
	if (r->count != n)
		return -LLV_E_MALFORMED;
	return each_record(reply + sizeof(*r), reply + len, n, got, arg);
}

int rt_walk(const struct llv_walk *walk, const struct llv_walk_range *ranges,
	    const struct llv_walk_deref *derefs, struct llv_walk_end *end, rt_record_fn got,
	    void *arg)
{
	size_t used = sizeof(struct llv_msg);
	const u8 *reply;
	u32 len;

	if (walk->nranges > LLV_MAX_WALK_RANGES || walk->nderefs > LLV_MAX_WALK_DEREFS)
		return -LLV_E_TOO_LARGE;
	memcpy(request + used, walk, sizeof(*walk));
	used += sizeof(*walk);
	memcpy(request + used, ranges, walk->nranges * sizeof(*ranges));
	used += walk->nranges * sizeof(*ranges);
	memcpy(request + used, derefs, walk->nderefs * sizeof(*derefs));
	used += walk->nderefs * sizeof(*derefs);
	int rc = exchange(LLV_REQ_WALK, 0, (u32)used, LLV_REP_WALK, &reply, &len);
	if (rc)
		return rc;
	const struct llv_msg *r = (const struct llv_msg *)reply;
	if (len < sizeof(*r) + sizeof(*end))
		return -LLV_E_MALFORMED;
	memcpy(end, reply + sizeof(*r), sizeof(*end));
	if (end->reason > LLV_WALK_BAD_LINK || end->nodes > walk->max_nodes)
		return -LLV_E_MALFORMED;
	return each_record(reply + sizeof(*r) + sizeof(*end), reply + len, r->count, got, arg);
}

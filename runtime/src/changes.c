/*
 * changes.c - --changes: of each scan, only what differs from the previous
 * scan is printed.
 *
 * A record is identified by its kind and the value of its key field (the
 * first field, or the one llview_record_key named); a second record with
 * the same identity in one scan counts as another one (#2, #3, ...). At the
 * end of a successful scan, in the scan's order, each record not in the
 * previous scan is printed as new, each whose line differs as changed, and
 * then each record of the previous scan missing from this one as gone (its
 * last seen line). JSON adds "change":"new"|"changed"|"gone" after the
 * kind; text prefixes "+ ", "~ " or "- ". The first scan prints everything
 * as new. An alert is printed when it is raised unless the previous scan
 * (or this one already) raised the same alert line. A scan that fails
 * prints no differences and keeps the previous scan as the reference.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"

#pragma GCC visibility push(hidden)
int rt_changes_mode;
#pragma GCC visibility pop

struct entry {
	char *id;
	size_t id_len;
	char *line; /* NULL for alerts: the id is the line */
	size_t len, mark;
	int matched;
};

struct set {
	struct entry *v;
	size_t n, cap;
	size_t *index; /* open addressing: entry number + 1, 0 = empty */
	size_t index_cap;
};

static struct set prev_records, cur_records, prev_alerts, cur_alerts;

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		rt_die("out of memory for --changes");
	return q;
}

static char *xmemdup(const char *s, size_t n)
{
	char *p = xrealloc(NULL, n + 1);

	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

static size_t hash(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	return (size_t)h;
}

static struct entry *find(const struct set *s, const char *id, size_t n)
{
	if (!s->index_cap)
		return NULL;
	for (size_t i = hash(id, n) & (s->index_cap - 1);; i = (i + 1) & (s->index_cap - 1)) {
		size_t k = s->index[i];

		if (!k)
			return NULL;
		if (s->v[k - 1].id_len == n && !memcmp(s->v[k - 1].id, id, n))
			return &s->v[k - 1];
	}
}

static void index_entry(struct set *s, size_t k)
{
	size_t i = hash(s->v[k].id, s->v[k].id_len) & (s->index_cap - 1);

	while (s->index[i])
		i = (i + 1) & (s->index_cap - 1);
	s->index[i] = k + 1;
}

/* Takes ownership of e's strings. */
static void add(struct set *s, const struct entry *e)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 256;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = *e;
	if (2 * s->n > s->index_cap) {
		s->index_cap = s->index_cap ? 2 * s->index_cap : 1024;
		while (2 * s->n > s->index_cap)
			s->index_cap *= 2;
		free(s->index);
		s->index = calloc(s->index_cap, sizeof(*s->index));
		if (!s->index)
			rt_die("out of memory for --changes");
		for (size_t k = 0; k < s->n; k++)
			index_entry(s, k);
	} else {
		index_entry(s, s->n - 1);
	}
}

static void clear(struct set *s)
{
	for (size_t k = 0; k < s->n; k++) {
		free(s->v[k].id);
		free(s->v[k].line);
	}
	s->n = 0;
	if (s->index_cap)
		memset(s->index, 0, s->index_cap * sizeof(*s->index));
}

static void swap_in(struct set *prev, struct set *cur)
{
	struct set old = *prev;

	*prev = *cur;
	*cur = old;
	clear(cur);
}

void rt_changes_record(const char *kind, const char *key, size_t key_len, const char *line,
		       size_t len, size_t mark)
{
	struct rt_buf id = { 0 };
	size_t base;

	rt_buf_put(&id, kind, strlen(kind) + 1);
	rt_buf_put(&id, key, key_len);
	base = id.len;
	for (unsigned long nth = 2; find(&cur_records, id.data, id.len); nth++) {
		char suffix[32];

		id.len = base;
		rt_buf_put(&id, suffix, (size_t)snprintf(suffix, sizeof(suffix), "%c#%lu", 0, nth));
	}
	struct entry e = { .id = xmemdup(id.data, id.len), .id_len = id.len,
			   .line = xmemdup(line, len), .len = len, .mark = mark };
	rt_buf_free(&id);
	add(&cur_records, &e);
}

int rt_changes_alert(const char *line, size_t len)
{
	if (find(&cur_alerts, line, len))
		return 0;
	struct entry e = { .id = xmemdup(line, len), .id_len = len };
	add(&cur_alerts, &e);
	return !find(&prev_alerts, line, len);
}

static void emit(const struct entry *e, const char *change)
{
	if (rt_json_mode) {
		fwrite(e->line, 1, e->mark, stdout);
		fprintf(stdout, ",\"change\":\"%s\"", change);
		fwrite(e->line + e->mark, 1, e->len - e->mark, stdout);
	} else {
		fputs(!strcmp(change, "new") ? "+ " : !strcmp(change, "gone") ? "- " : "~ ", stdout);
		fwrite(e->line, 1, e->len, stdout);
	}
}

void rt_changes_scan_end(int ok, unsigned long *new_n, unsigned long *gone_n,
			 unsigned long *changed_n)
{
	*new_n = *gone_n = *changed_n = 0;
	if (!ok) {
		/* Alerts it printed are not printed again by the next scan. */
		for (size_t k = 0; k < cur_alerts.n; k++) {
			struct entry *e = &cur_alerts.v[k];

			if (!find(&prev_alerts, e->id, e->id_len)) {
				struct entry copy = { .id = xmemdup(e->id, e->id_len),
						      .id_len = e->id_len };
				add(&prev_alerts, &copy);
			}
		}
		clear(&cur_alerts);
		clear(&cur_records);
		return;
	}
	for (size_t k = 0; k < prev_records.n; k++)
		prev_records.v[k].matched = 0;
	for (size_t k = 0; k < cur_records.n; k++) {
		const struct entry *e = &cur_records.v[k];
		struct entry *old = find(&prev_records, e->id, e->id_len);

		if (!old) {
			emit(e, "new");
			++*new_n;
			continue;
		}
		old->matched = 1;
		if (old->len != e->len || memcmp(old->line, e->line, e->len)) {
			emit(e, "changed");
			++*changed_n;
		}
	}
	for (size_t k = 0; k < prev_records.n; k++) {
		if (!prev_records.v[k].matched) {
			emit(&prev_records.v[k], "gone");
			++*gone_n;
		}
	}
	swap_in(&prev_records, &cur_records);
	swap_in(&prev_alerts, &cur_alerts);
}

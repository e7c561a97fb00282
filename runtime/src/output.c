/*
 * output.c - what an IDS prints: the kernel's printk family (log-level
 * prefix stripped, to stdout), llview's record and alert API, and the
 * kernel's string formatting functions, all reading guest strings through
 * the page cache.
 *
 * Text mode: printk text as the kernel would log it; a record is one line
 * `key=value key=value` (values with spaces, quotes, '=' or unprintable
 * bytes are double-quoted with C escapes); an alert is `ALERT: message`.
 * Control bytes in an alert's text are escaped (\n, \xNN) so guest text
 * cannot forge output lines.
 * JSON mode (--json): one object per line: {"kind":"task","pid":1,...}
 * for a record, {"alert":"..."} for an alert and {"log":"..."} for each
 * printk line. Strings are escaped for JSON; bytes that are not valid
 * UTF-8 become \u00XX (the byte's Latin-1 code point), so any guest bytes
 * give valid JSON.
 * --changes (changes.c) holds records back until the scan's end and prints
 * only those that differ from the previous scan, and alerts only once.
 */
#include <stdio.h>
#include <string.h>

#include <llview/ids.h>

#include "rt_internal.h"

#pragma GCC visibility push(hidden)
int rt_json_mode;
const char *rt_program = "ids";
uint64_t rt_alerts;
#pragma GCC visibility pop

#define KERN_SOH '\001'

/* The printk line being assembled (JSON mode buffers it until its '\n';
 * text mode only remembers whether one is open). */
static struct rt_buf log_line;
static int log_line_open;

static struct rt_buf record;
static int record_open;
/* An alert's technique while its fields are being added (llview_alert_begin). */
static char alert_technique[128];
static int alert_open;

/* What --changes identifies a record by (changes.c): its kind and the value
 * of its key field (llview_record_key; by default the first field), kept
 * as offsets into `record`. record_kind_end is where a JSON record's
 * "change" marker goes: right after its kind. */
static char record_kind[256];
static size_t record_kind_end;
static size_t key_start, key_end;
static int key_state; /* 0: key field not seen yet, 1: its value is being written, 2: done */
static char key_field[128]; /* "" = the first field */

/* A format string the IDS passes may itself live in the guest. */
static const char *local_format(const char *fmt, char *buf, size_t cap)
{
	if (!rt_is_guest((uint64_t)fmt) && (uint64_t)fmt >= RT_NULL_LIMIT)
		return fmt;
	if (rt_read_string((uint64_t)fmt, buf, cap) < 0)
		return "(efault)";
	return buf;
}

static void put_json_string(struct rt_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;

	rt_buf_putc(b, '"');
	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		size_t seq = 0;

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			rt_buf_putc(b, (char)c);
			i++;
			continue;
		}
		switch (c) {
		case '"': rt_buf_put(b, "\\\"", 2); i++; continue;
		case '\\': rt_buf_put(b, "\\\\", 2); i++; continue;
		case '\n': rt_buf_put(b, "\\n", 2); i++; continue;
		case '\r': rt_buf_put(b, "\\r", 2); i++; continue;
		case '\t': rt_buf_put(b, "\\t", 2); i++; continue;
		default: break;
		}
		/* A well-formed UTF-8 sequence passes through unchanged. */
		if (c >= 0xc2 && c <= 0xdf)
			seq = 2;
		else if (c >= 0xe0 && c <= 0xef)
			seq = 3;
		else if (c >= 0xf0 && c <= 0xf4)
			seq = 4;
		if (seq && i + seq <= n) {
			size_t k = 1;
			unsigned int cp = c & (0x7f >> seq);

			for (; k < seq && (p[i + k] & 0xc0) == 0x80; k++)
				cp = (cp << 6) | (p[i + k] & 0x3f);
			/* reject overlong forms, surrogates and > U+10FFFF */
			if (k == seq && !(seq == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) &&
			    !(seq == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
				rt_buf_put(b, s + i, seq);
				i += seq;
				continue;
			}
		}
		char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
		rt_buf_put(b, esc, sizeof(esc));
		i++;
	}
	rt_buf_putc(b, '"');
}

static int needs_quotes(const char *s, size_t n)
{
	if (!n)
		return 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '=')
			return 1;
	}
	return 0;
}

/* A text-mode value: as is when plain, else "..." with C escapes. */
static void put_text_value(struct rt_buf *b, const char *s, size_t n)
{
	if (!needs_quotes(s, n)) {
		rt_buf_put(b, s, n);
		return;
	}
	rt_buf_putc(b, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];

		if (c == '"' || c == '\\') {
			rt_buf_putc(b, '\\');
			rt_buf_putc(b, (char)c);
		} else if (c == '\n') {
			rt_buf_put(b, "\\n", 2);
		} else if (c == '\t') {
			rt_buf_put(b, "\\t", 2);
		} else if (c < ' ' || c >= 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", c);
			rt_buf_put(b, esc, 4);
		} else {
			rt_buf_putc(b, (char)c);
		}
	}
	rt_buf_putc(b, '"');
}

static void write_out(const char *s, size_t n)
{
	fwrite(s, 1, n, stdout);
}

/* Emits the JSON-mode log line so far as {"log": ...}. */
static void flush_log_line(void)
{
	struct rt_buf obj = { 0 };

	rt_buf_put(&obj, "{\"log\":", 7);
	put_json_string(&obj, log_line.data ? log_line.data : "", log_line.len);
	rt_buf_put(&obj, "}\n", 2);
	write_out(obj.data, obj.len);
	rt_buf_free(&obj);
	log_line.len = 0;
}

/* Ends an unfinished printk line, as the kernel does when the next
 * message is not a KERN_CONT continuation. */
static void end_log_line(void)
{
	if (!log_line_open)
		return;
	if (rt_json_mode)
		flush_log_line();
	else
		write_out("\n", 1);
	log_line_open = 0;
}

static void end_record_if_open(void);

static int vprintk_text(const char *fmt, va_list ap)
{
	char fmt_copy[1024];
	struct rt_buf text = { 0 };
	int cont = 0;

	fmt = local_format(fmt, fmt_copy, sizeof(fmt_copy));
	/* KERN_<LEVEL> is "\001" + a level digit; KERN_CONT is "\001c". */
	while (fmt[0] == KERN_SOH && fmt[1] &&
	       ((fmt[1] >= '0' && fmt[1] <= '7') || fmt[1] == 'c' || fmt[1] == 'd')) {
		cont |= fmt[1] == 'c';
		fmt += 2;
	}
	end_record_if_open();
	if (!cont)
		end_log_line();
	rt_vformat(&text, fmt, ap);
	int written = (int)text.len;

	for (size_t i = 0; i < text.len;) {
		char *nl = memchr(text.data + i, '\n', text.len - i);
		size_t n = nl ? (size_t)(nl - (text.data + i)) : text.len - i;

		if (rt_json_mode) {
			rt_buf_put(&log_line, text.data + i, n);
			if (nl)
				flush_log_line();
		} else {
			write_out(text.data + i, n + (nl ? 1 : 0));
		}
		log_line_open = !nl;
		i += n + (nl ? 1 : 0);
	}
	rt_buf_free(&text);
	return written;
}

int _printk(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = vprintk_text(fmt, ap);
	va_end(ap);
	return n;
}

int _printk_deferred(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = vprintk_text(fmt, ap);
	va_end(ap);
	return n;
}

int vprintk(const char *fmt, va_list ap)
{
	return vprintk_text(fmt, ap);
}

/* Rate limiting is for a live kernel's log; an IDS run prints everything. */
int __printk_ratelimit(const char *func)
{
	(void)func;
	return 1;
}

int ___ratelimit(void *state, const char *func)
{
	(void)state;
	(void)func;
	return 1;
}

/* The message of a kernel header's WARN(cond, fmt, ...), printed before
 * its trap instruction ends the IDS. */
void __warn_printk(const char *fmt, ...)
{
	char fmt_copy[1024];
	struct rt_buf text = { 0 };
	va_list ap;

	rt_output_finish();
	fflush(stdout);
	fmt = local_format(fmt, fmt_copy, sizeof(fmt_copy));
	va_start(ap, fmt);
	rt_vformat(&text, fmt, ap);
	va_end(ap);
	fprintf(stderr, "warning: %s%s", text.data ? text.data : "",
		text.len && text.data[text.len - 1] == '\n' ? "" : "\n");
	rt_buf_free(&text);
}

void rt_output_finish(void)
{
	static int finishing;

	if (finishing)
		return;
	finishing = 1;
	end_record_if_open();
	end_log_line();
	finishing = 0;
}

/* A scan that ended in an error (interval mode) drops its unfinished record
 * or alert; a printk line it left open is ended. */
void rt_output_discard(void)
{
	record_open = 0;
	alert_open = 0;
	record.len = 0;
	key_state = 2;
	end_log_line();
}

/* ---- llview's record and alert API (kernel_headers/llview/ids.h) ---- */

int llview_json(void)
{
	return rt_json_mode;
}

static void end_record_if_open(void)
{
	if (!record_open)
		return;
	if (alert_open) { /* a record or printk inside an alert ends the alert first */
		llview_alert_end("unfinished alert");
		return;
	}
	record_open = 0;
	if (key_state == 1)
		key_end = record.len;
	else if (key_state == 0)
		key_start = key_end = 0;
	key_state = 2;
	if (rt_json_mode)
		rt_buf_putc(&record, '}');
	rt_buf_putc(&record, '\n');
	if (rt_changes_mode)
		rt_changes_record(record_kind, record.data + key_start, key_end - key_start,
				  record.data, record.len, record_kind_end);
	else
		write_out(record.data, record.len);
	record.len = 0;
}

void llview_record_begin(const char *kind)
{
	char kind_copy[256];

	end_record_if_open();
	end_log_line();
	kind = local_format(kind, kind_copy, sizeof(kind_copy));
	record.len = 0;
	record_open = 1;
	snprintf(record_kind, sizeof(record_kind), "%s", kind);
	key_state = 0;
	if (rt_json_mode) {
		rt_buf_put(&record, "{\"kind\":", 8);
		put_json_string(&record, kind, strlen(kind));
	}
	record_kind_end = record.len;
}

void llview_record_key(const char *field)
{
	char copy[sizeof(key_field)];

	snprintf(key_field, sizeof(key_field), "%s",
		 field ? local_format(field, copy, sizeof(copy)) : "");
}

/* Starts a field: separator and key; a field outside a record opens one. */
static void field_key(const char *key)
{
	char key_copy[256];

	if (!record_open)
		llview_record_begin("record");
	key = local_format(key, key_copy, sizeof(key_copy));
	if (key_state == 1) {
		key_end = record.len;
		key_state = 2;
	}
	if (rt_json_mode) {
		if (record.len > 1)
			rt_buf_putc(&record, ',');
		put_json_string(&record, key, strlen(key));
		rt_buf_putc(&record, ':');
	} else {
		if (record.len)
			rt_buf_putc(&record, ' ');
		rt_buf_put(&record, key, strlen(key));
		rt_buf_putc(&record, '=');
	}
	if (key_state == 0 && (!key_field[0] || !strcmp(key, key_field))) {
		key_start = record.len;
		key_state = 1;
	}
}

void llview_field_int(const char *key, long long v)
{
	char num[32];

	field_key(key);
	rt_buf_put(&record, num, (size_t)snprintf(num, sizeof(num), "%lld", v));
}

void llview_field_uint(const char *key, unsigned long long v)
{
	char num[32];

	field_key(key);
	rt_buf_put(&record, num, (size_t)snprintf(num, sizeof(num), "%llu", v));
}

void llview_field_hex(const char *key, unsigned long long v)
{
	char num[32];
	int n = snprintf(num, sizeof(num), rt_json_mode ? "\"0x%llx\"" : "0x%llx", v);

	field_key(key);
	rt_buf_put(&record, num, (size_t)n);
}

void llview_field_str(const char *key, const char *s)
{
	static char value[65536];
	long len = s ? rt_read_string((uint64_t)s, value, sizeof(value)) : -1;

	field_key(key);
	if (!s) {
		if (rt_json_mode)
			rt_buf_put(&record, "null", 4);
		else
			rt_buf_put(&record, "(null)", 6);
	} else if (len < 0) {
		if (rt_json_mode)
			put_json_string(&record, "(efault)", 8);
		else
			rt_buf_put(&record, "(efault)", 8);
	} else if (rt_json_mode) {
		put_json_string(&record, value, (size_t)len);
	} else {
		put_text_value(&record, value, (size_t)len);
	}
}

void llview_record_end(void)
{
	end_record_if_open();
}


/* Prints one alert: its message, then (structured alerts) the fields
 * collected in `record`. */
static void put_alert(struct rt_buf *text, int structured)
{
	/* One alert is one line: a trailing newline in the message is dropped. */
	while (text->len && text->data[text->len - 1] == '\n')
		text->data[--text->len] = 0;
	if (rt_json_mode) {
		struct rt_buf obj = { 0 };

		if (structured) {
			rt_buf_put(&obj, record.data, record.len); /* {"kind":"alert",fields */
			rt_buf_put(&obj, ",\"program\":", 11);
			put_json_string(&obj, rt_program, strlen(rt_program));
			rt_buf_put(&obj, ",\"technique\":", 13);
			put_json_string(&obj, alert_technique, strlen(alert_technique));
			rt_buf_put(&obj, ",\"alert\":", 9);
		} else {
			rt_buf_put(&obj, "{\"alert\":", 9);
		}
		put_json_string(&obj, text->data ? text->data : "", text->len);
		rt_buf_put(&obj, "}\n", 2);
		if (!rt_changes_mode || rt_changes_alert(obj.data, obj.len))
			write_out(obj.data, obj.len);
		rt_buf_free(&obj);
	} else {
		/* Guest text must not be able to forge lines: control bytes in
		 * the message are escaped (\n, \xNN); field values are quoted. */
		struct rt_buf line = { 0 };

		rt_buf_put(&line, "ALERT: ", 7);
		for (size_t i = 0; i < text->len; i++) {
			unsigned char c = (unsigned char)text->data[i];
			char esc[8];

			if (c == '\n')
				rt_buf_put(&line, "\\n", 2);
			else if (c < ' ' || c == 0x7f)
				rt_buf_put(&line, esc, (size_t)snprintf(esc, sizeof(esc), "\\x%02x", c));
			else
				rt_buf_putc(&line, (char)c);
		}
		if (structured) {
			rt_buf_put(&line, " [technique=", 12);
			put_text_value(&line, alert_technique, strlen(alert_technique));
			if (record.len)
				rt_buf_putc(&line, ' ');
			rt_buf_put(&line, record.data, record.len);
			rt_buf_putc(&line, ']');
		}
		rt_buf_putc(&line, '\n');
		if (!rt_changes_mode || rt_changes_alert(line.data, line.len))
			write_out(line.data, line.len);
		rt_buf_free(&line);
	}
	rt_alerts++;
}

static void format_message(struct rt_buf *text, const char *fmt, va_list ap)
{
	char fmt_copy[1024];

	fmt = local_format(fmt, fmt_copy, sizeof(fmt_copy));
	rt_vformat(text, fmt, ap);
}

void llview_alert(const char *fmt, ...)
{
	struct rt_buf text = { 0 };
	va_list ap;

	if (alert_open) /* an unfinished structured alert keeps its fields */
		llview_alert_end("unfinished alert");
	end_record_if_open();
	end_log_line();
	va_start(ap, fmt);
	format_message(&text, fmt, ap);
	va_end(ap);
	put_alert(&text, 0);
	rt_buf_free(&text);
}

void llview_alert_begin(const char *technique)
{
	char copy[sizeof(alert_technique)];

	if (alert_open)
		llview_alert_end("unfinished alert");
	end_record_if_open();
	end_log_line();
	snprintf(alert_technique, sizeof(alert_technique), "%s",
		 local_format(technique, copy, sizeof(copy)));
	record.len = 0;
	record_open = 1;
	alert_open = 1;
	if (rt_json_mode)
		rt_buf_put(&record, "{\"kind\":\"alert\"", 15);
}

void llview_alert_end(const char *fmt, ...)
{
	struct rt_buf text = { 0 };
	va_list ap;

	if (!alert_open)
		llview_alert_begin("unspecified");
	va_start(ap, fmt);
	format_message(&text, fmt, ap);
	va_end(ap);
	put_alert(&text, 1);
	rt_buf_free(&text);
	record.len = 0;
	record_open = 0;
	alert_open = 0;
}

/* ---- the kernel's string formatting (lib/vsprintf.c) ---- */

static void refuse_guest_destination(const void *buf)
{
	if (rt_is_guest((uint64_t)buf))
		__llview_store_refused(buf, RT_NO_SITE);
}

/* Copies a formatted text into buf (size bytes, NUL-terminated when size
 * > 0); returns the full length, like vsnprintf. */
static int copy_out(char *buf, size_t size, const struct rt_buf *text)
{
	if (size) {
		size_t n = text->len < size - 1 ? text->len : size - 1;

		refuse_guest_destination(buf);
		if (n)
			memcpy(buf, text->data, n);
		buf[n] = 0;
	}
	return (int)text->len;
}

int __llview_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	char fmt_copy[1024];
	struct rt_buf text = { 0 };

	fmt = local_format(fmt, fmt_copy, sizeof(fmt_copy));
	rt_vformat(&text, fmt, ap);
	int n = copy_out(buf, size, &text);
	rt_buf_free(&text);
	return n;
}

int __llview_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = __llview_vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

int __llview_vsprintf(char *buf, const char *fmt, va_list ap)
{
	return __llview_vsnprintf(buf, (size_t)INT32_MAX, fmt, ap);
}

int __llview_sprintf(char *buf, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = __llview_vsnprintf(buf, (size_t)INT32_MAX, fmt, ap);
	va_end(ap);
	return n;
}

/* The kernel's own variants return what was actually written. */
int vscnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	int n = __llview_vsnprintf(buf, size, fmt, ap);

	if (!size)
		return 0;
	return n < (int)size ? n : (int)size - 1;
}

int scnprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = vscnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

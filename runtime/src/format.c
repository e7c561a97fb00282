/*
 * format.c - the kernel's printk format language (lib/vsprintf.c), enough
 * of it for IDS programs: %d %i %u %x %X %o %c %s %% with flags, width,
 * precision and the kernel's length modifiers (hh h l ll z t j L), and the
 * pointer forms %pS %ps %pB (core-kernel symbol+offset/size, from the
 * agent's SYMBOLIZE), %p %px %pK (raw hex: there is nothing to hide from the
 * IDS's own user), %pI4, %pM/%pMR, %*ph[CDN] and any other %p<ext> as raw
 * hex. Numbers are formatted piece by piece by libc's snprintf.
 *
 * A %s argument (and the buffer of %pI4/%pM/%ph) may be a guest pointer:
 * it is read through the page cache. As in the kernel, a NULL pointer
 * prints "(null)" and one that cannot be read prints "(efault)".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llview/ids.h>

#include "rt_internal.h"

#define MAX_STRING 65536 /* longest %s read from the guest */

void rt_buf_put(struct rt_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->len + n + 1)
			cap *= 2;
		char *grown = realloc(b->data, cap);
		if (!grown)
			rt_die("out of memory formatting output");
		b->data = grown;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = 0;
}

void rt_buf_free(struct rt_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

struct spec {
	char flags[8];
	int width; /* -1: none */
	int precision; /* -1: none */
	char length[3];
};

static void pad(struct rt_buf *b, int n)
{
	for (; n > 0; n--)
		rt_buf_putc(b, ' ');
}

/* Puts s (n bytes) right- or left-aligned in the field width. */
static void put_field(struct rt_buf *b, const struct spec *sp, const char *s, size_t n)
{
	int fill = sp->width > (int)n ? sp->width - (int)n : 0;
	int left = strchr(sp->flags, '-') != NULL;

	if (!left)
		pad(b, fill);
	rt_buf_put(b, s, n);
	if (left)
		pad(b, fill);
}

static void put_string(struct rt_buf *b, const struct spec *sp, const void *ptr)
{
	static char text[MAX_STRING];
	size_t cap = sp->precision >= 0 && (size_t)sp->precision < sizeof(text)
			     ? (size_t)sp->precision + 1
			     : sizeof(text);

	if (!ptr) {
		put_field(b, sp, "(null)", 6);
		return;
	}
	long len = rt_read_string((uint64_t)ptr, text, cap);
	if (len < 0)
		put_field(b, sp, "(efault)", 8);
	else
		put_field(b, sp, text, (size_t)len);
}

/* Rebuilds the conversion for snprintf with an `ll` length. */
static void put_number(struct rt_buf *b, const struct spec *sp, char conv, int is_signed,
		       unsigned long long bits)
{
	char fmt[48], out[128];
	int n;

	if (sp->precision >= 0)
		snprintf(fmt, sizeof(fmt), "%%%s%d.%dll%c", sp->flags, sp->width < 0 ? 0 : sp->width,
			 sp->precision, conv);
	else
		snprintf(fmt, sizeof(fmt), "%%%s%dll%c", sp->flags, sp->width < 0 ? 0 : sp->width,
			 conv);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	if (is_signed)
		n = snprintf(out, sizeof(out), fmt, (long long)bits);
	else
		n = snprintf(out, sizeof(out), fmt, bits);
#pragma GCC diagnostic pop
	if (n > 0)
		rt_buf_put(b, out, (size_t)n < sizeof(out) ? (size_t)n : sizeof(out) - 1);
}

static void put_hex_pointer(struct rt_buf *b, const struct spec *sp, const void *ptr)
{
	char out[24];
	int n = snprintf(out, sizeof(out), "%016lx", (unsigned long)ptr);

	put_field(b, sp, out, (size_t)n);
}

/* %p and its extensions; *fmt points after the 'p' and is advanced past
 * the extension's letters, as the kernel does. */
static void put_pointer(struct rt_buf *b, const struct spec *sp, const char **fmt, const void *ptr)
{
	const char *ext = *fmt;
	unsigned char bytes[64];
	char out[256];
	size_t n = 0;
	uint32_t status;
	uint64_t bad;

	while ((**fmt >= 'a' && **fmt <= 'z') || (**fmt >= 'A' && **fmt <= 'Z') ||
	       (**fmt >= '0' && **fmt <= '9'))
		(*fmt)++;

	if (ext[0] == 'I' && ext[1] == '4') {
		if (!ptr || rt_copy_in(bytes, (uint64_t)ptr, 4, &bad, &status))
			goto efault;
		n = (size_t)snprintf(out, sizeof(out), "%u.%u.%u.%u", bytes[0], bytes[1], bytes[2],
				     bytes[3]);
	} else if (ext[0] == 'M' || ext[0] == 'm') {
		int reversed = ext[1] == 'R', colons = ext[0] == 'M';

		if (!ptr || rt_copy_in(bytes, (uint64_t)ptr, 6, &bad, &status))
			goto efault;
		for (int i = 0; i < 6; i++)
			n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%02x",
					      i && colons ? ":" : "", bytes[reversed ? 5 - i : i]);
	} else if (ext[0] == 'S' || ext[0] == 's' || ext[0] == 'B') {
		/* Core-kernel symbols as the kernel prints them; %ps without the
		 * offset. Other addresses (modules, data) print as raw hex. */
		if (!rt_symbol_text((uint64_t)ptr, out, sizeof(out))) {
			put_hex_pointer(b, sp, ptr);
			return;
		}
		if (ext[0] == 's')
			out[strcspn(out, "+")] = 0;
		n = strlen(out);
	} else if (ext[0] == 'h') {
		/* %*ph: field width = number of bytes (1 by default, at most 64). */
		char sep = ext[1] == 'C' ? ':' : ext[1] == 'D' ? '-' : ext[1] == 'N' ? 0 : ' ';
		int count = sp->width < 0 ? 1 : sp->width > 64 ? 64 : sp->width;

		if (!ptr || rt_copy_in(bytes, (uint64_t)ptr, (uint64_t)count, &bad, &status))
			goto efault;
		for (int i = 0; i < count; i++) {
			if (i && sep)
				out[n++] = sep;
			n += (size_t)snprintf(out + n, sizeof(out) - n, "%02x", bytes[i]);
		}
		rt_buf_put(b, out, n);
		return;
	} else {
		put_hex_pointer(b, sp, ptr);
		return;
	}
	put_field(b, sp, out, n);
	return;
efault:
	put_field(b, sp, ptr ? "(efault)" : "(null)", ptr ? 8 : 6);
}

void rt_vformat(struct rt_buf *b, const char *fmt, va_list ap)
{
	while (*fmt) {
		const char *percent = strchr(fmt, '%');

		if (!percent) {
			rt_buf_put(b, fmt, strlen(fmt));
			return;
		}
		rt_buf_put(b, fmt, (size_t)(percent - fmt));
		fmt = percent + 1;

		struct spec sp = { .width = -1, .precision = -1 };
		size_t nflags = 0;

		while (*fmt && strchr("-+ #0", *fmt)) {
			if (nflags + 1 < sizeof(sp.flags) && !strchr(sp.flags, *fmt))
				sp.flags[nflags++] = *fmt;
			fmt++;
		}
		if (*fmt == '*') {
			sp.width = va_arg(ap, int);
			if (sp.width < 0) { /* a negative * width means left-aligned */
				sp.width = -sp.width;
				if (!strchr(sp.flags, '-') && nflags + 1 < sizeof(sp.flags))
					sp.flags[nflags++] = '-';
			}
			fmt++;
		} else if (*fmt >= '0' && *fmt <= '9') {
			sp.width = (int)strtol(fmt, (char **)&fmt, 10);
		}
		if (*fmt == '.') {
			fmt++;
			if (*fmt == '*') {
				sp.precision = va_arg(ap, int);
				fmt++;
			} else {
				sp.precision = (int)strtol(fmt, (char **)&fmt, 10);
			}
			if (sp.precision < 0)
				sp.precision = -1;
		}
		size_t nlen = 0;
		while (*fmt && strchr("hlLqjzZt", *fmt) && nlen < 2)
			sp.length[nlen++] = *fmt++;

		char conv = *fmt ? *fmt++ : 0;
		unsigned long long bits;

		switch (conv) {
		case 'd':
		case 'i':
		case 'u':
		case 'x':
		case 'X':
		case 'o': {
			int is_signed = conv == 'd' || conv == 'i';

			if (!strcmp(sp.length, "ll") || !strcmp(sp.length, "L") ||
			    !strcmp(sp.length, "q"))
				bits = va_arg(ap, unsigned long long);
			else if (sp.length[0] == 'l' || sp.length[0] == 'z' || sp.length[0] == 'Z' ||
				 sp.length[0] == 't' || sp.length[0] == 'j')
				bits = is_signed ? (unsigned long long)va_arg(ap, long)
						 : va_arg(ap, unsigned long);
			else {
				unsigned int v = va_arg(ap, unsigned int);

				if (!strcmp(sp.length, "hh"))
					bits = is_signed ? (unsigned long long)(signed char)v
							 : (unsigned char)v;
				else if (sp.length[0] == 'h')
					bits = is_signed ? (unsigned long long)(short)v
							 : (unsigned short)v;
				else
					bits = is_signed ? (unsigned long long)(int)v : v;
			}
			put_number(b, &sp, conv == 'i' ? 'd' : conv, is_signed, bits);
			break;
		}
		case 'c': {
			char c = (char)va_arg(ap, int);

			put_field(b, &sp, &c, 1);
			break;
		}
		case 's':
			put_string(b, &sp, va_arg(ap, const void *));
			break;
		case 'p':
			put_pointer(b, &sp, &fmt, va_arg(ap, const void *));
			break;
		case '%':
			rt_buf_putc(b, '%');
			break;
		case 'n': /* the kernel ignores %n; so do we, consuming its argument */
			(void)va_arg(ap, void *);
			break;
		case 0:
			rt_buf_putc(b, '%');
			return;
		default: /* unknown conversion: print it as written, like the kernel */
			rt_buf_putc(b, '%');
			rt_buf_putc(b, conv);
			break;
		}
	}
}

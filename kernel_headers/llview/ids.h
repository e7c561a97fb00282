/*
 * llview/ids.h - the API an IDS program uses besides the kernel's own
 * headers: structured records (printed as one JSON object per line when the
 * binary runs with --json, as aligned text otherwise) and alerts.
 *
 * The runtime (runtime/src) implements every function declared here. The
 * header includes nothing and uses only plain C types, so it can be included
 * before or after any kernel header. Strings passed to these functions may
 * live in guest memory (p->comm, linux_banner): the runtime reads them
 * through the agent.
 */
#ifndef LLVIEW_IDS_H
#define LLVIEW_IDS_H

/* Non-zero when the IDS binary was started with --json. */
int llview_json(void);

/* A record: begin, any number of fields, end. `kind` names the record type
 * ("task", "module", ...); keys should be unique within one record. */
void llview_record_begin(const char *kind);
void llview_field_int(const char *key, long long value);
void llview_field_uint(const char *key, unsigned long long value);
void llview_field_hex(const char *key, unsigned long long value);
void llview_field_str(const char *key, const char *guest_or_local_string);
void llview_record_end(void);

/* Under --changes (with --interval), what identifies a record from one scan
 * to the next: its kind and the value of `field` (e.g. "pid"), for the
 * records begun after this call; NULL or "" goes back to the default, the
 * record's first field. A record without that field is identified by its
 * kind alone. Without --changes it has no effect. */
void llview_record_key(const char *field);

/* Reports a finding (an alert record in --json mode). The format is
 * printk's; a %s argument may be a guest string. Any alert makes the IDS
 * exit with status 1. */
void llview_alert(const char *fmt, ...) __attribute__((__format__(printf, 1, 2)));

/* A structured finding: llview_alert_begin(technique), then the evidence as
 * fields (llview_field_*: the object, its address, the symbol and owner of
 * a pointer, what the views disagree on), then llview_alert_end() with a
 * one-line message. Text mode prints `ALERT: message [technique=T k=v ...]`;
 * --json prints {"kind":"alert","program":P,"technique":T,"alert":message,
 * fields...}, P being the IDS binary's name. */
void llview_alert_begin(const char *technique);
void llview_alert_end(const char *fmt, ...) __attribute__((__format__(printf, 1, 2)));

/* Address -> symbol, answered by the agent from the running kernel's own
 * kallsyms, for the core kernel's image (_stext.._end) only: modules are
 * the IDS's to walk (llview/kernel_views.h). Answers are kept for the life
 * of the process. printk's %pS and %ps use the same look-up. */
struct llview_symbol {
	unsigned long start; /* 0: not in the core kernel's image */
	unsigned long size;
	const char *name;    /* "" when start is 0 */
};
/* 0 with *sym filled, or -1 (sym->start = 0) when addr is not in the core
 * kernel's image. */
int llview_symbolize(unsigned long addr, struct llview_symbol *sym);
/* Looks up many addresses in as few requests as possible; later
 * llview_symbolize() calls for them need no request. */
void llview_symbolize_prefetch(const unsigned long *addrs, unsigned long n);

/* Starts a new scan: cached guest pages are forgotten and the read budget
 * (--max-reads) is renewed. The runtime starts one before main; an IDS that
 * looks twice (to confirm a finding on a live guest, or to monitor) starts
 * the next one itself. Under --interval the runtime runs main again for
 * each scan (docs/longlived.md). */
void llview_scan_begin(void);

/* Name -> address in the running kernel (KASLR slide applied) for n names
 * in as few requests as possible; 0 for a name the kernel does not have.
 * The kernel's own kallsyms_lookup_name() works too, one request a call. */
void llview_lookup_names(const char *const *names, unsigned long n, unsigned long *addrs);

#endif /* LLVIEW_IDS_H */

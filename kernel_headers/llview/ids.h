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

/* Reports a finding (an alert record in --json mode). The format is
 * printk's; a %s argument may be a guest string. */
void llview_alert(const char *fmt, ...) __attribute__((__format__(printf, 1, 2)));

#endif /* LLVIEW_IDS_H */

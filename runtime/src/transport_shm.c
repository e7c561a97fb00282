/*
 * transport_shm.c - the shared-memory transport (--agent shm:/dev/shm/NAME).
 *
 * The IDS maps the region an agent serves (protocol/llview_shm.h),
 * claims it with a compare-and-swap of its pid into `owner`, does the llview
 * handshake through the control block's two hellos, then moves exactly the
 * TCP frames (sealed by llview_wire.c) through the request and reply areas.
 * A side publishes by writing its frame and then storing the new `state`
 * (release); the other side waits on `state` (acquire), spinning with
 * `pause` for a few tens of microseconds and then sleeping in futex waits
 * with short timeouts: the host agent wakes the futex, an agent inside a
 * guest cannot and is simply polled. Every wait is bounded by --timeout.
 * A reply the agent publishes piece by piece (reply_len growing while the
 * state is still REQUEST) is decrypted as it comes, and used only once its
 * tag verifies. docs/protocol.md ("Shared memory") describes the protocol.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "llview_shm.h"
#include "llview_wire.h"
#include "rt_internal.h"

/* Busy-wait this long for a state change before sleeping: a reply to one
 * page takes a few microseconds, so a fetch never sleeps. After YIELD_NS of
 * it, each spin also yields the core: when the machine's other core is busy
 * (a QEMU guest), the agent may be waiting for this one. */
#define SPIN_NS 50000ull
#define YIELD_NS 10000ull
/* Sleeps between polls grow from SLEEP_MIN_NS to SLEEP_MAX_NS: a host agent
 * ends them early with a futex wake; an in-guest agent is only polled. */
#define SLEEP_MIN_NS 20000ull
#define SLEEP_MAX_NS 1000000ull
/* How often a client waiting for a busy region looks again. */
#define CLAIM_POLL_NS 1000000ull

static u8 *region;
static struct llv_shm_control *ctl;
static struct llv_session session;
static int have_session, claimed;
static u32 my_pid;
static u32 last_state;   /* the server's state we last saw: WELCOME or REPLY */
static u64 timeout_ns;
static u8 *plain;   /* decrypted reply, LLV_MAX_PAYLOAD */
static u8 *frame;   /* private frames: the request sealed, the reply copied out */

static u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u64)ts.tv_sec * 1000000000ull + (u64)ts.tv_nsec;
}

static void nap_ns(u64 ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull),
			       .tv_nsec = (long)(ns % 1000000000ull) };

	nanosleep(&ts, NULL);
}

static u32 load_acquire(const u32 *word)
{
	return __atomic_load_n(word, __ATOMIC_ACQUIRE);
}

/* Not FUTEX_PRIVATE: the word lives in a mapping shared with the agent. */
static void futex_wake(u32 *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static void futex_wait(u32 *word, u32 expected, u64 ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull),
			       .tv_nsec = (long)(ns % 1000000000ull) };

	syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, NULL, 0);
}

/* The pace of a wait on the state word: `pause`, then also sched_yield()
 * after YIELD_NS, then futex sleeps of growing length after SPIN_NS. */
struct pacer {
	u64 since, sleep_ns;
	unsigned int spins;
	int yielding;
};

static void pacer_restart(struct pacer *p)
{
	p->since = now_ns();
	p->sleep_ns = SLEEP_MIN_NS;
	p->spins = 0;
	p->yielding = 0;
}

/* One step of waiting while the state holds `expected`; -1 at the deadline. */
static int pace(struct pacer *p, u32 expected, u64 deadline)
{
	if (!p->yielding && ++p->spins % 64) { /* the clock is read every 64 spins */
		__builtin_ia32_pause();
		return 0;
	}
	u64 t = now_ns();
	if (t >= deadline)
		return -1;
	if (t - p->since < YIELD_NS) {
		__builtin_ia32_pause();
	} else if (t - p->since < SPIN_NS) {
		p->yielding = 1;
		sched_yield();
	} else {
		futex_wait(&ctl->state, expected,
			   p->sleep_ns < deadline - t ? p->sleep_ns : deadline - t);
		if (p->sleep_ns < SLEEP_MAX_NS)
			p->sleep_ns *= 2;
	}
	return 0;
}

/* Waits until `state` differs from `expected` or the deadline passes, and
 * returns the value last seen (== expected on timeout). */
static u32 wait_for_change(u32 expected, u64 deadline)
{
	struct pacer p;
	u32 v;

	pacer_restart(&p);
	while ((v = load_acquire(&ctl->state)) == expected && !pace(&p, expected, deadline))
		;
	return v;
}

/* Stores a client state (HELLO, REQUEST, IDLE) if the state is still
 * `seen`, and wakes the agent. Fails when the agent changed it meanwhile
 * (it ended the session). */
static int publish(u32 seen, u32 state)
{
	if (!__atomic_compare_exchange_n(&ctl->state, &seen, state, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return -1;
	__atomic_add_fetch(&ctl->generation, 1, __ATOMIC_RELEASE);
	futex_wake(&ctl->state);
	return 0;
}

/* Gives the region back (at exit too, so the next IDS need not wait for
 * the agent to notice this process is gone). */
static void release_region(void)
{
	if (!claimed)
		return;
	claimed = 0;
	if (__atomic_load_n(&ctl->owner, __ATOMIC_ACQUIRE) != my_pid)
		return; /* the agent already took it back */
	publish(load_acquire(&ctl->state), LLV_SHM_IDLE);
	u32 mine = my_pid;
	__atomic_compare_exchange_n(&ctl->owner, &mine, 0, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

/* Claims the region: a CAS of our pid into `owner`, retried until the
 * deadline while another IDS holds it. A holder whose process is gone is
 * replaced at once (CAS from its pid): the host agent would free the region
 * soon anyway, but an agent inside a guest cannot see host pids. */
static int claim(const char *where, u64 deadline, char *err, size_t errlen)
{
	u32 holder = 0;

	my_pid = (u32)getpid();
	for (;;) {
		holder = 0;
		if (__atomic_compare_exchange_n(&ctl->owner, &holder, my_pid, 0, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			break;
		if (holder == my_pid)
			break; /* a stale claim by an earlier process with our pid */
		if (kill((pid_t)holder, 0) < 0 && errno == ESRCH &&
		    __atomic_compare_exchange_n(&ctl->owner, &holder, my_pid, 0, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			break;
		if (!load_acquire(&ctl->server_ready)) {
			snprintf(err, errlen, "no agent is serving %s any more", where);
			return RT_E_SEE_MESSAGE;
		}
		if (now_ns() >= deadline) {
			snprintf(err, errlen,
				 "shared-memory region %s is busy: IDS process %u holds it (waited %d s; "
				 "one IDS at a time per region)",
				 where, holder, rt_timeout_s);
			return RT_E_SEE_MESSAGE;
		}
		nap_ns(CLAIM_POLL_NS);
	}
	static int at_exit; /* once: a long-lived IDS claims again after a reconnection */

	claimed = 1;
	if (!at_exit++)
		atexit(release_region);
	return 0;
}

static int handshake(const u8 key[LLV_KEY_LEN], u64 deadline)
{
	struct llv_hello mine = { .magic = LLV_MAGIC, .version = LLV_VERSION,
				  .role = LLV_ROLE_CLIENT };
	struct llv_hello theirs;

	/* The kernel's CSPRNG, so the hello goes out before libcrypto starts. */
	if (getrandom(mine.random, LLV_RANDOM_LEN, 0) != LLV_RANDOM_LEN &&
	    RAND_bytes(mine.random, LLV_RANDOM_LEN) != 1)
		return -LLV_W_CRYPTO;
	memcpy(&ctl->client_hello, &mine, sizeof(mine));
	/* The owner may say HELLO whatever the state: it starts afresh. */
	__atomic_store_n(&ctl->state, LLV_SHM_HELLO, __ATOMIC_RELEASE);
	__atomic_add_fetch(&ctl->generation, 1, __ATOMIC_RELEASE);
	futex_wake(&ctl->state);
	/* libcrypto's first use costs about 2 ms (OpenSSL 3 loads its provider
	 * and algorithm tables); pay it while the agent answers. */
	EVP_CIPHER_free(EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL));
	EVP_MD_free(EVP_MD_fetch(NULL, "SHA256", NULL));
	u32 state = wait_for_change(LLV_SHM_HELLO, deadline);
	if (state == LLV_SHM_HELLO)
		return -LLV_W_TIMEOUT;
	if (state == LLV_SHM_CLOSED)
		return -LLV_E_BAD_MAGIC; /* the agent refused our hello */
	if (state != LLV_SHM_WELCOME)
		return -LLV_W_CLOSED;
	memcpy(&theirs, &ctl->server_hello, sizeof(theirs));
	if (theirs.magic != LLV_MAGIC || theirs.version != LLV_VERSION ||
	    theirs.role != LLV_ROLE_SERVER)
		return -LLV_E_BAD_MAGIC;
	int rc = llv_session_init(&session, key, mine.random, theirs.random, LLV_ROLE_CLIENT);
	if (rc)
		return rc;
	have_session = 1;
	last_state = LLV_SHM_WELCOME;
	return 0;
}

static int shm_connect(const char *where, const u8 key[LLV_KEY_LEN], int timeout_s, char *err,
		       size_t errlen)
{
	struct stat st;
	u64 deadline;
	int fd, rc;

	timeout_ns = (u64)timeout_s * 1000000000ull;
	deadline = now_ns() + timeout_ns;
	if (!where[0]) {
		snprintf(err, errlen, "expected shm:PATH, e.g. shm:/dev/shm/llview-NAME");
		return RT_E_SEE_MESSAGE;
	}
	fd = open(where, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open shared-memory region %s: %s (is an agent serving it?)",
			 where, strerror(errno));
		return RT_E_SEE_MESSAGE;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != LLV_SHM_SIZE) {
		snprintf(err, errlen, "%s is not an llview shared-memory region (%lld bytes, expected %u)",
			 where, (long long)st.st_size, LLV_SHM_SIZE);
		close(fd);
		return RT_E_SEE_MESSAGE;
	}
	region = mmap(NULL, LLV_SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (region == MAP_FAILED) {
		region = NULL;
		snprintf(err, errlen, "cannot map %s: %s", where, strerror(errno));
		return RT_E_SEE_MESSAGE;
	}
	ctl = (struct llv_shm_control *)region;
	if (load_acquire(&ctl->magic) != LLV_SHM_MAGIC || ctl->version != LLV_SHM_VERSION) {
		snprintf(err, errlen, "%s was not set up by an llview agent (bad magic or version)",
			 where);
		return RT_E_SEE_MESSAGE;
	}
	if (!load_acquire(&ctl->server_ready)) {
		snprintf(err, errlen, "no agent is serving %s (start one with llview agent serve --shm)",
			 where);
		return RT_E_SEE_MESSAGE;
	}
	plain = malloc(LLV_MAX_PAYLOAD);
	frame = malloc(llv_frame_size(LLV_MAX_PAYLOAD));
	if (!plain || !frame) {
		snprintf(err, errlen, "out of memory");
		return RT_E_SEE_MESSAGE;
	}
	if ((rc = claim(where, deadline, err, errlen)))
		return rc;
	return handshake(key, deadline);
}

/* A reply frame being received: the agent may publish it piece by piece
 * (reply_len grows while the state is still REQUEST), and each piece is
 * decrypted as it comes, so opening overlaps the agent's sealing. Every
 * piece is copied out of shared memory before use, so nobody can change it
 * between check and use; nothing is handed on before the tag verifies. */
struct reply_rx {
	struct llv_frame_hdr h;
	int have_header;
	u32 total; /* frame size announced by the header */
	u32 done;  /* frame bytes taken so far */
};

/* Takes the frame bytes [rx->done, avail) of the reply area. */
static int take_reply(struct reply_rx *rx, u32 avail)
{
	const u8 *area = llv_shm_reply_area(region);
	u8 nonce[LLV_NONCE_LEN];
	int n, rc;

	if (avail > LLV_SHM_AREA_SIZE)
		return -LLV_E_MALFORMED;
	if (!rx->have_header) {
		if (avail < sizeof(rx->h))
			return 0;
		memcpy(&rx->h, area, sizeof(rx->h));
		if ((rc = llv_check_header(&session, &rx->h)))
			return rc;
		rx->total = (u32)llv_frame_size(rx->h.len);
		memcpy(nonce, &session.recv_dir, sizeof(u32));
		memcpy(nonce + sizeof(u32), &rx->h.seq, sizeof(u64));
		if (EVP_DecryptInit_ex(session.dec, NULL, NULL, NULL, nonce) != 1 ||
		    EVP_DecryptUpdate(session.dec, NULL, &n, (const u8 *)&rx->h, sizeof(rx->h)) != 1)
			return -LLV_W_CRYPTO;
		rx->have_header = 1;
		rx->done = sizeof(rx->h);
	}
	if (avail > rx->total)
		return -LLV_E_MALFORMED;
	u32 end = avail < rx->total - LLV_TAG_LEN ? avail : rx->total - LLV_TAG_LEN;
	if (end > rx->done) {
		memcpy(frame + rx->done, area + rx->done, end - rx->done);
		if (EVP_DecryptUpdate(session.dec, plain + (rx->done - sizeof(rx->h)), &n,
				      frame + rx->done, (int)(end - rx->done)) != 1)
			return -LLV_W_CRYPTO;
		rx->done = end;
	}
	return 0;
}

/* The whole frame is published (reply_len = frame size): checks the tag. */
static int finish_reply(struct reply_rx *rx, u32 avail, u32 *len)
{
	int rc = take_reply(rx, avail), n;

	if (rc)
		return rc;
	if (!rx->have_header || avail != rx->total)
		return -LLV_E_MALFORMED;
	memcpy(frame + rx->done, llv_shm_reply_area(region) + rx->done, LLV_TAG_LEN);
	if (EVP_CIPHER_CTX_ctrl(session.dec, EVP_CTRL_GCM_SET_TAG, LLV_TAG_LEN,
				frame + rx->done) != 1)
		return -LLV_W_CRYPTO;
	if (EVP_DecryptFinal_ex(session.dec, plain + rx->h.len, &n) != 1) {
		OPENSSL_cleanse(plain, rx->h.len); /* never hand out unauthenticated plaintext */
		return -LLV_E_AUTH;
	}
	session.recv_seq++;
	*len = rx->h.len;
	return 0;
}

/* Waits for the reply to the REQUEST just published, taking its pieces as
 * they come: spins while nothing moves, sleeps after SPIN_NS without
 * progress, gives up at the deadline. Returns the final state, or
 * LLV_SHM_REQUEST on timeout; *rc is set if a piece was bad. */
static u32 receive_reply(struct reply_rx *rx, u64 deadline, int *rc)
{
	struct pacer p;
	u32 seen = 0;

	*rc = 0;
	pacer_restart(&p);
	for (;;) {
		u32 state = load_acquire(&ctl->state);

		if (state != LLV_SHM_REQUEST)
			return state;
		u32 avail = load_acquire(&ctl->reply_len);
		if (avail != seen) {
			seen = avail;
			if ((*rc = take_reply(rx, avail)))
				return state;
			pacer_restart(&p);
			continue;
		}
		if (pace(&p, LLV_SHM_REQUEST, deadline))
			return state;
	}
}

/* Seals and publishes a request, then waits for its reply in `plain`. */
static int shm_exchange(const u8 *req, u32 req_len, const u8 **reply, u32 *len)
{
	u8 *area = llv_shm_request_area(region);
	size_t n;
	int rc;

	if (!have_session)
		return -LLV_W_CLOSED;
	/* Write nothing into a region the agent has handed to someone else. */
	if (__atomic_load_n(&ctl->owner, __ATOMIC_ACQUIRE) != my_pid) {
		have_session = 0;
		return -LLV_W_CLOSED;
	}
	/* Sealed privately, then copied: GCM may read back its output for the
	 * tag, and nobody else may change the frame then. */
	n = llv_seal(&session, req, req_len, frame);
	if (!n)
		return -LLV_W_CRYPTO;
	memcpy(area, frame, n);
	__atomic_store_n(&ctl->request_len, (u32)n, __ATOMIC_RELAXED); /* published by state */
	/* So that any reply_len seen while the state is REQUEST is progress of
	 * the new reply, not the length of the last one. */
	__atomic_store_n(&ctl->reply_len, 0, __ATOMIC_RELAXED);
	if (publish(last_state, LLV_SHM_REQUEST)) {
		have_session = 0; /* the agent ended the session (idle, or stopping) */
		return -LLV_W_CLOSED;
	}
	rt_stats.requests++;
	rt_stats.bytes_sent += n;
	struct reply_rx rx = { .have_header = 0 };
	u32 state = receive_reply(&rx, now_ns() + timeout_ns, &rc);
	if (rc)
		return rc;
	if (state == LLV_SHM_REQUEST)
		return -LLV_W_TIMEOUT;
	if (state != LLV_SHM_REPLY && state != LLV_SHM_CLOSED) {
		have_session = 0;
		return -LLV_W_CLOSED;
	}
	u32 avail = load_acquire(&ctl->reply_len);
	if (state == LLV_SHM_CLOSED) {
		/* An error reply is whole when CLOSED is published (its pieces may
		 * have been taken already); without one, or with a reply cut
		 * short, the agent went away. */
		have_session = 0;
		if (!avail || (rx.have_header && avail != rx.total))
			return -LLV_W_CLOSED;
	}
	rc = finish_reply(&rx, avail, len);
	if (rc)
		return rc; /* LLV_E_AUTH here is the wrong key, as over TCP */
	if (state == LLV_SHM_CLOSED &&
	    (*len < sizeof(struct llv_msg) || ((const struct llv_msg *)plain)->type != LLV_REP_ERROR))
		return -LLV_W_CLOSED;
	last_state = LLV_SHM_REPLY;
	rt_stats.bytes_received += llv_frame_size(*len);
	if (*len < sizeof(struct llv_msg))
		return -LLV_E_MALFORMED;
	/* An agent's error reply ends the session (the state goes CLOSED). */
	if (((const struct llv_msg *)plain)->type == LLV_REP_ERROR)
		have_session = 0;
	*reply = plain;
	return 0;
}

static void shm_close(void)
{
	if (region) {
		release_region();
		munmap(region, LLV_SHM_SIZE);
	}
	region = NULL;
	ctl = NULL;
	have_session = 0;
	llv_session_free(&session);
	free(plain);
	free(frame);
	plain = frame = NULL;
}

const struct rt_transport_ops rt_shm_transport = {
	.scheme = "shm",
	.connect = shm_connect,
	.exchange = shm_exchange,
	.close = shm_close,
};

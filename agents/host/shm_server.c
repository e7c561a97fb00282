/*
 * shm_server.c - the host agent's shared-memory server. One thread serves
 * one region: it waits for the client's state word to change (spinning with
 * `pause` for a while after each request, then sleeping in a futex wait the
 * client's publish ends), answers the hello, then opens each request frame
 * from the request area and puts the sealed reply into the reply area: the
 * TCP frames and error replies, moved through memory instead of a socket.
 * Plaintext never enters the region.
 *
 * Everything in the region can be written by the client at any time, so the
 * server copies a frame out before checking it, bounds request_len against
 * the area and the frame's own length, moves the state only with
 * compare-and-swap from the value it acted on, and treats any other value as
 * a malformed request. A client whose process is gone, or that stays silent
 * past the idle timeout, loses the region so the next IDS can claim it.
 */
#define _GNU_SOURCE
#include "shm_server.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "llview_core.h"
#include "llview_shm.h"
#include "llview_wire.h"

/* How long to spin after each reply before sleeping: twice the client's
 * recent think time (reply to next request, a running average), within
 * these bounds. An IDS following a list asks again within 10 to 500 us
 * (most of it first-touch page faults of its cache); catching that by
 * spinning saves a futex wake-up (tens of us, more on a loaded machine),
 * while an idle agent spins not at all and a session's end costs at most
 * SPIN_MAX_NS of one core. */
#define SPIN_MIN_NS 50000ull
/* After this much spinning, each round of it also yields the core. */
#define YIELD_NS 10000ull
#define SPIN_MAX_NS 200000ull
/* How often a sleeping server looks for a dead or idle client. */
#define HOUSEKEEPING_NS 100000000ull

static u8 *base;
static struct llv_shm_control *ctl;
static char region_path[PATH_MAX];
static int created_file;

static u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u64)ts.tv_sec * 1000000000ull + (u64)ts.tv_nsec;
}

/* Not FUTEX_PRIVATE: the word lives in a mapping shared with the client. */
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

int llv_shm_server_open(const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(region_path)) {
		snprintf(err, errlen, "--shm: path too long");
		return -1;
	}
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	created_file = fd >= 0;
	if (fd < 0 && errno == EEXIST) /* a QEMU ivshmem backend, or left by an earlier agent */
		fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "--shm %s: %s", path, strerror(errno));
		return -1;
	}
	snprintf(region_path, sizeof(region_path), "%s", path);
	if (created_file && ftruncate(fd, LLV_SHM_SIZE) < 0) {
		snprintf(err, errlen, "--shm %s: cannot size the region: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "--shm %s: not a regular file", path);
		goto fail;
	}
	if (st.st_size != LLV_SHM_SIZE) {
		snprintf(err, errlen,
			 "--shm %s: exists with %lld bytes, not %u (for QEMU use "
			 "-object memory-backend-file,size=%uK,share=on)",
			 path, (long long)st.st_size, LLV_SHM_SIZE, LLV_SHM_SIZE >> 10);
		goto fail;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 022)) {
		snprintf(err, errlen, "--shm %s: must be owned by this user and writable by no one "
			 "else (mode %03o)", path, st.st_mode & 0777);
		goto fail;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		snprintf(err, errlen, "--shm %s: another agent already serves this region", path);
		goto fail;
	}
	base = mmap(NULL, LLV_SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		base = NULL;
		snprintf(err, errlen, "--shm %s: cannot map: %s", path, strerror(errno));
		goto fail;
	}
	/* fd stays open (and locked) for the agent's life. */
	ctl = (struct llv_shm_control *)base;
	__atomic_store_n(&ctl->server_ready, 0, __ATOMIC_RELEASE);
	memset((u8 *)ctl + sizeof(ctl->magic), 0, LLV_SHM_CONTROL_SIZE - sizeof(ctl->magic));
	ctl->magic = LLV_SHM_MAGIC;
	ctl->version = LLV_SHM_VERSION;
	__atomic_store_n(&ctl->server_ready, 1, __ATOMIC_RELEASE);
	return 0;
fail:
	if (created_file)
		unlink(path);
	created_file = 0;
	close(fd);
	return -1;
}

void llv_shm_server_shutdown(void)
{
	if (!ctl || !__atomic_exchange_n(&ctl->server_ready, 0, __ATOMIC_ACQ_REL))
		return;
	__atomic_store_n(&ctl->reply_len, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&ctl->state, LLV_SHM_CLOSED, __ATOMIC_RELEASE);
	futex_wake(&ctl->state);
	if (created_file)
		unlink(region_path);
}

/* ---- serving ------------------------------------------------------------ */

struct server {
	const u8 *psk;
	llv_serve_fn serve;
	int verbose;
	struct llv_session s;
	int have_session;
	u32 session_owner; /* the owner that said HELLO: a request from another has no session */
	u32 seen;  /* the state value last acted on (or written) by the server */
	u8 *req, *rep; /* private plaintext of the request and the reply */
	u8 *frame;     /* private frame: the request copied out, the reply sealed */
};

static void logf_verbose(const struct server *sv, const char *fmt, const char *arg)
{
	if (sv->verbose) {
		fprintf(stderr, "llview-agent: shm %s: ", region_path);
		fprintf(stderr, fmt, arg);
		fputc('\n', stderr);
	}
}

static void end_session(struct server *sv)
{
	if (sv->have_session)
		llv_session_free(&sv->s);
	sv->have_session = 0;
	OPENSSL_cleanse(sv->req, LLV_MAX_PAYLOAD);
}

/* Moves the state from the value acted on to `next`; a client that changed
 * it meanwhile wins, and the loop sees its new value. */
static void move_state(struct server *sv, u32 from, u32 next)
{
	if (__atomic_compare_exchange_n(&ctl->state, &from, next, 0, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE)) {
		sv->seen = next;
		__atomic_add_fetch(&ctl->generation, 1, __ATOMIC_RELEASE);
		futex_wake(&ctl->state);
	} else {
		sv->seen = from;
	}
}

/* Seals rep_len bytes of sv->rep privately, then copies the frame into the
 * reply area: GCM implementations may read back what they wrote while
 * computing the tag, and the client must not be able to change it then.
 * Returns the frame size, or 0. */
static size_t seal_reply(struct server *sv, u32 rep_len)
{
	size_t n = llv_seal(&sv->s, sv->rep, rep_len, sv->frame);

	if (n)
		memcpy(llv_shm_reply_area(base), sv->frame, n);
	return n;
}

/* The piece of a streamed reply published at a time: small enough that the
 * client opens one piece while the next is sealed (a one-page reply goes in
 * four), large enough to keep libcrypto's per-call cost small. */
static u32 stream_piece(u32 len)
{
	u32 piece = (len / 4 + 15) & ~15u;

	return piece < 1024 ? 1024 : piece > 16384 ? 16384 : piece;
}

/* Seals the reply exactly as llv_seal would, but publishes it piece by
 * piece: reply_len (release) grows after each piece while the state stays
 * REQUEST, so the client decrypts piece k while piece k + 1 is sealed, on the
 * other core. Each piece is sealed privately and then copied (see
 * seal_reply). Returns the frame size, or 0. */
static size_t seal_streaming(struct server *sv, u32 len)
{
	struct llv_frame_hdr h = { .magic = LLV_MAGIC, .len = len, .seq = sv->s.send_seq };
	EVP_CIPHER_CTX *enc = sv->s.enc;
	u8 *area = llv_shm_reply_area(base);
	u8 nonce[LLV_NONCE_LEN];
	u32 piece = stream_piece(len);
	int n;

	memcpy(nonce, &sv->s.send_dir, sizeof(u32));
	memcpy(nonce + sizeof(u32), &h.seq, sizeof(u64));
	if (EVP_EncryptInit_ex(enc, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_EncryptUpdate(enc, NULL, &n, (const u8 *)&h, sizeof(h)) != 1)
		return 0;
	memcpy(area, &h, sizeof(h));
	__atomic_store_n(&ctl->reply_len, (u32)sizeof(h), __ATOMIC_RELEASE);
	for (u32 done = 0; done < len; done += piece) {
		u32 size = len - done < piece ? len - done : piece;

		if (EVP_EncryptUpdate(enc, sv->frame, &n, sv->rep + done, (int)size) != 1 ||
		    (u32)n != size)
			return 0;
		memcpy(area + sizeof(h) + done, sv->frame, size);
		__atomic_store_n(&ctl->reply_len, (u32)sizeof(h) + done + size, __ATOMIC_RELEASE);
	}
	if (EVP_EncryptFinal_ex(enc, sv->frame, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(enc, EVP_CTRL_GCM_GET_TAG, LLV_TAG_LEN, sv->frame) != 1)
		return 0;
	memcpy(area + sizeof(h) + len, sv->frame, LLV_TAG_LEN);
	sv->s.send_seq++;
	return llv_frame_size(len);
}

/* Ends the session with CLOSED: after a sealed REP_ERROR when there is a
 * session to seal it with (as over TCP), else with no reply. */
static void close_with_error(struct server *sv, u32 from, int code, const char *msg)
{
	struct llv_msg m = { .type = LLV_REP_ERROR, .count = (u32)-code };
	size_t n = strlen(msg) + 1, sealed = 0;

	logf_verbose(sv, "%s", msg);
	if (sv->have_session && code <= -LLV_E_BAD_MAGIC && code >= -LLV_E_INTERNAL) {
		memcpy(sv->rep, &m, sizeof(m));
		memcpy(sv->rep + sizeof(m), msg, n);
		sealed = seal_reply(sv, (u32)(sizeof(m) + n));
	}
	__atomic_store_n(&ctl->reply_len, (u32)sealed, __ATOMIC_RELAXED);
	end_session(sv);
	move_state(sv, from, LLV_SHM_CLOSED);
}

static void answer_hello(struct server *sv)
{
	char msg[LLV_CORE_MSG_MAX];
	struct llv_hello theirs, mine = { .magic = LLV_MAGIC, .version = LLV_VERSION,
					  .role = LLV_ROLE_SERVER };

	end_session(sv);
	memcpy(&theirs, &ctl->client_hello, sizeof(theirs));
	if (llv_core_check_hello(&theirs, msg)) { /* no key: closed without a reply */
		close_with_error(sv, LLV_SHM_HELLO, -LLV_E_BAD_MAGIC, msg);
		return;
	}
	if (RAND_bytes(mine.random, LLV_RANDOM_LEN) != 1 ||
	    llv_session_init(&sv->s, sv->psk, theirs.random, mine.random, LLV_ROLE_SERVER)) {
		close_with_error(sv, LLV_SHM_HELLO, -LLV_W_CRYPTO, "libcrypto failure");
		return;
	}
	sv->have_session = 1;
	sv->session_owner = __atomic_load_n(&ctl->owner, __ATOMIC_ACQUIRE);
	memcpy(&ctl->server_hello, &mine, sizeof(mine));
	move_state(sv, LLV_SHM_HELLO, LLV_SHM_WELCOME);
	if (sv->verbose) {
		char pid[16];

		snprintf(pid, sizeof(pid), "%u", __atomic_load_n(&ctl->owner, __ATOMIC_RELAXED));
		logf_verbose(sv, "session opened by pid %s", pid);
	}
}

static void answer_request(struct server *sv)
{
	const u8 *area = llv_shm_request_area(base);
	u32 n = __atomic_load_n(&ctl->request_len, __ATOMIC_ACQUIRE);
	struct llv_frame_hdr h;
	u32 rep_len;
	char msg[256];
	int rc;

	if (sv->have_session && __atomic_load_n(&ctl->owner, __ATOMIC_ACQUIRE) != sv->session_owner)
		end_session(sv); /* a new client that skipped the hello: no session for it */
	if (!sv->have_session) {
		close_with_error(sv, LLV_SHM_REQUEST, -LLV_E_MALFORMED, "request before the handshake");
		return;
	}
	if ((rc = llv_core_check_shm_request(n, LLV_SHM_AREA_SIZE, NULL, msg))) {
		close_with_error(sv, LLV_SHM_REQUEST, rc, msg);
		return;
	}
	/* Copy out first: the client can rewrite the area while we look. */
	memcpy(&h, area, sizeof(h));
	if ((rc = llv_core_check_frame(&h, sv->s.recv_seq, msg)) ||
	    (rc = llv_core_check_shm_request(n, LLV_SHM_AREA_SIZE, &h, msg))) {
		close_with_error(sv, LLV_SHM_REQUEST, rc, msg);
		return;
	}
	memcpy(sv->frame, area + sizeof(h), h.len + LLV_TAG_LEN);
	if ((rc = llv_open(&sv->s, &h, sv->frame, sv->req))) {
		close_with_error(sv, LLV_SHM_REQUEST, rc, llv_error_text(rc));
		return;
	}
	if ((rc = sv->serve(sv->req, h.len, sv->rep, &rep_len, msg, sizeof(msg)))) {
		close_with_error(sv, LLV_SHM_REQUEST, rc, msg);
		return;
	}
	size_t sealed = seal_streaming(sv, rep_len);
	if (!sealed) {
		close_with_error(sv, LLV_SHM_REQUEST, -LLV_W_CRYPTO, "libcrypto failure");
		return;
	}
	__atomic_store_n(&ctl->reply_len, (u32)sealed, __ATOMIC_RELAXED); /* published by state */
	move_state(sv, LLV_SHM_REQUEST, LLV_SHM_REPLY);
}

/* Frees the region of a client that is gone (its pid no longer exists) or
 * silent past the idle timeout, so the next IDS can claim it. */
static void housekeeping(struct server *sv, u64 last_activity, int idle_s)
{
	u32 owner = __atomic_load_n(&ctl->owner, __ATOMIC_ACQUIRE);
	const char *why;
	char pid[16];

	if (!owner && sv->seen == LLV_SHM_IDLE)
		return;
	if (owner && kill((pid_t)owner, 0) < 0 && errno == ESRCH)
		why = "client process %s is gone; region freed";
	else if (now_ns() - last_activity > (u64)idle_s * 1000000000ull)
		why = "client pid %s idle past the timeout; region freed";
	else
		return;
	u32 from = sv->seen;
	if (!__atomic_compare_exchange_n(&ctl->state, &from, LLV_SHM_IDLE, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return; /* the client just moved: not idle after all */
	sv->seen = LLV_SHM_IDLE;
	end_session(sv);
	__atomic_compare_exchange_n(&ctl->owner, &owner, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
	__atomic_add_fetch(&ctl->generation, 1, __ATOMIC_RELEASE);
	futex_wake(&ctl->state);
	snprintf(pid, sizeof(pid), "%u", owner);
	logf_verbose(sv, why, pid);
}

/* Waits for the state to leave sv->seen: spins for spin_ns, then sleeps in
 * futex waits of at most HOUSEKEEPING_NS. Returns the new value, or
 * sv->seen after a sleep that saw no change. */
static u32 wait_for_change(const struct server *sv, u64 spin_ns)
{
	u64 start = now_ns();
	u32 v;

	for (unsigned int spins = 1;; spins++) {
		v = __atomic_load_n(&ctl->state, __ATOMIC_ACQUIRE);
		if (v != sv->seen)
			return v;
		if (spins % 64) {
			__builtin_ia32_pause();
			continue;
		}
		u64 spun = now_ns() - start;
		if (spun >= spin_ns)
			break;
		/* After a while, let the IDS have this core if it shares it. */
		if (spun >= YIELD_NS)
			sched_yield();
	}
	futex_wait(&ctl->state, sv->seen, HOUSEKEEPING_NS);
	return __atomic_load_n(&ctl->state, __ATOMIC_ACQUIRE);
}

void llv_shm_server_run(const u8 psk[LLV_KEY_LEN], llv_serve_fn serve, int idle_s, int verbose)
{
	struct server sv = { .psk = psk, .serve = serve, .verbose = verbose,
			     .seen = LLV_SHM_IDLE };
	u64 last_activity = now_ns(), spin_ns = 0, replied_at = 0, think_ns = SPIN_MIN_NS / 2;
	char msg[LLV_CORE_MSG_MAX];

	sv.req = malloc(LLV_MAX_PAYLOAD);
	sv.rep = malloc(LLV_MAX_PAYLOAD);
	sv.frame = malloc(llv_frame_size(LLV_MAX_PAYLOAD));
	if (!sv.req || !sv.rep || !sv.frame) {
		fprintf(stderr, "llview-agent: out of memory for the shared-memory server\n");
		exit(1);
	}
	for (;;) {
		u32 state = wait_for_change(&sv, spin_ns);

		if (!__atomic_load_n(&ctl->server_ready, __ATOMIC_ACQUIRE))
			return; /* shutting down */
		if (state == sv.seen) {
			spin_ns = 0;
			housekeeping(&sv, last_activity, idle_s);
			continue;
		}
		last_activity = now_ns();
		if (state == LLV_SHM_REQUEST && replied_at) {
			u64 gap = last_activity - replied_at;

			/* A gap longer than the longest spin was not worth spinning for. */
			think_ns = gap <= SPIN_MAX_NS ? (3 * think_ns + gap) / 4 : think_ns / 2;
		}
		spin_ns = 2 * think_ns;
		spin_ns = spin_ns < SPIN_MIN_NS ? SPIN_MIN_NS : spin_ns > SPIN_MAX_NS ? SPIN_MAX_NS : spin_ns;
		replied_at = 0;
		switch (state) {
		case LLV_SHM_HELLO:
			answer_hello(&sv);
			break;
		case LLV_SHM_REQUEST:
			answer_request(&sv);
			replied_at = now_ns();
			break;
		case LLV_SHM_IDLE: /* the client released the region */
			end_session(&sv);
			sv.seen = LLV_SHM_IDLE;
			logf_verbose(&sv, "session ended%s", "");
			break;
		default: /* garbage, or a server state the server did not write */
			close_with_error(&sv, state, llv_core_check_shm_state(state, msg), msg);
			break;
		}
	}
}

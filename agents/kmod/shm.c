// SPDX-License-Identifier: GPL-2.0
/*
 * shm.c - the shared-memory transport of the in-kernel agent: a PCI driver
 * for QEMU's ivshmem-plain device (1af4:1110) that maps BAR 2 write-back and
 * serves the llview_shm.h region with one kernel thread per device. Frames
 * are the TCP frames, sealed and opened by session.c; only the signalling
 * differs.
 *
 * The server's side of the state machine in llview_shm.h, as the host
 * agent's agents/host/shm_server.c plays it (the checks and their
 * messages are the request core's, protocol/llview_core.c). Every move is a compare-and-swap
 * from the state acted on (a client that moved meanwhile wins), followed by
 * generation += 1:
 *   HELLO    -> check client_hello, write server_hello, key  -> WELCOME
 *               (bad hello, or no key yet: nothing can be sealed)
 *                                          -> reply_len = 0, CLOSED
 *   REQUEST  -> copy the frame out of the region, check, open, serve, seal
 *               into a private buffer, copy it to the reply area -> REPLY
 *               (a bad frame: its sealed REP_ERROR, as over TCP -> CLOSED)
 *   REQUEST without a keyed session                  -> reply_len = 0, CLOSED
 *   IDLE, or the state the server itself last wrote: keep waiting.
 *   anything else (garbage, a server-only state the server did not write)
 *            -> its sealed LLV_E_MALFORMED error (if keyed), CLOSED, as the host
 *               agent answers it.
 * A HELLO is served whenever it appears, so a client that takes the region
 * over from a dead owner starts afresh. A client silent for idle_timeout
 * (no state or generation change) loses the region: state IDLE, owner 0.
 * The guest cannot see host pids, so a dead client is noticed only that way,
 * or by the next IDS (see the report / docs/protocol.md).
 * On unload: a pending REQUEST gets the sealed "agent is being unloaded"
 * error and CLOSED; a pending HELLO gets CLOSED; a session between requests
 * is moved to CLOSED (the client may still be reading its last reply, so the
 * reply area is left alone, and its next publish fails); then server_ready
 * goes to 0.
 *
 * Plaintext never enters the region: requests are opened and replies sealed
 * in private buffers, and the request is copied out before it is checked, so
 * the client cannot change it between check and use.
 *
 * The guest may have one vCPU, and under TCG every timer wakeup is costly:
 * after each request the thread spins on the state word for SPIN_NS (an IDS
 * sends its next request as soon as it has the reply), then sleeps between
 * polls, NAP_MIN_US at first, doubling up to NAP_MAX_US. A request after a
 * pause of t waits at most about t more (and never more than NAP_MAX_US);
 * fixed 50-200 us naps made guest processes ~2.5x slower while an IDS was
 * connected (tests/test_kmod.py measures it).
 */
#include <linux/hrtimer.h>
#include <linux/io.h>
#include <linux/kthread.h>
#include <linux/pci.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/timekeeping.h>

#include "agent.h"
#include "llview_shm.h"

#define IVSHMEM_VENDOR 0x1af4
#define IVSHMEM_DEVICE 0x1110
#define IVSHMEM_SHARED_BAR 2

#define SPIN_NS (100 * NSEC_PER_USEC)
#define NAP_MIN_US 50u
#define NAP_MAX_US 2000u

static u64 idle_ns; /* 0: never free the region of a silent client */

struct llv_shm {
	struct pci_dev *pdev;
	void *base; /* the region: BAR 2, mapped write-back */
	struct llv_shm_control *ctl;
	struct task_struct *thread;
	struct llv_session session;
	u8 *rx, *tx; /* private: the opened request and the reply being sealed */
	u32 seen;    /* the state the server last wrote, or IDLE the client wrote */
};

/* The generation word is a plain u32 in the region; atomic_t has its layout. */
static void bump_generation(struct llv_shm_control *ctl)
{
	atomic_inc((atomic_t *)&ctl->generation);
}

/* Every state change the server makes: compare-and-swap from the state it
 * acted on (full barrier: what it wrote before is visible first), then the
 * generation. False when the client moved first; the loop sees its state. */
static bool move_state(struct llv_shm *d, u32 from, u32 next)
{
	if (cmpxchg(&d->ctl->state, from, next) != from)
		return false;
	bump_generation(d->ctl);
	d->seen = next;
	return true;
}

/* Ends the session with nothing to say (no key to seal with). */
static void close_silently(struct llv_shm *d, u32 from)
{
	d->session.keyed = false;
	WRITE_ONCE(d->ctl->reply_len, 0);
	move_state(d, from, LLV_SHM_CLOSED);
}

/* Publishes the sealed answer to a REQUEST at d->tx (if sealing failed, nothing). */
static void send_reply(struct llv_shm *d, int frame_len, bool last)
{
	if (frame_len < 0) {
		close_silently(d, LLV_SHM_REQUEST);
		return;
	}
	if (last)
		d->session.keyed = false;
	memcpy(llv_shm_reply_area(d->base), d->tx, frame_len);
	WRITE_ONCE(d->ctl->reply_len, frame_len);
	move_state(d, LLV_SHM_REQUEST, last ? LLV_SHM_CLOSED : LLV_SHM_REPLY);
}

static void serve_hello(struct llv_shm *d)
{
	struct llv_hello theirs, mine;
	int rc;

	memcpy(&theirs, &d->ctl->client_hello, sizeof(theirs));
	rc = llv_session_start(&d->session, &theirs, &mine);
	if (rc) {
		pr_info_ratelimited("llview_agent: shm: closing session: %s\n",
				    rc == -EPROTO ? "bad hello" :
				    rc == -ENOKEY ? "no key installed yet" : "cannot key the session");
		close_silently(d, LLV_SHM_HELLO);
		return;
	}
	memcpy(&d->ctl->server_hello, &mine, sizeof(mine));
	if (!move_state(d, LLV_SHM_HELLO, LLV_SHM_WELCOME))
		d->session.keyed = false;
}

static void serve_request(struct llv_shm *d)
{
	const u8 *area = llv_shm_request_area(d->base);
	struct llv_frame_hdr *hdr = (struct llv_frame_hdr *)d->rx;
	u32 len = READ_ONCE(d->ctl->request_len);
	char why[LLV_CORE_MSG_MAX];
	bool last;
	int code;

	if (!d->session.keyed) {
		close_silently(d, LLV_SHM_REQUEST);
		return;
	}
	/* The limits first, as TCP checks a header before reading a body. */
	code = -llv_core_check_shm_request(len, LLV_SHM_AREA_SIZE, NULL, why);
	if (code)
		goto error;
	memcpy(d->rx, area, LLV_HDR_LEN);
	code = llv_frame_check(&d->session, hdr, why);
	if (!code)
		code = -llv_core_check_shm_request(len, LLV_SHM_AREA_SIZE, hdr, why);
	if (code)
		goto error;
	memcpy(d->rx + LLV_HDR_LEN, area + LLV_HDR_LEN, len - LLV_HDR_LEN);
	code = llv_session_answer(&d->session, d->rx, d->tx, &last);
	send_reply(d, code, last);
	return;
error:
	send_reply(d, llv_seal_error(&d->session, d->tx, code, why), true);
}

/* A state value the server did not write and no client may (garbage, or a
 * server-only state): the session ends, with a sealed LLV_E_MALFORMED when
 * it is keyed, as the host agent ends it. */
static void serve_bad_state(struct llv_shm *d, u32 state)
{
	char why[LLV_CORE_MSG_MAX];
	int frame_len = -1;

	llv_core_check_shm_state(state, why);
	if (d->session.keyed)
		frame_len = llv_seal_error(&d->session, d->tx, LLV_E_MALFORMED, why);
	else
		pr_info_ratelimited("llview_agent: shm: closing session: %s\n", why);
	d->session.keyed = false;
	if (frame_len > 0)
		memcpy(llv_shm_reply_area(d->base), d->tx, frame_len);
	WRITE_ONCE(d->ctl->reply_len, frame_len > 0 ? frame_len : 0);
	move_state(d, state, LLV_SHM_CLOSED);
}

/* rmmod: every session ends in CLOSED, so a waiting IDS learns at once (see
 * the banner). A few tries only: a client flipping the state must not keep
 * the module from unloading. */
static void end_session_on_stop(struct llv_shm *d)
{
	int tries;

	for (tries = 0; tries < 4; tries++) {
		u32 state = smp_load_acquire(&d->ctl->state);

		if (state == LLV_SHM_REQUEST && d->session.keyed) {
			send_reply(d, llv_seal_error(&d->session, d->tx, LLV_E_INTERNAL,
						     "agent is being unloaded"), true);
			break;
		}
		if (state == LLV_SHM_REQUEST || state == LLV_SHM_HELLO) {
			close_silently(d, state);
			break;
		}
		if (state != LLV_SHM_WELCOME && state != LLV_SHM_REPLY)
			break; /* IDLE, CLOSED or garbage: no session to end */
		if (move_state(d, state, LLV_SHM_CLOSED))
			break;
	}
	d->session.keyed = false;
}

/* Sleeps us to 1.5 x us (the slack lets the timer share a wakeup), or until
 * kthread_stop wakes us. Interruptible, so an idle agent adds no load. */
static void nap(unsigned int us)
{
	ktime_t wait = ns_to_ktime((u64)us * NSEC_PER_USEC);

	set_current_state(TASK_INTERRUPTIBLE);
	if (!kthread_should_stop())
		schedule_hrtimeout_range(&wait, (u64)us * NSEC_PER_USEC / 2, HRTIMER_MODE_REL);
	__set_current_state(TASK_RUNNING);
}

/* Frees the region of a client silent past idle_ns, as TCP drops an idle IDS. */
static void free_if_idle(struct llv_shm *d, u32 state, u64 quiet)
{
	u32 owner = READ_ONCE(d->ctl->owner);

	if (!idle_ns || quiet < idle_ns || (!owner && state == LLV_SHM_IDLE))
		return;
	if (!move_state(d, state, LLV_SHM_IDLE))
		return; /* the client just moved: not idle after all */
	d->session.keyed = false;
	cmpxchg(&d->ctl->owner, owner, 0);
	pr_info_ratelimited("llview_agent: shm: client idle past the timeout; region freed\n");
}

static int shm_serve(void *arg)
{
	struct llv_shm *d = arg;
	u64 last_active = ktime_get_ns() - SPIN_NS;
	u32 seen_generation = READ_ONCE(d->ctl->generation);
	unsigned int nap_us = NAP_MAX_US;

	while (!kthread_should_stop()) {
		u32 state = smp_load_acquire(&d->ctl->state);
		u32 generation = READ_ONCE(d->ctl->generation);
		u64 quiet;

		if (state == LLV_SHM_HELLO || state == LLV_SHM_REQUEST) {
			if (state == LLV_SHM_HELLO)
				serve_hello(d);
			else
				serve_request(d);
			last_active = ktime_get_ns();
			seen_generation = READ_ONCE(d->ctl->generation);
			nap_us = NAP_MIN_US;
			continue;
		}
		if (state != d->seen && state != LLV_SHM_IDLE) {
			serve_bad_state(d, state);
			last_active = ktime_get_ns();
			seen_generation = READ_ONCE(d->ctl->generation);
			nap_us = NAP_MIN_US;
			continue;
		}
		if (generation != seen_generation) { /* the client moved (e.g. released) */
			seen_generation = generation;
			last_active = ktime_get_ns();
			if (state == LLV_SHM_IDLE) {
				d->session.keyed = false;
				d->seen = LLV_SHM_IDLE;
			}
		}
		quiet = ktime_get_ns() - last_active;
		free_if_idle(d, state, quiet);
		if (quiet < SPIN_NS) {
			cpu_relax(); /* pause */
			cond_resched();
		} else {
			nap(nap_us);
			nap_us = min(2 * nap_us, NAP_MAX_US);
		}
	}
	end_session_on_stop(d);
	smp_store_release(&d->ctl->server_ready, 0);
	return 0;
}

static void free_shm(struct llv_shm *d)
{
	if (d->rx) {
		memzero_explicit(d->rx, LLV_FRAME_MAX); /* addresses and pages in clear */
		free_pages_exact(d->rx, LLV_FRAME_MAX);
	}
	if (d->tx) {
		memzero_explicit(d->tx, LLV_FRAME_MAX);
		free_pages_exact(d->tx, LLV_FRAME_MAX);
	}
	llv_session_free(&d->session);
	kfree(d);
}

static int shm_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	resource_size_t start = pci_resource_start(pdev, IVSHMEM_SHARED_BAR);
	resource_size_t size = pci_resource_len(pdev, IVSHMEM_SHARED_BAR);
	struct llv_shm *d;
	u32 magic;
	int rc;

	BUILD_BUG_ON(LLV_FRAME_MAX > LLV_SHM_AREA_SIZE);
	BUILD_BUG_ON(sizeof(struct llv_shm_control) > LLV_SHM_CONTROL_SIZE);
	if (!(pci_resource_flags(pdev, IVSHMEM_SHARED_BAR) & IORESOURCE_MEM) ||
	    size < LLV_SHM_SIZE) {
		dev_err(&pdev->dev, "llview_agent: BAR %d is %pa bytes; the llview region needs %u\n",
			IVSHMEM_SHARED_BAR, &size, LLV_SHM_SIZE);
		return -ENODEV;
	}
	d = kzalloc(sizeof(*d), GFP_KERNEL);
	if (!d)
		return -ENOMEM;
	d->pdev = pdev;
	rc = llv_session_alloc(&d->session);
	if (rc)
		goto free;
	rc = -ENOMEM;
	d->rx = alloc_pages_exact(LLV_FRAME_MAX, GFP_KERNEL | __GFP_ZERO);
	d->tx = alloc_pages_exact(LLV_FRAME_MAX, GFP_KERNEL | __GFP_ZERO);
	if (!d->rx || !d->tx)
		goto free;
	rc = pci_enable_device_mem(pdev);
	if (rc)
		goto free;
	rc = pci_request_region(pdev, IVSHMEM_SHARED_BAR, "llview_agent");
	if (rc)
		goto disable;
	/* The BAR is host RAM (a memory-backend-file), so cacheable access is right. */
	d->base = memremap(start, LLV_SHM_SIZE, MEMREMAP_WB);
	if (!d->base) {
		rc = -ENOMEM;
		goto release;
	}
	d->ctl = d->base;
	magic = READ_ONCE(d->ctl->magic);
	if (magic && magic != LLV_SHM_MAGIC) {
		dev_warn(&pdev->dev, "llview_agent: ivshmem region holds something else "
			 "(magic %#x); left alone\n", magic);
		rc = -EBUSY;
		goto unmap;
	}
	/* A fresh start, as the host agent makes one: any earlier session is over. */
	smp_store_release(&d->ctl->server_ready, 0);
	memset((u8 *)d->ctl + sizeof(d->ctl->magic), 0,
	       LLV_SHM_CONTROL_SIZE - sizeof(d->ctl->magic));
	WRITE_ONCE(d->ctl->magic, LLV_SHM_MAGIC);
	WRITE_ONCE(d->ctl->version, LLV_SHM_VERSION);
	smp_store_release(&d->ctl->server_ready, 1);
	d->thread = kthread_run(shm_serve, d, "llview_shm");
	if (IS_ERR(d->thread)) {
		rc = PTR_ERR(d->thread);
		smp_store_release(&d->ctl->server_ready, 0);
		goto unmap;
	}
	pci_set_drvdata(pdev, d);
	dev_info(&pdev->dev, "llview_agent: serving the ivshmem region (%u KiB)\n",
		 LLV_SHM_SIZE >> 10);
	return 0;

unmap:
	memunmap(d->base);
release:
	pci_release_region(pdev, IVSHMEM_SHARED_BAR);
disable:
	pci_disable_device(pdev);
free:
	free_shm(d);
	return rc;
}

static void shm_remove(struct pci_dev *pdev)
{
	struct llv_shm *d = pci_get_drvdata(pdev);

	kthread_stop(d->thread); /* it ends the session and clears server_ready */
	memunmap(d->base);
	pci_release_region(pdev, IVSHMEM_SHARED_BAR);
	pci_disable_device(pdev);
	free_shm(d);
}

static const struct pci_device_id shm_ids[] = {
	{ PCI_DEVICE(IVSHMEM_VENDOR, IVSHMEM_DEVICE) },
	{ }
};

static struct pci_driver shm_driver = {
	.name = "llview_shm",
	.id_table = shm_ids,
	.probe = shm_probe,
	.remove = shm_remove,
};

int llv_shm_register(unsigned int idle_seconds)
{
	idle_ns = (u64)idle_seconds * NSEC_PER_SEC;
	return pci_register_driver(&shm_driver);
}

void llv_shm_unregister(void)
{
	pci_unregister_driver(&shm_driver);
}

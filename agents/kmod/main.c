// SPDX-License-Identifier: GPL-2.0
/*
 * main.c - the llview in-kernel agent (llview_agent.ko): module load and
 * unload, the write-once key device /dev/llview-key, and the kernel thread
 * that listens on TCP 0.0.0.0:<port> and serves one IDS connection at a time.
 * When the guest has an ivshmem device, shm.c serves it as well, at the same
 * time, with its own thread and session.
 *
 * The key reaches the module only through the device (mode 0200, exactly 32
 * bytes, once): never a module parameter, /proc, /sys or the kernel log.
 * rmmod wakes the thread with socket shutdowns, so a connected IDS gets a
 * sealed error reply and the guest keeps running.
 */
#include <linux/capability.h>
#include <linux/delay.h>
#include <linux/fs.h>
#include <linux/gfp.h>
#include <linux/in.h>
#include <linux/kthread.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/net.h>
#include <linux/uaccess.h>
#include <net/net_namespace.h>
#include <net/sock.h>

#include "agent.h"

static ushort port = 7070;
module_param(port, ushort, 0444);
MODULE_PARM_DESC(port, "TCP port the agent listens on (all guest interfaces)");
static uint idle_timeout = 300;
module_param(idle_timeout, uint, 0444);
MODULE_PARM_DESC(idle_timeout, "seconds an idle IDS keeps the (single) connection slot or "
		 "shared-memory region (0: for ever)");

static struct socket *listen_sock;
static struct task_struct *server;
static bool stopping;
/* The connection being served, so unload can wake the thread blocked on it. */
static DEFINE_MUTEX(conn_lock);
static struct socket *active_sock;
static u8 *rx_buf, *tx_buf;
static struct llv_session tcp_session;

static ssize_t key_write(struct file *file, const char __user *buf, size_t len, loff_t *pos)
{
	u8 key[LLV_KEY_LEN];
	int rc;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (len != LLV_KEY_LEN)
		return -EINVAL;
	if (copy_from_user(key, buf, LLV_KEY_LEN)) {
		memzero_explicit(key, sizeof(key));
		return -EFAULT;
	}
	rc = llv_set_psk(key);
	memzero_explicit(key, sizeof(key));
	if (rc)
		return rc;
	pr_info("llview_agent: key installed\n");
	return len;
}

static const struct file_operations key_fops = {
	.owner = THIS_MODULE,
	.write = key_write,
	.llseek = noop_llseek,
};

static struct miscdevice key_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "llview-key",
	.fops = &key_fops,
	.mode = 0200,
};

static int serve(void *unused)
{
	struct llv_conn conn = { .session = &tcp_session, .rx = rx_buf, .tx = tx_buf };

	while (!READ_ONCE(stopping)) {
		struct socket *sock;
		int rc = kernel_accept(listen_sock, &sock, 0);

		if (rc) {
			if (!READ_ONCE(stopping)) {
				pr_warn_ratelimited("llview_agent: accept failed (%d)\n", rc);
				msleep(100);
			}
			continue;
		}
		mutex_lock(&conn_lock);
		active_sock = READ_ONCE(stopping) ? NULL : sock;
		mutex_unlock(&conn_lock);
		if (active_sock && llv_have_psk()) {
			conn.sock = sock;
			llv_serve_connection(&conn, &stopping,
					     idle_timeout ? (long)idle_timeout * HZ : MAX_SCHEDULE_TIMEOUT);
		} else if (active_sock) {
			pr_info_ratelimited("llview_agent: no key installed yet; connection closed\n");
		}
		mutex_lock(&conn_lock);
		active_sock = NULL;
		mutex_unlock(&conn_lock);
		kernel_sock_shutdown(sock, SHUT_RDWR);
		sock_release(sock);
	}
	/* Exit only through kthread_stop, so the task cannot vanish under it. */
	for (;;) {
		set_current_state(TASK_INTERRUPTIBLE);
		if (kthread_should_stop())
			break;
		schedule();
	}
	__set_current_state(TASK_RUNNING);
	return 0;
}

static int __init agent_init(void)
{
	struct sockaddr_in addr = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_ANY),
	};
	int rc;

	rc = llv_symbols_init();
	if (rc)
		return rc;
	rc = llv_crypto_init();
	if (rc)
		return rc;
	rc = llv_session_alloc(&tcp_session);
	if (rc)
		goto free_crypto;
	rc = -ENOMEM;
	rx_buf = alloc_pages_exact(LLV_FRAME_MAX, GFP_KERNEL | __GFP_ZERO);
	tx_buf = alloc_pages_exact(LLV_FRAME_MAX, GFP_KERNEL | __GFP_ZERO);
	if (!rx_buf || !tx_buf)
		goto free_buffers;
	rc = sock_create_kern(&init_net, AF_INET, SOCK_STREAM, IPPROTO_TCP, &listen_sock);
	if (rc)
		goto free_buffers;
	sock_set_reuseaddr(listen_sock->sk);
	rc = kernel_bind(listen_sock, (struct sockaddr *)&addr, sizeof(addr));
	if (!rc)
		rc = kernel_listen(listen_sock, 1);
	if (rc) {
		pr_err("llview_agent: cannot listen on port %u (%d)\n", port, rc);
		goto release_socket;
	}
	rc = misc_register(&key_dev);
	if (rc)
		goto release_socket;
	server = kthread_run(serve, NULL, "llview_agent");
	if (IS_ERR(server)) {
		rc = PTR_ERR(server);
		goto deregister;
	}
	rc = llv_shm_register(idle_timeout);
	if (rc)
		goto stop_server;
	pr_info("llview_agent: listening on 0.0.0.0:%u; write the key to /dev/%s\n", port,
		key_dev.name);
	return 0;

stop_server:
	WRITE_ONCE(stopping, true);
	kernel_sock_shutdown(listen_sock, SHUT_RDWR);
	kthread_stop(server);
deregister:
	misc_deregister(&key_dev);
release_socket:
	sock_release(listen_sock);
free_buffers:
	if (rx_buf)
		free_pages_exact(rx_buf, LLV_FRAME_MAX);
	if (tx_buf)
		free_pages_exact(tx_buf, LLV_FRAME_MAX);
	llv_session_free(&tcp_session);
free_crypto:
	llv_crypto_exit();
	return rc;
}

static void __exit agent_exit(void)
{
	misc_deregister(&key_dev);
	WRITE_ONCE(stopping, true);
	/* Shutdown wakes a thread blocked in accept (listener) or recv (client);
	 * only the read side of the client, so it can still send its error reply. */
	kernel_sock_shutdown(listen_sock, SHUT_RDWR);
	mutex_lock(&conn_lock);
	if (active_sock)
		kernel_sock_shutdown(active_sock, SHUT_RD);
	mutex_unlock(&conn_lock);
	kthread_stop(server);
	sock_release(listen_sock);
	/* Stops every shared-memory thread, each ending its session with an error. */
	llv_shm_unregister();
	llv_session_free(&tcp_session);
	llv_crypto_exit(); /* wipes the key */
	memzero_explicit(rx_buf, LLV_FRAME_MAX); /* pages and addresses served in clear */
	memzero_explicit(tx_buf, LLV_FRAME_MAX);
	free_pages_exact(rx_buf, LLV_FRAME_MAX);
	free_pages_exact(tx_buf, LLV_FRAME_MAX);
	pr_info("llview_agent: unloaded, key wiped\n");
}

module_init(agent_init);
module_exit(agent_exit);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("llview");
MODULE_DESCRIPTION("llview in-kernel agent: serves kernel memory to an IDS over AES-256-GCM "
		   "TCP and ivshmem shared memory");
MODULE_SOFTDEP("pre: gcm ctr ghash-generic");

/*
 * The operator's kit, end to end on the real server: listening sockets
 * passed by systemd (socket activation), readiness told to systemd
 * (Type=notify), and the config file reread on SIGHUP (the metrics
 * endpoint: check_metrics).  systemd itself is not needed: the tests
 * speak its side of each protocol.
 */
#define _GNU_SOURCE /* O_TMPFILE, prctl */
#include "config.h"

#include <sys/un.h>

#include "chat_test.h"
#include "check_run.h"

/* The service manager's end of NOTIFY_SOCKET: a datagram socket at path. */
static int
notify_socket(char *path, size_t len)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(path, len, "/tmp/chat-notify-%d.sock", (int)getpid());
	unlink(path);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	return fd;
}

/* Wait for a datagram containing want; false on timeout.  Others are
 * skipped (STATUS= lines, say). */
static bool
notified(int fd, const char *want, long ms)
{
	long end = ms_now() + ms;
	char buf[512];

	while (ms_now() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, (int)(end - ms_now())) <= 0)
			continue;
		if ((n = recv(fd, buf, sizeof(buf) - 1, 0)) <= 0)
			continue;
		buf[n] = '\0';
		if (strstr(buf, want) != NULL)
			return true;
	}
	return false;
}

/* Two clients of a server on port chat through it. */
static void
expect_chat(int port)
{
	struct client a, b;
	char line[512];

	client_open(&a, port, 0);
	client_open(&b, port, 0);
	/* b's join (not a count: the clients of a call before may still be
	 * on their way out). */
	ck_assert(client_wait_for(&a, " joined (", WAIT_MS));
	client_skip_greeting(&b);
	client_say(&a, "hello through a passed socket\n");
	ck_assert_msg(client_chat_line(&b, line, sizeof(line), WAIT_MS) == 1, "nothing came");
	ck_assert_str_eq(chat_text(line), "hello through a passed socket");
	client_close(&a);
	client_close(&b);
}

/* A socket systemd passed is the one served, in place of --port; systemd
 * hears READY=1 once clients can come, RELOADING=1 and READY=1 around a
 * SIGHUP, and STOPPING=1 at the end. */
START_TEST(test_socket_activation_and_readiness)
{
	struct server_proc sp;
	char path[108];
	int port, lfd = listen_loopback(&port), nfd = notify_socket(path, sizeof(path));
	const char *log, *p;
	int listening = 0;

	server_pass_fds[0] = lfd;
	server_npass = 1;
	server_pass_names = "chat";
	server_notify = path;
	server_start(&sp, NULL);
	ck_assert_int_eq(sp.port, port);
	ck_assert_msg(notified(nfd, "READY=1", WAIT_MS), "no READY=1: %s", server_log(&sp));
	log = server_log(&sp);
	ck_assert_msg(strstr(log, "1 listening socket from systemd") != NULL, "%s", log);
	/* --port 0 was given too: it must not have been bound as well. */
	for (p = log; (p = strstr(p, "listening on ")) != NULL; p++)
		listening++;
	ck_assert_msg(listening == 1, "%d listeners: %s", listening, log);
	expect_chat(port);

	kill(sp.pid, SIGHUP);
	ck_assert(notified(nfd, "RELOADING=1", WAIT_MS));
	ck_assert(notified(nfd, "READY=1", WAIT_MS));
	expect_chat(port); /* still served */
	kill(sp.pid, SIGTERM);
	ck_assert(notified(nfd, "STOPPING=1", WAIT_MS));
	ck_assert_int_eq(server_wait(&sp, WAIT_MS), 0);
	close(lfd);
	close(nfd);
	unlink(path);
}
END_TEST

/* Sockets meant for another process (a LISTEN_PID not ours, as when a
 * wrapper forgot to clear the variables) are not taken: the server binds
 * its own --port. */
START_TEST(test_sockets_for_another_process_are_left_alone)
{
	struct server_proc sp;
	int port, lfd = listen_loopback(&port);

	server_pass_fds[0] = lfd;
	server_npass = 1;
	server_pass_pid = 1; /* init's, never the server's */
	server_start(&sp, NULL);
	ck_assert_int_ne(sp.port, port);
	ck_assert_ptr_null(strstr(server_log(&sp), "from systemd"));
	expect_chat(sp.port);
	server_stop_ok(&sp);
	close(lfd);
}
END_TEST

/* What systemd may pass by mistake is refused at start, by name. */
START_TEST(test_bad_passed_sockets_are_refused)
{
	char out[8192];
	int port, lfd = listen_loopback(&port);
	int unlistening = socket(AF_INET, SOCK_STREAM, 0);
	int dgram = socket(AF_INET, SOCK_DGRAM, 0);
	const char *const plain[] = { "--port", "0", NULL };
	const char *const no_plain[] = { "--no-plain", "--tls-port", "0", "--tls-cert", "x.pem",
		                         "--tls-key", "x.key", NULL };

	/* A stream socket that does not listen (Accept=yes passes those). */
	server_pass_fds[0] = unlistening;
	server_npass = 1;
	ck_assert_int_eq(server_run_args(out, sizeof(out), plain), 1);
	ck_assert_msg(strstr(out, "chat-server: socket activation: descriptor 3 passed by "
	                          "systemd is not listening") != NULL,
	              "%s", out);
	/* A datagram socket. */
	server_pass_fds[0] = dgram;
	ck_assert_int_eq(server_run_args(out, sizeof(out), plain), 1);
	ck_assert_msg(strstr(out, "is not a stream socket") != NULL, "%s", out);
	/* A plain socket with --no-plain. */
	server_pass_fds[0] = lfd;
	ck_assert_int_eq(server_run_args(out, sizeof(out), no_plain), 2);
	ck_assert_msg(strstr(out, "--no-plain, but systemd passed a plain listening socket") !=
	                      NULL,
	              "%s", out);
	/* A TLS socket and no certificate. */
	server_pass_names = "tls";
	ck_assert_int_eq(server_run_args(out, sizeof(out), plain), 2);
#ifdef HAVE_OPENSSL
	ck_assert_msg(strstr(out, "systemd passed a TLS socket (FileDescriptorName=tls): it "
	                          "needs --tls-cert FILE and --tls-key FILE") != NULL,
	              "%s", out);
#else
	ck_assert_msg(strstr(out, "built without OpenSSL") != NULL, "%s", out);
#endif
	close(lfd);
	close(unlistening);
	close(dgram);
}
END_TEST

/* --- SIGHUP rereads the config file ----------------------------------------------- */

/* SIGHUP applies what can change at once (log level, MOTD) and names what
 * needs a restart; a file that no longer parses changes nothing. */
START_TEST(test_sighup_rereads_the_config_file)
{
	struct server_proc sp;
	struct client a;
	char dir[] = "/tmp/chat-reload-XXXXXX", conf[64], m1[64], m2[64], text[256];

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(conf, sizeof(conf), "%s/chat.conf", dir);
	snprintf(m1, sizeof(m1), "%s/motd1", dir);
	snprintf(m2, sizeof(m2), "%s/motd2", dir);
	write_file(m1, "first words\n");
	write_file(m2, "second words\n");
	snprintf(text, sizeof(text), "workers 2\nmotd %s\nlog-level info\n", m1);
	write_file(conf, text);
	server_start(&sp, "-c", conf, NULL);
	client_open(&a, sp.port, 0);
	ck_assert(client_wait_for(&a, "* first words", WAIT_MS));
	client_close(&a);

	snprintf(text, sizeof(text), "workers 3\nmotd %s\nlog-level debug\n", m2);
	write_file(conf, text);
	kill(sp.pid, SIGHUP);
	ck_assert_msg(server_log_wait(&sp, "SIGHUP: log-level debug (was info)", WAIT_MS), "%s",
	              server_log_tail(&sp));
	snprintf(text, sizeof(text), "SIGHUP: motd %s (was %s)", m2, m1);
	ck_assert_msg(server_log_wait(&sp, text, WAIT_MS), "%s", server_log_tail(&sp));
	ck_assert(server_log_wait(&sp,
	                          "SIGHUP: workers changed from 2 to 3: needs a restart, until "
	                          "then 2 stays",
	                          WAIT_MS));
	client_open(&a, sp.port, 0);
	ck_assert(client_wait_for(&a, "* second words", WAIT_MS));
	client_close(&a);
	/* debug is on now: a departure is logged at debug level. */
	ck_assert(server_log_wait(&sp, " debug ", WAIT_MS));

	write_file(conf, "wokers 3\n");
	kill(sp.pid, SIGHUP);
	snprintf(text, sizeof(text),
	         "SIGHUP: %s:1: unknown key 'wokers'; the settings stay as they were", conf);
	ck_assert_msg(server_log_wait(&sp, text, WAIT_MS), "%s", server_log_tail(&sp));
	client_open(&a, sp.port, 0);
	ck_assert(client_wait_for(&a, "* second words", WAIT_MS));
	client_close(&a);
	server_stop_ok(&sp);
	unlink(conf);
	unlink(m1);
	unlink(m2);
	rmdir(dir);
}
END_TEST

static Suite *
ops_suite(void)
{
	Suite *s = suite_create("ops");
	TCase *tc = tcase_create("ops");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_socket_activation_and_readiness);
	tcase_add_test(tc, test_bad_passed_sockets_are_refused);
	tcase_add_test(tc, test_sockets_for_another_process_are_left_alone);
	tcase_add_test(tc, test_sighup_rereads_the_config_file);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(ops_suite());
}

/*
 * The operator's kit, end to end on the real server: listening sockets
 * passed by systemd (socket activation), readiness told to systemd
 * (Type=notify), the config file reread on SIGHUP, and the Prometheus
 * metrics endpoint.  systemd itself is not needed: the tests speak its
 * side of each protocol.
 */
#define _GNU_SOURCE /* O_TMPFILE, prctl */
#include "config.h"

#include <sys/un.h>

#include "chat_test.h"
#include "check_run.h"

/* A listening TCP socket on 127.0.0.1, port from the kernel. */
static int
listener(int *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

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
	ck_assert(client_wait_for(&a, "joined (2 online)", WAIT_MS));
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
	int port, lfd = listener(&port), nfd = notify_socket(path, sizeof(path));
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

/* What systemd may pass by mistake is refused at start, by name. */
START_TEST(test_bad_passed_sockets_are_refused)
{
	char out[8192];
	int port, lfd = listener(&port);
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

/* --- metrics ------------------------------------------------------------------- */

/* The metrics port from the log ("metrics on http://127.0.0.1:P/metrics"). */
static int
metrics_port(const struct server_proc *sp)
{
	const char *p = strstr(server_log(sp), "metrics on http://127.0.0.1:");

	ck_assert_msg(p != NULL, "no metrics line: %s", server_log(sp));
	return atoi(p + strlen("metrics on http://127.0.0.1:"));
}

static bool
have_curl(void)
{
	return system("command -v curl >/dev/null 2>&1") == 0;
}

/* curl ARGS http://127.0.0.1:port/path: its output (headers with -i) in a
 * static buffer. */
static const char *
curl(int port, const char *args, const char *path)
{
	static char out[65536];
	char cmd[512];
	FILE *fp;
	size_t n;

	snprintf(cmd, sizeof(cmd), "curl -s --max-time 20 %s 'http://127.0.0.1:%d%s'", args, port,
	         path);
	ck_assert_ptr_nonnull(fp = popen(cmd, "r"));
	n = fread(out, 1, sizeof(out) - 1, fp);
	out[n] = '\0';
	pclose(fp);
	return out;
}

/* The value of the sample named exactly name (with its labels) in text. */
static double
sample(const char *text, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = text; (p = strstr(p, name)) != NULL; p += n)
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return atof(p + n + 1);
	ck_abort_msg("no sample %s in:\n%.3000s", name, text);
	return -1;
}

/* Counters and gauges follow the traffic; curl is the scraper. */
START_TEST(test_metrics_follow_the_traffic)
{
	struct server_proc sp;
	struct client a, b, c;
	const char *t;
	int mp;

	if (!have_curl()) {
		fprintf(stderr, "SKIP: curl is not installed (Debian: apt-get install curl)\n");
		return;
	}
	server_start(&sp, "--metrics", "127.0.0.1:0", "--history", "5", "--max-per-ip", "2",
	             NULL);
	mp = metrics_port(&sp);
	t = curl(mp, "", "/metrics");
	ck_assert_double_eq(sample(t, "chat_clients{listener=\"plain\"}"), 0);
	ck_assert_double_eq(sample(t, "chat_rooms"), 1);
	ck_assert_double_eq(sample(t, "chat_lines_received_total"), 0);
	ck_assert_msg(strstr(t, "# TYPE chat_lines_received_total counter\n") != NULL, "%s", t);
	ck_assert_ptr_null(strstr(t, "chat_cluster_up")); /* standalone */

	client_open(&a, sp.port, 0);
	client_open(&b, sp.port, 0);
	ck_assert(client_wait_for(&a, "joined (2 online)", WAIT_MS));
	client_skip_greeting(&b);
	client_open(&c, sp.port, 0); /* a third from 127.0.0.1: refused */
	ck_assert(client_drain_to_eof(&c, WAIT_MS));
	client_close(&c);
	client_say(&a, "one\ntwo\nthree\n");
	ck_assert(client_wait_for(&b, "three", WAIT_MS));
	client_say(&b, "/join #ops\n");
	ck_assert(client_wait_for(&b, "#ops", WAIT_MS));

	t = curl(mp, "", "/metrics");
	ck_assert_double_eq(sample(t, "chat_clients{listener=\"plain\"}"), 2);
	ck_assert_double_eq(sample(t, "chat_connections_accepted_total{listener=\"plain\"}"), 3);
	ck_assert_double_eq(
	        sample(t, "chat_connections_refused_total{reason=\"max_per_ip\"}"), 1);
	ck_assert_double_eq(sample(t, "chat_lines_received_total"), 4);
	ck_assert_double_eq(sample(t, "chat_received_bytes_total"), 14 + 11);
	ck_assert_double_ge(sample(t, "chat_lines_sent_total"), 3);
	ck_assert_double_gt(sample(t, "chat_sent_bytes_total"), 0);
	ck_assert_double_eq(sample(t, "chat_history_lines"), 3);
	ck_assert_double_eq(sample(t, "chat_rooms"), 2);
	ck_assert_double_ge(sample(t, "chat_pool_tasks_completed_total"), 1);
	ck_assert_double_eq(sample(t, "chat_pool_workers_max"), 2);
	client_close(&a);
	client_close(&b);
	server_stop_ok(&sp);
}
END_TEST

/* Only GET and HEAD of /metrics: the rest is 404 or 405, and what is not
 * HTTP is 400. */
START_TEST(test_metrics_speaks_http)
{
	struct server_proc sp;
	struct client h;
	char line[512];
	const char *t;
	int mp;

	if (!have_curl()) {
		fprintf(stderr, "SKIP: curl is not installed (Debian: apt-get install curl)\n");
		return;
	}
	server_start(&sp, "--metrics", "127.0.0.1:0", NULL);
	mp = metrics_port(&sp);
	t = curl(mp, "-o /dev/null -w '%{http_code} %{content_type}'", "/metrics");
	ck_assert_str_eq(t, "200 text/plain; version=0.0.4; charset=utf-8");
	ck_assert_str_eq(curl(mp, "-o /dev/null -w '%{http_code}'", "/"), "404");
	ck_assert_str_eq(curl(mp, "-o /dev/null -w '%{http_code}'", "/metricsx"), "404");
	t = curl(mp, "-i -X POST", "/metrics");
	ck_assert_msg(strncmp(t, "HTTP/1.1 405 ", 13) == 0 && strstr(t, "Allow: GET, HEAD\r\n"),
	              "%s", t);
	t = curl(mp, "-I", "/metrics"); /* HEAD: headers only */
	ck_assert_msg(strncmp(t, "HTTP/1.1 200 ", 13) == 0, "%s", t);
	ck_assert_ptr_null(strstr(t, "chat_clients"));
	/* Not HTTP at all. */
	client_open(&h, mp, 0);
	client_say(&h, "hello\r\n\r\n");
	ck_assert_int_eq(client_line(&h, line, sizeof(line), WAIT_MS), 1);
	ck_assert_str_eq(line, "HTTP/1.1 400 Bad Request");
	client_close(&h);
	server_stop_ok(&sp);
}
END_TEST

/* Scrapers that connect and say nothing take every slot: the chat goes on,
 * and once their time is up a scrape is served again. */
START_TEST(test_silent_scrapers_never_stop_the_chat)
{
	struct server_proc sp;
	struct client idle[12], a, b;
	char line[512];
	const char *t;
	int mp;

	if (!have_curl()) {
		fprintf(stderr, "SKIP: curl is not installed (Debian: apt-get install curl)\n");
		return;
	}
	server_start(&sp, "--metrics", "127.0.0.1:0", NULL);
	mp = metrics_port(&sp);
	for (int i = 0; i < 12; i++)
		client_open(&idle[i], mp, 0);
	client_open(&a, sp.port, 0);
	client_open(&b, sp.port, 0);
	ck_assert(client_wait_for(&a, "joined (2 online)", WAIT_MS));
	client_skip_greeting(&b);
	client_say(&a, "still here\n");
	ck_assert_int_eq(client_chat_line(&b, line, sizeof(line), WAIT_MS), 1);
	ck_assert_str_eq(chat_text(line), "still here");
	/* The slots free themselves (5 s each): curl gets its answer. */
	t = curl(mp, "", "/metrics");
	ck_assert_double_eq(sample(t, "chat_clients{listener=\"plain\"}"), 2);
	for (int i = 0; i < 12; i++)
		client_close(&idle[i]);
	client_close(&a);
	client_close(&b);
	server_stop_ok(&sp);
}
END_TEST

START_TEST(test_bad_metrics_addresses_are_refused)
{
	char out[8192];
	const char *const no_port[] = { "--metrics", "127.0.0.1", NULL };
	const char *const bad_port[] = { "--metrics", "127.0.0.1:99999", NULL };
	const char *const v6[] = { "--metrics", "::1:9100", NULL };
	const char *const chat_port[] = { "--port", "4999", "--metrics", ":4999", NULL };

	ck_assert_int_eq(server_run_args(out, sizeof(out), no_port), 2);
	ck_assert_msg(strstr(out, "chat-server: invalid --metrics '127.0.0.1': expected "
	                          "ADDR:PORT") != NULL,
	              "%s", out);
	ck_assert_int_eq(server_run_args(out, sizeof(out), bad_port), 2);
	ck_assert_msg(strstr(out, "port '99999': expected a number from 0 to 65535") != NULL,
	              "%s", out);
	ck_assert_int_eq(server_run_args(out, sizeof(out), v6), 2);
	ck_assert_msg(strstr(out, "an IPv6 address goes in brackets") != NULL, "%s", out);
	ck_assert_int_eq(server_run_args(out, sizeof(out), chat_port), 2);
	ck_assert_msg(strstr(out, "--metrics: port 4999 is a chat port") != NULL, "%s", out);
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
	tcase_add_test(tc, test_sighup_rereads_the_config_file);
	tcase_add_test(tc, test_metrics_follow_the_traffic);
	tcase_add_test(tc, test_metrics_speaks_http);
	tcase_add_test(tc, test_silent_scrapers_never_stop_the_chat);
	tcase_add_test(tc, test_bad_metrics_addresses_are_refused);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(ops_suite());
}

/*
 * chat-server --metrics, end to end: curl scrapes the real server, and the
 * counters must follow the traffic; HTTP is answered as HTTP; silent
 * scrapers never hold up the chat; bad addresses are refused.  Without
 * curl the program skips, saying so (CI installs it, and fails on a skip).
 */
#define _GNU_SOURCE /* O_TMPFILE, prctl */
#include "config.h"

#include "chat_test.h"
#include "check_run.h"

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

/* The value of sample name in text; the test fails if there is none. */
static double
sample(const char *text, const char *name)
{
	double v = metric_sample(text, name);

	ck_assert_msg(v >= 0, "no sample %s in:\n%.3000s", name, text);
	return v;
}

/* Counters and gauges follow the traffic; curl is the scraper. */
START_TEST(test_metrics_follow_the_traffic)
{
	struct server_proc sp;
	struct client a, b, c;
	const char *t;
	int mp;

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
metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");

	tcase_set_timeout(tc, 60);
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
	if (!have_curl()) {
		printf("SKIP: curl is not installed (Debian: apt-get install curl)\n");
		return 77;
	}
	return run_suite(metrics_suite());
}

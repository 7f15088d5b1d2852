/*
 * TLS end to end: the real chat-server with a TLS listener beside the plain
 * one, TLS clients made here with OpenSSL, certificates made at run time
 * with the openssl command.  Plain and TLS clients in one room; a burst to
 * a slow reader; certificate reload on SIGHUP; hostile and broken clients
 * on the TLS port (stalled handshakes, plain text, garbage, a crowd past
 * the handshake cap); bad certificates at start.  And the transport alone,
 * over a socketpair.
 *
 * Skipped (exit 77, with the reason) when the build has no OpenSSL or the
 * openssl command is missing; CI has both and fails on a skip.
 */
#define _GNU_SOURCE /* O_TMPFILE */
#include "config.h"

#include "chat_test.h"
#include "check_run.h"
#include "tls_cert.h"

#ifdef HAVE_OPENSSL
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "io.h"
#include "tls.h"

/* --- a TLS client for the tests (blocking) -------------------------------------------- */

static ssize_t
tls_read(void *tls, void *buf, size_t len)
{
	size_t got = 0;
	int rc = SSL_read_ex(tls, buf, len, &got);

	if (rc == 1)
		return (ssize_t)got;
	switch (SSL_get_error(tls, rc)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE: errno = EAGAIN; return -1;
	case SSL_ERROR_ZERO_RETURN: return 0;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (errno == 0)
			return 0;
		return -1;
	default:
		ERR_clear_error();
		errno = ECONNRESET;
		return -1;
	}
}

/* Blocking, over the non-blocking socket: waits in poll, and retries the
 * same call as OpenSSL requires. */
static ssize_t
tls_write(void *tls, const void *buf, size_t len)
{
	for (;;) {
		size_t put = 0;
		int rc = SSL_write_ex(tls, buf, len, &put), e;
		struct pollfd p = { .fd = SSL_get_fd(tls) };

		if (rc == 1)
			return (ssize_t)put;
		e = SSL_get_error(tls, rc);
		if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) {
			ERR_clear_error();
			errno = EPIPE;
			return -1;
		}
		p.events = e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
		poll(&p, 1, 1000);
	}
}

static void
tls_free(void *tls)
{
	SSL_CTX *ctx = SSL_get_SSL_CTX(tls);

	SSL_free(tls);
	SSL_CTX_free(ctx);
}

static const struct client_tls_ops tls_ops = { tls_read, tls_write, tls_free };

/* Handshake over c's connected socket, trusting ca (NULL: anything).
 * Returns 1, or 0 with OpenSSL's reason in why. */
static int
tls_attach(struct client *c, const char *ca, char *why, size_t len)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;

	ck_assert_ptr_nonnull(ctx);
	if (ca != NULL) {
		ck_assert_int_eq(SSL_CTX_load_verify_locations(ctx, ca, NULL), 1);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	ssl = SSL_new(ctx);
	ck_assert_ptr_nonnull(ssl);
	SSL_set_fd(ssl, c->fd);
	SSL_set_tlsext_host_name(ssl, "localhost");
	ERR_clear_error();
	if (SSL_connect(ssl) != 1) {
		unsigned long e = ERR_peek_last_error();

		snprintf(why, len, "%s", e ? ERR_reason_error_string(e) : "closed");
		ERR_clear_error();
		SSL_free(ssl);
		SSL_CTX_free(ctx);
		return 0;
	}
	/* Non-blocking from now on: a record that is not application data
	 * (a session ticket) must not leave a reader blocked in SSL_read
	 * past its deadline. */
	ck_assert_int_eq(fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK), 0);
	client_tls_ops = &tls_ops;
	c->tls = ssl;
	return 1;
}

/* A TLS client of port (rcvbuf > 0 sets SO_RCVBUF), trusting anything. */
static void
tls_open(struct client *c, int port, int rcvbuf)
{
	char why[200];

	client_open(c, port, rcvbuf);
	ck_assert_msg(tls_attach(c, NULL, why, sizeof(why)) == 1, "TLS handshake: %s", why);
}

/*
 * A TLS client of sp's TLS port that is a member: the client's handshake
 * ends before the server's (the server reads the client's last message
 * after the client is done), so wait for the server's word that it joined.
 */
static void
tls_joined(const struct server_proc *sp, struct client *c)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	char want[96];

	ck_assert_int_eq(getsockname(c->fd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(want, sizeof(want), "127.0.0.1:%d connected over TLS", ntohs(sa.sin_port));
	ck_assert_msg(server_log_wait(sp, want, WAIT_MS), "%s: not in the log", want);
}

static void
tls_member(const struct server_proc *sp, struct client *c, int port, int rcvbuf)
{
	tls_open(c, port, rcvbuf);
	tls_joined(sp, c);
}

/* The common name of the certificate c's server presented. */
static void
tls_peer_cn(struct client *c, char *cn, size_t len)
{
	X509 *x = SSL_get1_peer_certificate(c->tls);

	ck_assert_ptr_nonnull(x);
	cn[0] = '\0';
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, (int)len);
	X509_free(x);
}

/* --- the server ------------------------------------------------------------------------ */

struct tls_server {
	struct server_proc sp;
	int tls_port;
	char dir[64];
	char cert[128], key[128];
};

/* A server with a plain and a TLS listener (certificate "server", CN
 * localhost), and more arguments (up to 8, NULL-terminated). */
static void
tls_server_start(struct tls_server *ts, ...)
{
	const char *more[9] = { NULL };
	va_list ap;
	int n = 0;

	cert_dir(ts->dir, sizeof(ts->dir));
	cert_make(ts->dir, "server", "localhost", false);
	cert_path(ts->cert, sizeof(ts->cert), ts->dir, "server", "pem");
	cert_path(ts->key, sizeof(ts->key), ts->dir, "server", "key");
	va_start(ap, ts);
	while (n < 8 && (more[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	server_start(&ts->sp, "--tls-port", "0", "--tls-cert", ts->cert, "--tls-key", ts->key,
	             more[0], more[1], more[2], more[3], more[4], more[5], more[6], more[7], NULL);
	ts->tls_port = server_tls_port(&ts->sp);
}

static void
tls_server_stop_ok(struct tls_server *ts)
{
	server_stop_ok(&ts->sp);
	cert_dir_remove(ts->dir);
}

/* Expect a chat line whose text is want within WAIT_MS. */
static void
expect_text(struct client *c, const char *want)
{
	char line[8192];
	int rc;

	while ((rc = client_chat_line(c, line, sizeof(line), WAIT_MS)) == 1)
		if (chat_text(line) != NULL && strcmp(chat_text(line), want) == 0)
			return;
	ck_abort_msg("'%s' did not arrive (rc %d)", want, rc);
}

/* t, a TLS client of port, is a member: it hears of the next join
 * there (a client is not told of its own). */
static void
expect_member(struct client *t, int port)
{
	struct client w;

	tls_open(&w, port, 0);
	ck_assert(client_wait_for(t, "joined (2 online)", WAIT_MS));
	client_close(&w);
}

/* True if the peer closes c within ms (whatever it sends first). */
static bool
closed_within(struct client *c, long ms)
{
	return client_drain_to_eof(c, ms);
}

/* --- tests ---------------------------------------------------------------------------- */

START_TEST(test_tls_and_plain_clients_chat_in_one_room)
{
	struct tls_server ts;
	struct client p, t;
	char line[512], want[128];
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);

	tls_server_start(&ts, NULL);
	client_open(&p, ts.sp.port, 0);
	tls_open(&t, ts.tls_port, 0);

	/* The TLS client's join and lines look like a plain client's. */
	getsockname(t.fd, (struct sockaddr *)&sa, &sl);
	snprintf(want, sizeof(want), "* 127.0.0.1:%d joined (2 online)", ntohs(sa.sin_port));
	ck_assert(client_wait_for(&p, want, WAIT_MS));
	client_say(&t, "hello from tls\n");
	ck_assert_int_eq(client_chat_line(&p, line, sizeof(line), WAIT_MS), 1);
	snprintf(want, sizeof(want), "127.0.0.1:%d | ", ntohs(sa.sin_port));
	ck_assert_msg(strncmp(line, want, strlen(want)) == 0, "line: %s", line);
	ck_assert_str_eq(chat_text(line), "hello from tls");

	client_say(&p, "hi from plain\n");
	expect_text(&t, "hi from plain");
	ck_assert_ptr_nonnull(strstr(server_log(&ts.sp), "connected over TLSv1."));

	client_close(&t);
	ck_assert(client_wait_for(&p, "left (1 online)", WAIT_MS));
	client_close(&p);
	tls_server_stop_ok(&ts);
}
END_TEST

/*
 * 1 MiB from one TLS client to another that reads slowly through a small
 * socket buffer: the server's writes keep finding the socket full (OpenSSL's
 * write retries) and every line arrives once, whole, in order.
 */
START_TEST(test_a_megabyte_burst_reaches_a_slow_tls_reader_whole_and_in_order)
{
	enum { LINES = 8192, LEN = 128 };
	struct tls_server ts;
	struct client snd, rcv;
	static char burst[LINES * LEN];
	char line[512];
	int next = 0;

	tls_server_start(&ts, "--flood-rate", "0", "--max-sendq", "8388608", NULL);
	tls_open(&rcv, ts.tls_port, 4096);
	tls_open(&snd, ts.tls_port, 0);
	ck_assert(client_wait_for(&rcv, "joined (2 online)", WAIT_MS));
	for (int i = 0; i < LINES; i++) {
		char *l = burst + (size_t)i * LEN;

		snprintf(l, LEN, "%06d ", i);
		memset(l + 7, 'a' + i % 26, LEN - 8);
		l[LEN - 1] = '\n';
	}
	client_send(&snd, burst, sizeof(burst));
	pause_ms(300); /* the server's queue for rcv fills while it sleeps */
	while (next < LINES) {
		int n;

		ck_assert_msg(client_chat_line(&rcv, line, sizeof(line), WAIT_MS) == 1,
		              "line %d did not arrive", next);
		ck_assert_msg(chat_text(line) != NULL && sscanf(chat_text(line), "%d", &n) == 1,
		              "not a burst line: %s", line);
		ck_assert_int_eq(n, next);
		ck_assert_int_eq(strlen(chat_text(line)), LEN - 1);
		if (++next % 512 == 0)
			pause_ms(5); /* slow */
	}
	client_close(&snd);
	client_close(&rcv);
	tls_server_stop_ok(&ts);
}
END_TEST

/* Copy file from to file to (a renewal on disk). */
static void
copy_file(const char *from, const char *to)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_sighup_reloads_the_certificate_and_keeps_sessions)
{
	struct tls_server ts;
	struct client a, b, c;
	char cn[64], path[128];

	tls_server_start(&ts, NULL);
	tls_member(&ts.sp, &a, ts.tls_port, 0);
	tls_peer_cn(&a, cn, sizeof(cn));
	ck_assert_str_eq(cn, "localhost");
	ck_assert_ptr_nonnull(strstr(server_log(&ts.sp), "subject CN=localhost, expires "));

	/* A new pair on disk, and SIGHUP: new handshakes see it. */
	cert_make(ts.dir, "renewed", "renewed.example", false);
	copy_file(cert_path(path, sizeof(path), ts.dir, "renewed", "pem"), ts.cert);
	copy_file(cert_path(path, sizeof(path), ts.dir, "renewed", "key"), ts.key);
	kill(ts.sp.pid, SIGHUP);
	ck_assert(server_log_wait(&ts.sp, "SIGHUP: TLS certificate reloaded", WAIT_MS));
	ck_assert_ptr_nonnull(strstr(server_log(&ts.sp), "subject CN=renewed.example"));
	tls_member(&ts.sp, &b, ts.tls_port, 0);
	tls_peer_cn(&b, cn, sizeof(cn));
	ck_assert_str_eq(cn, "renewed.example");

	/* The session begun before goes on, both ways. */
	client_say(&a, "old session still here\n");
	expect_text(&b, "old session still here");
	client_say(&b, "new session here\n");
	expect_text(&a, "new session here");

	/* A broken file: the log says why, and the pair loaded before stays. */
	{
		FILE *fp = fopen(ts.cert, "w");

		ck_assert_ptr_nonnull(fp);
		fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n", fp);
		fclose(fp);
	}
	kill(ts.sp.pid, SIGHUP);
	ck_assert(server_log_wait(&ts.sp, "keeping the certificate loaded before", WAIT_MS));
	ck_assert(server_log_wait(&ts.sp, ts.cert, WAIT_MS));
	tls_member(&ts.sp, &c, ts.tls_port, 0);
	tls_peer_cn(&c, cn, sizeof(cn));
	ck_assert_str_eq(cn, "renewed.example");
	client_say(&a, "still talking\n");
	expect_text(&c, "still talking");

	client_close(&a);
	client_close(&b);
	client_close(&c);
	tls_server_stop_ok(&ts);
}
END_TEST

/* The -c file names other certificate files: SIGHUP takes the new paths,
 * says so, and new handshakes present the new certificate; a change that
 * needs a restart (the TLS port) is named and left alone. */
START_TEST(test_sighup_takes_new_certificate_paths_from_the_config_file)
{
	struct server_proc sp;
	struct client a, b;
	char dir[64], conf[128], text[1024], cert[128], key[128], cert2[128], key2[128];
	char cn[64], want[400];

	cert_dir(dir, sizeof(dir));
	cert_make(dir, "one", "one.example", false);
	cert_make(dir, "two", "two.example", false);
	cert_path(cert, sizeof(cert), dir, "one", "pem");
	cert_path(key, sizeof(key), dir, "one", "key");
	cert_path(cert2, sizeof(cert2), dir, "two", "pem");
	cert_path(key2, sizeof(key2), dir, "two", "key");
	snprintf(conf, sizeof(conf), "%s/chat.conf", dir);
	snprintf(text, sizeof(text), "tls-port 0\ntls-cert %s\ntls-key %s\n", cert, key);
	write_file(conf, text);
	server_start(&sp, "-c", conf, NULL);
	tls_open(&a, server_tls_port(&sp), 0);
	tls_peer_cn(&a, cn, sizeof(cn));
	ck_assert_str_eq(cn, "one.example");

	snprintf(text, sizeof(text), "tls-port 4999\ntls-cert %s\ntls-key %s\n", cert2, key2);
	write_file(conf, text);
	kill(sp.pid, SIGHUP);
	snprintf(want, sizeof(want), "SIGHUP: tls-cert %s (was %s)", cert2, cert);
	ck_assert_msg(server_log_wait(&sp, want, WAIT_MS), "%s", server_log_tail(&sp));
	snprintf(want, sizeof(want), "SIGHUP: tls-key %s (was %s)", key2, key);
	ck_assert_msg(server_log_wait(&sp, want, WAIT_MS), "%s", server_log_tail(&sp));
	ck_assert(server_log_wait(&sp, "SIGHUP: tls-port changed from 0 to 4999: needs a restart",
	                          WAIT_MS));
	ck_assert(server_log_wait(&sp, "SIGHUP: TLS certificate reloaded", WAIT_MS));
	tls_open(&b, server_tls_port(&sp), 0);
	tls_peer_cn(&b, cn, sizeof(cn));
	ck_assert_str_eq(cn, "two.example");
	client_close(&a);
	client_close(&b);
	server_stop_ok(&sp);
	cert_dir_remove(dir);
}
END_TEST

/*
 * Two clients that stall their handshake (one says nothing, one stops in
 * the middle of its ClientHello) on a server with one worker: the others
 * chat meanwhile, and the stalled ones are closed at the deadline, not
 * before.
 */
START_TEST(test_a_stalled_handshake_is_closed_at_its_deadline_while_others_chat)
{
	static const unsigned char half_hello[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01 };
	struct tls_server ts;
	struct client mute, half, a, b;
	long t0, waited;

	tls_server_start(&ts, "--workers", "1", "--tls-handshake-timeout", "2", NULL);
	client_open(&mute, ts.tls_port, 0);
	client_open(&half, ts.tls_port, 0);
	client_send(&half, (const char *)half_hello, sizeof(half_hello));
	t0 = ms_now();

	tls_member(&ts.sp, &a, ts.tls_port, 0);
	client_open(&b, ts.sp.port, 0);
	ck_assert(client_wait_for(&a, "joined (2 online)", WAIT_MS));
	client_say(&a, "while they stall\n");
	expect_text(&b, "while they stall");
	client_say(&b, "and back\n");
	expect_text(&a, "and back");
	ck_assert_msg(ms_now() - t0 < 1800, "chat took %ld ms: the stalled held it up",
	              ms_now() - t0);

	ck_assert(closed_within(&mute, WAIT_MS));
	waited = ms_now() - t0;
	ck_assert_msg(waited >= 1900, "closed after %ld ms, before its deadline", waited);
	ck_assert(closed_within(&half, WAIT_MS));
	ck_assert(server_log_wait(&ts.sp, "TLS handshake not done in 2 s", WAIT_MS));

	client_say(&a, "after\n");
	expect_text(&b, "after");
	client_close(&mute);
	client_close(&half);
	client_close(&a);
	client_close(&b);
	tls_server_stop_ok(&ts);
}
END_TEST

START_TEST(test_plain_text_and_garbage_on_the_tls_port_are_closed_at_once)
{
	static const unsigned char junk[] = { 0x16, 0xfe, 0x77, 0x00, 0x10, 0xde, 0xad,
		                              0xbe, 0xef, 0x00, 0x01, 0x02, 0x03, 0x04,
		                              0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b };
	struct tls_server ts;
	struct client typist, noise, t;
	char line[512];
	long t0;

	/* The deadline is far: closing must not wait for it. */
	tls_server_start(&ts, "--tls-handshake-timeout", "60", NULL);
	client_open(&typist, ts.tls_port, 0);
	t0 = ms_now();
	client_say(&typist, "hello, is this the chat?\n");
	ck_assert_int_eq(client_line(&typist, line, sizeof(line), WAIT_MS), 1);
	ck_assert_msg(strstr(line, "this port speaks TLS") != NULL, "told: %s", line);
	ck_assert(closed_within(&typist, WAIT_MS));

	client_open(&noise, ts.tls_port, 0);
	client_send(&noise, (const char *)junk, sizeof(junk));
	ck_assert(closed_within(&noise, WAIT_MS));
	ck_assert_msg(ms_now() - t0 < 10000, "took %ld ms", ms_now() - t0);
	ck_assert(server_log_wait(&ts.sp, "not a TLS client", WAIT_MS));

	/* Nobody heard of them; a real TLS client is served. */
	tls_member(&ts.sp, &t, ts.tls_port, 0);
	expect_member(&t, ts.tls_port);
	client_close(&typist);
	client_close(&noise);
	client_close(&t);
	tls_server_stop_ok(&ts);
}
END_TEST

/* A TLS client of port once the server has room for it (it sees closed
 * connections give their slot back within moments). */
static bool
eventually_served(struct client *t, int port, char *why, size_t len)
{
	long end = ms_now() + WAIT_MS;

	do {
		client_open(t, port, 0);
		if (tls_attach(t, NULL, why, len) == 1)
			return true;
		client_close(t);
		pause_ms(50);
	} while (ms_now() < end);
	return false;
}

START_TEST(test_handshakes_in_progress_are_capped)
{
	struct tls_server ts;
	struct client s1, s2, over, t;
	char why[200];

	tls_server_start(&ts, "--tls-max-handshakes", "2", NULL);
	client_open(&s1, ts.tls_port, 0);
	client_open(&s2, ts.tls_port, 0);
	client_open(&over, ts.tls_port, 0); /* accepted after them (FIFO) */
	ck_assert(closed_within(&over, 5000));
	ck_assert(server_log_wait(&ts.sp, "2 TLS handshakes in progress", WAIT_MS));

	/* Once one gives up, a slot is free again. */
	client_close(&s1);
	client_close(&s2);
	ck_assert(eventually_served(&t, ts.tls_port, why, sizeof(why)));
	tls_joined(&ts.sp, &t);
	expect_member(&t, ts.tls_port);
	client_close(&s2);
	client_close(&over);
	client_close(&t);
	tls_server_stop_ok(&ts);
}
END_TEST

/* --max-per-ip counts a TLS connection from its accept, before any
 * cryptography: two that never start their handshake hold the address's
 * two slots, and a third, TLS or plain, is refused at once. */
START_TEST(test_per_address_limits_count_tls_clients_before_their_handshake)
{
	struct tls_server ts;
	struct client s1, s2, t3, p3;
	char line[256];

	tls_server_start(&ts, "--max-per-ip", "2", NULL);
	client_open(&s1, ts.tls_port, 0);
	client_open(&s2, ts.tls_port, 0);
	/* The kernel's accept queue is first in, first out: s1 and s2 are
	 * taken before t3, however late the server gets to them. */
	client_open(&t3, ts.tls_port, 0);
	ck_assert(closed_within(&t3, 5000));
	client_open(&p3, ts.sp.port, 0);
	ck_assert_int_eq(client_line(&p3, line, sizeof(line), WAIT_MS), 1);
	ck_assert_str_eq(line, "* too many connections from your address (2)");
	ck_assert(server_log_wait(&ts.sp, "too many connections from your address", WAIT_MS));
	client_close(&s1);
	client_close(&s2);
	client_close(&t3);
	client_close(&p3);
	tls_server_stop_ok(&ts);
}
END_TEST

START_TEST(test_no_plain_serves_tls_only)
{
	struct server_proc sp;
	struct client t;
	char dir[64], cert[128], key[128];

	cert_dir(dir, sizeof(dir));
	cert_make(dir, "s", "localhost", false);
	server_start(&sp, "--no-plain", "--tls-port", "0", "--tls-cert",
	             cert_path(cert, sizeof(cert), dir, "s", "pem"), "--tls-key",
	             cert_path(key, sizeof(key), dir, "s", "key"), NULL);
	ck_assert_ptr_null(strstr(server_log(&sp), "workers)"));
	ck_assert_int_eq(server_tls_port(&sp), sp.port);
	tls_member(&sp, &t, sp.port, 0);
	expect_member(&t, sp.port);
	client_close(&t);
	server_stop_ok(&sp);
	cert_dir_remove(dir);
}
END_TEST

/* Socket activation with two sockets, the second named "tls": TLS clients
 * on that one, plain on the other, without --tls-port (the certificate
 * options alone say how to serve it). */
START_TEST(test_socket_activation_passes_the_tls_listener)
{
	struct server_proc sp;
	struct client t, c;
	char dir[64], cert[128], key[128];
	int plain_port, tls_port;
	int plain = listen_loopback(&plain_port), tls = listen_loopback(&tls_port);

	cert_dir(dir, sizeof(dir));
	cert_make(dir, "s", "localhost", false);
	server_pass_fds[0] = plain;
	server_pass_fds[1] = tls;
	server_npass = 2;
	server_pass_names = "chat:tls";
	server_start(&sp, "--tls-cert", cert_path(cert, sizeof(cert), dir, "s", "pem"),
	             "--tls-key", cert_path(key, sizeof(key), dir, "s", "key"), NULL);
	ck_assert_int_eq(sp.port, plain_port);
	ck_assert_int_eq(server_tls_port(&sp), tls_port);
	ck_assert_msg(strstr(server_log(&sp), "2 listening sockets from systemd") != NULL, "%s",
	              server_log(&sp));
	tls_member(&sp, &t, tls_port, 0);
	client_open(&c, plain_port, 0);
	ck_assert(client_wait_for(&t, "joined (2 online)", WAIT_MS));
	client_close(&c);
	client_close(&t);
	server_stop_ok(&sp);
	close(plain);
	close(tls);
	cert_dir_remove(dir);
}
END_TEST

START_TEST(test_bad_tls_settings_are_refused_at_start)
{
	static char out[8192];
	char dir[64], cert[128], key[128], other[128], bad[128], missing[128];
	FILE *fp;

	cert_dir(dir, sizeof(dir));
	cert_make(dir, "s", "localhost", false);
	cert_make(dir, "o", "other", false);
	cert_path(cert, sizeof(cert), dir, "s", "pem");
	cert_path(key, sizeof(key), dir, "s", "key");
	cert_path(other, sizeof(other), dir, "o", "key");
	cert_path(bad, sizeof(bad), dir, "bad", "pem");
	cert_path(missing, sizeof(missing), dir, "missing", "pem");
	fp = fopen(bad, "w");
	ck_assert_ptr_nonnull(fp);
	fputs("this is not PEM\n", fp);
	fclose(fp);

	/* Options that do not go together: usage, exit 2. */
	ck_assert_int_eq(server_run_args(out, sizeof(out),
	                            (const char *[]){ "--port", "0", "--tls-port", "0", NULL }),
	                 2);
	ck_assert_msg(strstr(out, "--tls-port needs --tls-cert FILE and --tls-key FILE") != NULL,
	              "%s", out);
	ck_assert_int_eq(server_run_args(out, sizeof(out),
	                            (const char *[]){ "--port", "0", "--tls-cert", cert, NULL }),
	                 2);
	ck_assert_ptr_nonnull(strstr(out, "--tls-cert needs --tls-port"));
	ck_assert_int_eq(server_run_args(out, sizeof(out), (const char *[]){ "--no-plain", NULL }), 2);

	/* Files that do not load: exit 1, naming the file and the reason. */
	ck_assert_int_eq(
	        server_run_args(out, sizeof(out),
	                   (const char *[]){ "--bind", "127.0.0.1", "--port", "0", "--tls-port",
	                                     "0", "--tls-cert", missing, "--tls-key", key, NULL }),
	        1);
	ck_assert_msg(strstr(out, "cannot load TLS certificate") && strstr(out, missing) &&
	                      strstr(out, "No such file or directory"),
	              "%s", out);
	ck_assert_int_eq(
	        server_run_args(out, sizeof(out),
	                   (const char *[]){ "--bind", "127.0.0.1", "--port", "0", "--tls-port",
	                                     "0", "--tls-cert", bad, "--tls-key", key, NULL }),
	        1);
	ck_assert_msg(strstr(out, "cannot load TLS certificate") && strstr(out, bad) &&
	                      strstr(out, "no start line"),
	              "%s", out);
	ck_assert_int_eq(
	        server_run_args(out, sizeof(out),
	                   (const char *[]){ "--bind", "127.0.0.1", "--port", "0", "--tls-port",
	                                     "0", "--tls-cert", cert, "--tls-key", other, NULL }),
	        1);
	ck_assert_msg(strstr(out, "do not match") && strstr(out, cert) && strstr(out, other), "%s",
	              out);
	ck_assert_ptr_null(strstr(out, "listening on"));
	cert_dir_remove(dir);
}
END_TEST

/* --- the transport alone, over a socketpair ------------------------------------------- */

/*
 * The server side of io_tls against an OpenSSL client in this process:
 * after a short read, the rest of a record is decrypted and held by
 * OpenSSL, where epoll cannot see it; io_pending must say so until it is
 * all read.  And a full socket shows as -EAGAIN, whose retry goes through.
 */
START_TEST(test_the_transport_reports_what_openssl_holds)
{
	char dir[64], cert[128], key[128], err[256], why[200];
	static char big[10000], buf[20000];
	struct tls_ctx *t;
	struct io io;
	SSL_CTX *cctx;
	SSL *cl;
	int sv[2], steps = 0, sndbuf = 4096;
	enum tls_step st;
	size_t got = 0;
	ssize_t n;
	struct iovec iov;

	cert_dir(dir, sizeof(dir));
	cert_make(dir, "s", "localhost", false);
	ck_assert_int_eq(tls_ctx_load(&t, cert_path(cert, sizeof(cert), dir, "s", "pem"),
	                              cert_path(key, sizeof(key), dir, "s", "key"), err,
	                              sizeof(err)),
	                 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	ck_assert_int_eq(io_tls_init(&io, t, sv[0]), 0);
	ck_assert(io_is_tls(&io));
	cctx = SSL_CTX_new(TLS_client_method());
	cl = SSL_new(cctx);
	SSL_set_fd(cl, sv[1]);
	SSL_set_connect_state(cl);

	/* Both ends step until done: both sockets are non-blocking. */
	do {
		int rc = SSL_do_handshake(cl);

		ck_assert_msg(rc == 1 || SSL_get_error(cl, rc) == SSL_ERROR_WANT_READ,
		              "client handshake failed");
		st = tls_handshake(&io, why, sizeof(why));
		ck_assert_msg(st != TLS_FAILED, "server handshake: %s", why);
		ck_assert_int_lt(++steps, 50);
	} while (st != TLS_DONE || !SSL_is_init_finished(cl));

	memset(big, 'x', sizeof(big));
	ck_assert_int_eq(SSL_write(cl, big, sizeof(big)), (int)sizeof(big));
	n = io.ops->read(&io, buf, 100);
	ck_assert_int_eq(n, 100);
	ck_assert_msg(io_pending(&io), "OpenSSL holds the rest of the record");
	while (io_pending(&io)) {
		n = io.ops->read(&io, buf, sizeof(buf));
		ck_assert_int_gt(n, 0);
		got += (size_t)n;
	}
	ck_assert_int_eq(got, sizeof(big) - 100);
	ck_assert_int_eq(io.ops->read(&io, buf, sizeof(buf)), -EAGAIN);

	/* Half a record: OpenSSL holds its first bytes, but there is
	 * nothing to read until the rest comes, which epoll will report, so
	 * nothing is pending (else the job would spin until then).  Written
	 * through a memory BIO so that the record can be cut in two. */
	{
		BIO *mem = BIO_new(BIO_s_mem()), *sock = SSL_get_wbio(cl);
		char rec[20000];
		int len;

		BIO_up_ref(sock);
		SSL_set0_wbio(cl, mem);
		ck_assert_int_eq(SSL_write(cl, "partial\n", 8), 8);
		len = BIO_read(mem, rec, sizeof(rec));
		ck_assert_int_gt(len, 10);
		SSL_set0_wbio(cl, sock);
		ck_assert_int_eq(write(sv[1], rec, 10), 10);
		ck_assert_int_eq(io.ops->read(&io, buf, sizeof(buf)), -EAGAIN);
		ck_assert_msg(!io_pending(&io), "half a record reported as pending input");
		ck_assert_int_eq(write(sv[1], rec + 10, (size_t)len - 10), len - 10);
		ck_assert_int_eq(io.ops->read(&io, buf, sizeof(buf)), 8);
		ck_assert(memcmp(buf, "partial\n", 8) == 0);
	}

	/* Server to client until the socket is full, then read and retry. */
	iov.iov_base = big;
	iov.iov_len = sizeof(big);
	for (steps = 0; (n = io_writev(&io, &iov, 1)) > 0; steps++)
		ck_assert_int_lt(steps, 10000);
	ck_assert_int_eq(n, -EAGAIN);
	while (SSL_read(cl, buf, sizeof(buf)) > 0)
		;
	ck_assert_int_gt(io_writev(&io, &iov, 1), 0);

	SSL_free(cl);
	SSL_CTX_free(cctx);
	close(sv[1]);
	io_close(&io);
	tls_ctx_free(t);
	cert_dir_remove(dir);
}
END_TEST

static Suite *
tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *tc;

	tc = tcase_create("chat");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_tls_and_plain_clients_chat_in_one_room);
	tcase_add_test(tc, test_a_megabyte_burst_reaches_a_slow_tls_reader_whole_and_in_order);
	tcase_add_test(tc, test_sighup_reloads_the_certificate_and_keeps_sessions);
	tcase_add_test(tc, test_sighup_takes_new_certificate_paths_from_the_config_file);
	tcase_add_test(tc, test_no_plain_serves_tls_only);
	tcase_add_test(tc, test_socket_activation_passes_the_tls_listener);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_a_stalled_handshake_is_closed_at_its_deadline_while_others_chat);
	tcase_add_test(tc, test_plain_text_and_garbage_on_the_tls_port_are_closed_at_once);
	tcase_add_test(tc, test_handshakes_in_progress_are_capped);
	tcase_add_test(tc, test_per_address_limits_count_tls_clients_before_their_handshake);
	suite_add_tcase(s, tc);

	tc = tcase_create("setup");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_bad_tls_settings_are_refused_at_start);
	tcase_add_test(tc, test_the_transport_reports_what_openssl_holds);
	suite_add_tcase(s, tc);
	return s;
}
#endif /* HAVE_OPENSSL */

int
main(void)
{
#ifndef HAVE_OPENSSL
	printf("SKIP: this build has no OpenSSL (configure found no libssl-dev)\n");
	return 77;
#else
	if (!have_openssl_cmd()) {
		printf("SKIP: the openssl command is not installed (Debian: apt-get install "
		       "openssl)\n");
		return 77;
	}
	raise_nofile_for_test();
	signal(SIGPIPE, SIG_IGN); /* OpenSSL writes with write(2) */
	return run_suite(tls_suite());
#endif
}

/* The TLS transport; see tls.h. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls.h"

/* The first byte of every TLS handshake record (ContentType handshake). */
#define TLS_RECORD_HANDSHAKE 0x16
/* What we offer, best first (the server's order wins). */
#define TLS_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS12_CIPHERS                                                                              \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
	"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
/* One record's worth of plaintext, gathered from the queue per write. */
#define TLS_WRITE_CHUNK 16384

struct tls_ctx {
	SSL_CTX *ctx;
};

/* A connection's transport state (io.state). */
struct tls_conn {
	pthread_mutex_t mu; /* held for each SSL_* call of this connection */
	SSL *ssl;           /* mu */
	bool looked;        /* handshake steps only (one at a time): the first
	                     * byte was seen to be TLS */
};

/* OpenSSL's reason for the first error of this thread (the cause: later
 * ones are the callers that gave up, "PEM lib"), then a clean queue. */
static void
ssl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	if (r != NULL)
		snprintf(buf, len, "%s", r);
	else if (e != 0)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "unknown error");
	ERR_clear_error();
}

/* A file we cannot even open gets the system's reason, which says more
 * than OpenSSL's "system lib". */
static int
readable(const char *what, const char *path, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "r");

	if (fp == NULL) {
		int e = errno;

		snprintf(err, errlen, "cannot load TLS %s %s: %s", what, path, strerror(e));
		return -e;
	}
	fclose(fp);
	return 0;
}

int
tls_ctx_load(struct tls_ctx **out, const char *cert, const char *key, char *err, size_t errlen)
{
	struct tls_ctx *t;
	char why[200];
	int rc;

	*out = NULL;
	if ((rc = readable("certificate", cert, err, errlen)) != 0 ||
	    (rc = readable("key", key, err, errlen)) != 0)
		return rc;
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "cannot set up TLS: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	ERR_clear_error();
	if ((t->ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		ssl_reason(why, sizeof(why));
		snprintf(err, errlen, "cannot set up TLS: %s", why);
		goto fail;
	}
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	/* No renegotiation (a client could make us redo the costly part at
	 * will); a peer that closes without close_notify simply ended, as
	 * a plain client does; no compression (CRIME). */
	SSL_CTX_set_options(t->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
	                                    SSL_OP_NO_COMPRESSION |
	                                    SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Mozilla's "intermediate" choice and order: AES-128-GCM first, as
	 * strong in practice as AES-256 and a quarter cheaper per byte,
	 * which a fan-out pays for every recipient. */
	if (SSL_CTX_set_ciphersuites(t->ctx, TLS_SUITES) != 1 ||
	    SSL_CTX_set_cipher_list(t->ctx, TLS12_CIPHERS) != 1) {
		ssl_reason(why, sizeof(why));
		snprintf(err, errlen, "cannot set up TLS ciphers: %s", why);
		goto fail;
	}
	SSL_CTX_set_mode(t->ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
	                                 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Resumption by stateless tickets only: no session cache to grow
	 * with the clients, and one ticket is enough for a chat client. */
	SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(t->ctx, 1);

	if (SSL_CTX_use_certificate_chain_file(t->ctx, cert) != 1) {
		ssl_reason(why, sizeof(why));
		snprintf(err, errlen, "cannot load TLS certificate %s: %s", cert, why);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1) {
		/* OpenSSL checks the pair as it loads the key. */
		bool pair = ERR_GET_REASON(ERR_peek_error()) == X509_R_KEY_VALUES_MISMATCH;

		ssl_reason(why, sizeof(why));
		if (pair)
			snprintf(err, errlen, "TLS certificate %s and key %s do not match: %s",
			         cert, key, why);
		else
			snprintf(err, errlen, "cannot load TLS key %s: %s", key, why);
		goto fail;
	}
	if (SSL_CTX_check_private_key(t->ctx) != 1) {
		ssl_reason(why, sizeof(why));
		snprintf(err, errlen, "TLS certificate %s and key %s do not match: %s", cert, key,
		         why);
		goto fail;
	}
	*out = t;
	return 0;
fail:
	tls_ctx_free(t);
	return -EINVAL;
}

void
tls_ctx_free(struct tls_ctx *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx); /* connections keep their own reference */
	free(t);
}

void
tls_ctx_describe(const struct tls_ctx *t, char *buf, size_t len, bool *expired)
{
	X509 *x = SSL_CTX_get0_certificate(t->ctx);
	char subject[256] = "?", until[64] = "?";
	BIO *b;
	struct tm tm;

	*expired = false;
	if (x == NULL) {
		snprintf(buf, len, "no certificate");
		return;
	}
	if ((b = BIO_new(BIO_s_mem())) != NULL) {
		int n;

		X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
		n = BIO_read(b, subject, (int)sizeof(subject) - 1);
		subject[n > 0 ? n : 0] = '\0';
		BIO_free(b);
	}
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		strftime(until, sizeof(until), "%Y-%m-%d %H:%M:%S UTC", &tm);
	*expired = X509_cmp_current_time(X509_get0_notAfter(x)) < 0;
	ERR_clear_error();
	snprintf(buf, len, "subject %s, expires %s", subject, until);
}

int
io_tls_init(struct io *io, struct tls_ctx *t, int fd)
{
	struct tls_conn *tc = calloc(1, sizeof(*tc));

	if (tc == NULL)
		return -ENOMEM;
	if (pthread_mutex_init(&tc->mu, NULL) != 0) {
		free(tc);
		return -ENOMEM;
	}
	ERR_clear_error();
	if ((tc->ssl = SSL_new(t->ctx)) == NULL || SSL_set_fd(tc->ssl, fd) != 1) {
		ERR_clear_error();
		SSL_free(tc->ssl);
		pthread_mutex_destroy(&tc->mu);
		free(tc);
		return -ENOMEM;
	}
	SSL_set_accept_state(tc->ssl);
	io_init(io, &io_tls, fd);
	io->state = tc;
	return 0;
}

bool
io_is_tls(const struct io *io)
{
	return io->ops == &io_tls;
}

/* What a failed SSL call means for the caller, as io.h's negative errno;
 * 0 for an orderly end.  mu held; errno as the call left it. */
static ssize_t
ssl_result(struct tls_conn *tc, int rc)
{
	int e = errno;

	switch (SSL_get_error(tc->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		/* A read that must write (or the reverse) happens only with
		 * renegotiation, which is refused, or a TLS 1.3 key update,
		 * which OpenSSL sends with the next write. */
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN: return 0; /* close_notify, or EOF (see tls_ctx_load) */
	case SSL_ERROR_SYSCALL: ERR_clear_error(); return e != 0 ? -e : -ECONNRESET;
	default: ERR_clear_error(); return -EPROTO; /* a broken or hostile peer */
	}
}

static ssize_t
tls_read(struct io *io, void *buf, size_t len)
{
	struct tls_conn *tc = io->state;
	size_t got = 0;
	ssize_t rc;
	int ok;

	pthread_mutex_lock(&tc->mu);
	if (!SSL_is_init_finished(tc->ssl)) {
		/* Only the linger reads a connection whose handshake never
		 * finished, to throw its input away: never do handshake work
		 * (the costly part) on the accept loop for it. */
		pthread_mutex_unlock(&tc->mu);
		rc = recv(io->fd, buf, len, MSG_DONTWAIT);
		return rc >= 0 ? rc : errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
	ERR_clear_error();
	errno = 0;
	ok = SSL_read_ex(tc->ssl, buf, len, &got);
	rc = ok == 1 ? (ssize_t)got : ssl_result(tc, ok);
	pthread_mutex_unlock(&tc->mu);
	return rc;
}

static ssize_t
tls_writev(struct io *io, const struct iovec *iov, int iovcnt)
{
	struct tls_conn *tc = io->state;
	char chunk[TLS_WRITE_CHUNK];
	size_t n = 0, put = 0;
	ssize_t rc;
	int ok;

	for (int i = 0; i < iovcnt && n < sizeof(chunk); i++) {
		size_t k = iov[i].iov_len < sizeof(chunk) - n ? iov[i].iov_len : sizeof(chunk) - n;

		memcpy(chunk + n, iov[i].iov_base, k);
		n += k;
	}
	if (n == 0)
		return 0;
	pthread_mutex_lock(&tc->mu);
	ERR_clear_error();
	errno = 0;
	ok = SSL_write_ex(tc->ssl, chunk, n, &put);
	rc = ok == 1 ? (ssize_t)put : ssl_result(tc, ok);
	pthread_mutex_unlock(&tc->mu);
	/* An orderly end seen by a write means the peer is gone. */
	return rc == 0 ? -EPIPE : rc;
}

static bool
tls_pending(struct io *io)
{
	struct tls_conn *tc = io->state;
	bool any;

	pthread_mutex_lock(&tc->mu);
	/*
	 * Decrypted bytes not yet read: a record longer than the reader's
	 * buffer.  Not SSL_has_pending(), which is also true for part of a
	 * record: its rest comes through the socket, and epoll reports it,
	 * while "pending" would run the job again and again until it came.
	 * Without read-ahead (not set), OpenSSL never holds more than the
	 * record it is reading, so nothing else can hide from epoll.
	 */
	any = SSL_is_init_finished(tc->ssl) && SSL_pending(tc->ssl) > 0;
	pthread_mutex_unlock(&tc->mu);
	return any;
}

static void
tls_shutdown(struct io *io, int how)
{
	struct tls_conn *tc = io->state;

	if (how == SHUT_WR) {
		/* The polite end: close_notify, then the FIN.  Non-blocking: if
		 * the socket is full the alert is lost, and the FIN still says
		 * that we are done. */
		pthread_mutex_lock(&tc->mu);
		if (SSL_is_init_finished(tc->ssl)) {
			ERR_clear_error();
			if (SSL_shutdown(tc->ssl) < 0)
				ERR_clear_error();
		}
		pthread_mutex_unlock(&tc->mu);
	}
	/* SHUT_RDWR wakes a reader at once; it touches the socket only, so
	 * it needs no lock even while another thread is inside OpenSSL. */
	shutdown(io->fd, how);
}

static void
tls_close(struct io *io)
{
	struct tls_conn *tc = io->state;

	SSL_free(tc->ssl); /* the last reference: nobody else can call */
	pthread_mutex_destroy(&tc->mu);
	free(tc);
	io->state = NULL;
	close(io->fd);
}

const struct io_ops io_tls = {
	.name = "tls",
	.read = tls_read,
	.writev = tls_writev,
	.pending = tls_pending,
	.shutdown = tls_shutdown,
	.close = tls_close,
};

/* Before OpenSSL reads anything: is this a TLS client at all? */
static enum tls_step
look_first(struct io *io, char *err, size_t errlen)
{
	static const char hint[] = "* this port speaks TLS: connect with chat-client --tls, "
	                           "or openssl s_client -quiet -connect HOST:PORT\r\n";
	unsigned char first;
	ssize_t n = recv(io->fd, &first, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n == 0) {
		snprintf(err, errlen, "closed before the handshake");
		return TLS_FAILED;
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return TLS_WANT_READ;
		snprintf(err, errlen, "%s", strerror(errno));
		return TLS_FAILED;
	}
	if (first != TLS_RECORD_HANDSHAKE) {
		/* Best effort, on a fresh socket with room: a person who
		 * typed at the TLS port learns why it hangs up. */
		if (send(io->fd, hint, sizeof(hint) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			errno = 0;
		snprintf(err, errlen, "not a TLS client (first byte 0x%02x)", first);
		return TLS_FAILED;
	}
	return TLS_DONE;
}

enum tls_step
tls_handshake(struct io *io, char *err, size_t errlen)
{
	struct tls_conn *tc = io->state;
	enum tls_step st;
	int rc, e;

	if (!tc->looked) {
		if ((st = look_first(io, err, errlen)) != TLS_DONE)
			return st;
		tc->looked = true;
	}
	pthread_mutex_lock(&tc->mu);
	ERR_clear_error();
	errno = 0;
	rc = SSL_do_handshake(tc->ssl);
	e = errno;
	if (rc == 1) {
		st = TLS_DONE;
	} else {
		switch (SSL_get_error(tc->ssl, rc)) {
		case SSL_ERROR_WANT_READ: st = TLS_WANT_READ; break;
		case SSL_ERROR_WANT_WRITE: st = TLS_WANT_WRITE; break;
		case SSL_ERROR_SYSCALL:
			ERR_clear_error();
			snprintf(err, errlen, "%s",
			         e != 0 ? strerror(e) : "closed during the handshake");
			st = TLS_FAILED;
			break;
		case SSL_ERROR_ZERO_RETURN:
			ERR_clear_error();
			snprintf(err, errlen, "closed during the handshake");
			st = TLS_FAILED;
			break;
		default:
			ssl_reason(err, errlen);
			st = TLS_FAILED;
			break;
		}
	}
	pthread_mutex_unlock(&tc->mu);
	return st;
}

const char *
tls_version(struct io *io)
{
	struct tls_conn *tc = io->state;
	const char *v;

	pthread_mutex_lock(&tc->mu);
	v = SSL_get_version(tc->ssl); /* a static string */
	pthread_mutex_unlock(&tc->mu);
	return v;
}

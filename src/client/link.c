/* The client's link to the server, plain or TLS; see link.h. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_OPENSSL
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#endif

#include "link.h"
#include "net.h"

void
link_plain(struct link *l, int fd)
{
	memset(l, 0, sizeof(*l));
	l->fd = fd;
}

static int
plain_send(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && errno != EINTR) {
			return -errno;
		}
	}
	return 0;
}

void
link_abort(struct link *l)
{
	shutdown(l->fd, SHUT_RDWR);
}

#ifdef HAVE_OPENSSL

bool
link_have_tls(void)
{
	return true;
}

/* OpenSSL's reason for the last error of this thread, then a clean queue. */
static void
ssl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	snprintf(buf, len, "%s", r != NULL ? r : "the connection was closed");
	ERR_clear_error();
}

/* Wait for the socket; the link's lock is not held. */
static void
wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };

	if (poll(&p, 1, timeout_ms) < 0 && errno != EINTR)
		p.revents = POLLERR; /* nothing to wait for: the next call fails */
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* The handshake, non-blocking, within the deadline. */
static int
handshake(SSL *ssl, int fd, const struct link_tls *t, long timeout_ms, char *err, size_t errlen)
{
	long end = now_ms() + timeout_ms;
	char why[200];

	for (;;) {
		int rc, e;
		long left = end - now_ms();

		ERR_clear_error();
		if ((rc = SSL_connect(ssl)) == 1)
			return 0;
		e = SSL_get_error(ssl, rc);
		if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && left > 0) {
			wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, (int)left);
			continue;
		}
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			snprintf(err, errlen,
			         "TLS handshake with %s: no answer in %ld s (is it a TLS port?)",
			         t->host, timeout_ms / 1000);
			return -ETIMEDOUT;
		}
		if (SSL_get_verify_result(ssl) != X509_V_OK) {
			snprintf(err, errlen,
			         "cannot verify the certificate of %s: %s\n"
			         "chat-client: if you trust this server, give the certificate of "
			         "its CA (or its own, if self-signed) with --ca FILE",
			         t->host,
			         X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
			ERR_clear_error();
			return -EPROTO;
		}
		ssl_reason(why, sizeof(why));
		snprintf(err, errlen, "TLS handshake with %s failed: %s", t->host, why);
		return -EPROTO;
	}
}

int
link_tls(struct link *l, int fd, const struct link_tls *t, long timeout_ms, char *err,
         size_t errlen)
{
	unsigned char addr[16];
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	char why[200];
	bool ip = inet_pton(AF_INET, t->host, addr) == 1 || inet_pton(AF_INET6, t->host, addr) == 1;
	int rc = -EPROTO;

	link_plain(l, fd);
	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		goto ssl_fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (!t->insecure) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if (t->ca != NULL) {
			if (SSL_CTX_load_verify_locations(ctx, t->ca, NULL) != 1) {
				ssl_reason(why, sizeof(why));
				snprintf(err, errlen, "cannot load --ca %s: %s", t->ca, why);
				rc = -EINVAL;
				goto fail;
			}
		} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
			goto ssl_fail;
		}
	}
	if ((ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1)
		goto ssl_fail;
	if (!ip)
		SSL_set_tlsext_host_name(ssl, t->host); /* SNI: names only */
	if (!t->insecure) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);

		if ((ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, t->host)
		        : X509_VERIFY_PARAM_set1_host(vp, t->host, 0)) != 1)
			goto ssl_fail;
	}
	if ((rc = net_set_nonblock(fd)) != 0) {
		snprintf(err, errlen, "cannot set up TLS: %s", strerror(-rc));
		goto fail;
	}
	if ((rc = handshake(ssl, fd, t, timeout_ms, err, errlen)) != 0)
		goto fail;
	if ((rc = -pthread_mutex_init(&l->mu, NULL)) != 0) {
		snprintf(err, errlen, "cannot set up TLS: %s", strerror(-rc));
		goto fail;
	}
	l->mu_ready = true;
	l->ssl = ssl;
	l->ctx = ctx;
	return 0;

ssl_fail:
	ssl_reason(why, sizeof(why));
	snprintf(err, errlen, "cannot set up TLS: %s", why);
fail:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	l->fd = -1;
	return rc;
}

void
link_describe(struct link *l, char *buf, size_t len)
{
	if (l->ssl == NULL) {
		snprintf(buf, len, "plain");
		return;
	}
	pthread_mutex_lock(&l->mu);
	snprintf(buf, len, "%s %s", SSL_get_version(l->ssl), SSL_get_cipher_name(l->ssl));
	pthread_mutex_unlock(&l->mu);
}

/* One SSL call's outcome: 1 go on (after waiting for what it wants), 0 the
 * end, or a negative errno.  mu held; e is errno as the call left it. */
static int
ssl_outcome(struct link *l, int rc, int e, short *wait)
{
	switch (SSL_get_error(l->ssl, rc)) {
	case SSL_ERROR_WANT_READ: *wait = POLLIN; return 1;
	case SSL_ERROR_WANT_WRITE: *wait = POLLOUT; return 1;
	case SSL_ERROR_ZERO_RETURN: return 0;
	case SSL_ERROR_SYSCALL: ERR_clear_error(); return e != 0 ? -e : 0;
	default: ERR_clear_error(); return -EPROTO;
	}
}

static int
tls_send(struct link *l, const char *p, size_t len)
{
	while (len > 0) {
		size_t put = 0;
		short wait = 0;
		int ok, e, rc = 1;

		pthread_mutex_lock(&l->mu);
		ERR_clear_error();
		errno = 0;
		ok = SSL_write_ex(l->ssl, p, len, &put);
		e = errno;
		if (ok != 1)
			rc = ssl_outcome(l, ok, e, &wait);
		pthread_mutex_unlock(&l->mu);
		if (ok == 1) {
			p += put;
			len -= put;
		} else if (rc == 1) {
			/* The retry is the same call, as OpenSSL requires. */
			wait_fd(l->fd, wait, wait == POLLIN ? 100 : -1);
		} else {
			return rc == 0 ? -EPIPE : rc;
		}
	}
	return 0;
}

static ssize_t
tls_recv(struct link *l, void *buf, size_t len)
{
	for (;;) {
		size_t got = 0;
		short wait = 0;
		int ok, e, rc = 1;

		pthread_mutex_lock(&l->mu);
		ERR_clear_error();
		errno = 0;
		ok = SSL_read_ex(l->ssl, buf, len, &got);
		e = errno;
		if (ok != 1)
			rc = ssl_outcome(l, ok, e, &wait);
		pthread_mutex_unlock(&l->mu);
		if (ok == 1)
			return (ssize_t)got;
		if (rc != 1)
			return rc;
		wait_fd(l->fd, wait, -1);
	}
}

static void
tls_shutdown_write(struct link *l)
{
	pthread_mutex_lock(&l->mu);
	ERR_clear_error();
	if (SSL_shutdown(l->ssl) < 0) /* close_notify; non-blocking */
		ERR_clear_error();
	pthread_mutex_unlock(&l->mu);
}

static void
tls_free(struct link *l)
{
	SSL_free(l->ssl);
	SSL_CTX_free(l->ctx);
	if (l->mu_ready)
		pthread_mutex_destroy(&l->mu);
}

#else /* !HAVE_OPENSSL: l->ssl is always NULL */

bool
link_have_tls(void)
{
	return false;
}

int
link_tls(struct link *l, int fd, const struct link_tls *t, long timeout_ms, char *err,
         size_t errlen)
{
	(void)t;
	(void)timeout_ms;
	link_plain(l, fd);
	snprintf(err, errlen, "this chat-client was built without OpenSSL");
	return -ENOTSUP;
}

void
link_describe(struct link *l, char *buf, size_t len)
{
	(void)l;
	snprintf(buf, len, "plain");
}

#endif /* HAVE_OPENSSL */

int
link_send(struct link *l, const void *buf, size_t len)
{
#ifdef HAVE_OPENSSL
	if (l->ssl != NULL)
		return tls_send(l, buf, len);
#endif
	return plain_send(l->fd, buf, len);
}

ssize_t
link_recv(struct link *l, void *buf, size_t len)
{
	ssize_t n;

#ifdef HAVE_OPENSSL
	if (l->ssl != NULL)
		return tls_recv(l, buf, len);
#endif
	while ((n = recv(l->fd, buf, len, 0)) < 0 && errno == EINTR)
		;
	return n >= 0 ? n : -errno;
}

void
link_shutdown_write(struct link *l)
{
#ifdef HAVE_OPENSSL
	if (l->ssl != NULL)
		tls_shutdown_write(l);
#endif
	shutdown(l->fd, SHUT_WR);
}

void
link_close(struct link *l)
{
#ifdef HAVE_OPENSSL
	if (l->ssl != NULL)
		tls_free(l);
#endif
	if (l->fd >= 0)
		close(l->fd);
	memset(l, 0, sizeof(*l));
	l->fd = -1;
}

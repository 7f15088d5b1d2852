/*
 * TLS, the second transport (io.h): OpenSSL 3 under the same read, writev,
 * pending, shutdown and close the server calls for plain sockets, as
 * Redis's tls.c sits beside socket.c behind connection.h.
 *
 * Threads.  OpenSSL allows one thread at a time in the calls of one SSL.
 * A connection's reads come from its one job in flight (or the linger),
 * its writes from whichever thread flushes its queue (conn.writing makes
 * that one at a time), so a read and a write can meet: each connection's
 * transport has its own mutex, held for exactly one non-blocking SSL_*
 * call.  Lock order: conn.mu -> the transport's mutex (conn_shutdown_write
 * shuts down under conn.mu); the transport never takes another lock.  The
 * thread's OpenSSL error queue is cleared before every call, so that an
 * error left by another connection on this worker is never read as ours.
 *
 * Writes.  SSL_write has no vector form, so a writev copies up to one
 * record (16 KiB) of the queue into a buffer on the stack and writes that:
 * many chat lines leave in one record.  After SSL_write wants to write
 * again, OpenSSL needs the retry to carry at least the bytes it had: the
 * queue guarantees it, since nothing leaves the queue until a write
 * succeeds (and SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER allows the new copy).
 *
 * Memory: SSL_MODE_RELEASE_BUFFERS gives back the read and write buffers
 * of a connection with nothing in flight, so an idle TLS client costs its
 * SSL object, not 2 x 16 KiB more (measured in docs/performance.md).
 */
#ifndef TLS_H
#define TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "io.h"

/* The certificate, key and settings new handshakes use.  Owned by the
 * accept loop, which loads, swaps (SIGHUP) and frees it; connections hold
 * OpenSSL's own reference to the one they started with. */
struct tls_ctx;

/*
 * Load a PEM certificate (chain) and its key: TLS 1.2 and 1.3 only,
 * renegotiation refused.  Returns 0, or a negative errno with a message for
 * people in err naming the file and OpenSSL's reason ("cannot load
 * certificate /etc/x.pem: no start line").
 */
int tls_ctx_load(struct tls_ctx **out, const char *cert, const char *key, char *err, size_t errlen);
void tls_ctx_free(struct tls_ctx *t);

/* "subject CN=chat.example.org, expires 2027-03-01 12:00:00 UTC"; *expired
 * tells whether that is already past. */
void tls_ctx_describe(const struct tls_ctx *t, char *buf, size_t len, bool *expired);

extern const struct io_ops io_tls;

/* A server-side TLS transport over the accepted, non-blocking fd, its
 * handshake not yet begun.  Returns 0 or -ENOMEM (fd is then not closed). */
int io_tls_init(struct io *io, struct tls_ctx *t, int fd);

/* True for a transport made by io_tls_init. */
bool io_is_tls(const struct io *io);

enum tls_step {
	TLS_DONE,       /* the handshake is complete: chat may begin */
	TLS_WANT_READ,  /* wait until the socket is readable */
	TLS_WANT_WRITE, /* wait until it is writable */
	TLS_FAILED,     /* give up; err says why */
};

/*
 * One non-blocking step of the server's handshake.  The first bytes are
 * looked at before OpenSSL sees them: anything but a TLS handshake record
 * (a person typing, an HTTP request, noise) is told in plain text that
 * this port speaks TLS and fails at once.
 */
enum tls_step tls_handshake(struct io *io, char *err, size_t errlen);

/* "TLSv1.3", once the handshake is done. */
const char *tls_version(struct io *io);

#endif /* TLS_H */

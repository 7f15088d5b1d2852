/*
 * The client's connection to the server: a plain TCP socket, or TLS over
 * it (OpenSSL), behind one small interface, so that chat-client's two
 * threads (the sender writes, the main thread reads) need not know which.
 *
 * Threads: OpenSSL allows one thread at a time in an SSL's calls, but the
 * sender and the receiver must not wait for each other: a receiver
 * blocked in SSL_read would stall every line typed.  So over TLS the
 * socket is non-blocking, mu is held for one SSL call at a time, and each
 * side waits for its socket readiness in poll() with mu released.
 * Plain links need no lock: send and recv on one socket from two threads
 * are safe.
 */
#ifndef LINK_H
#define LINK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct link {
	int fd;             /* the connected socket */
	void *ssl;          /* SSL *, or NULL for a plain link */
	void *ctx;          /* SSL_CTX * */
	pthread_mutex_t mu; /* TLS: held for each SSL call */
	bool mu_ready;
};

/* How the server's certificate is checked. */
struct link_tls {
	const char *host; /* the name (or address) it must be for */
	const char *ca;   /* PEM file of trusted CAs; NULL: the system's store */
	bool insecure;    /* check nothing (said loudly by the caller) */
};

/* True if this build can speak TLS. */
bool link_have_tls(void);

/* A plain link over a connected, blocking socket (taken over). */
void link_plain(struct link *l, int fd);

/*
 * TLS over a connected, blocking socket (taken over): the handshake,
 * within timeout_ms, and the certificate checked against the CA store and
 * the host name.  Returns 0, or a negative errno with a message for people
 * in err (OpenSSL's reason, and for a certificate that could not be
 * verified, what to do about it).
 */
int link_tls(struct link *l, int fd, const struct link_tls *t, long timeout_ms, char *err,
             size_t errlen);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for a TLS link, "plain" otherwise. */
void link_describe(struct link *l, char *buf, size_t len);

/* Send all of buf (blocking).  Returns 0 or a negative errno. */
int link_send(struct link *l, const void *buf, size_t len);

/* Receive up to len bytes (blocking): the count, 0 at the end, or a
 * negative errno. */
ssize_t link_recv(struct link *l, void *buf, size_t len);

/* No more from us: close_notify over TLS, then the FIN. */
void link_shutdown_write(struct link *l);

/* Both ways, at once: wakes a blocked link_recv or link_send.  Touches
 * the socket only, so it is safe from any thread at any time. */
void link_abort(struct link *l);

void link_close(struct link *l);

#endif /* LINK_H */

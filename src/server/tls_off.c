/*
 * The TLS transport in a build without OpenSSL: every entry point says so.
 * chat-server refuses --tls-port before it gets here (exit 2); this keeps
 * the rest of the server free of #ifdefs.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <stdio.h>

#include "tls.h"

static const char none[] =
        "this chat-server was built without OpenSSL (configure --with-openssl; Debian: libssl-dev)";

const struct io_ops io_tls = { .name = "tls" };

int
tls_ctx_load(struct tls_ctx **out, const char *cert, const char *key, char *err, size_t errlen)
{
	(void)cert;
	(void)key;
	*out = NULL;
	snprintf(err, errlen, "%s", none);
	return -ENOTSUP;
}

void
tls_ctx_free(struct tls_ctx *t)
{
	(void)t;
}

void
tls_ctx_describe(const struct tls_ctx *t, char *buf, size_t len, bool *expired)
{
	(void)t;
	*expired = false;
	snprintf(buf, len, "%s", none);
}

int
io_tls_init(struct io *io, struct tls_ctx *t, int fd)
{
	(void)io;
	(void)t;
	(void)fd;
	return -ENOTSUP;
}

bool
io_is_tls(const struct io *io)
{
	(void)io;
	return false;
}

enum tls_step
tls_handshake(struct io *io, char *err, size_t errlen)
{
	(void)io;
	snprintf(err, errlen, "%s", none);
	return TLS_FAILED;
}

const char *
tls_version(struct io *io)
{
	(void)io;
	return "none";
}

/*
 * The transport: how a connection's bytes move.  A small table of the
 * operations the server calls, with plain sockets (io_plain) as its one
 * implementation today; TLS adds a table beside it (as Redis's
 * connection.h has socket.c and tls.c behind it), not branches in relay,
 * conn and server.
 *
 * Threads: an io is used by one thread at a time, as its connection's
 * rules already give: reads by the one job in flight (or, once the
 * connection lingers, the accept loop); writes by the one writer
 * (conn.writing); shutdown by whoever holds the conn's mu; close by the
 * last reference.  A transport that cannot read and write from two
 * threads at once (OpenSSL) serialises them itself.
 */
#ifndef IO_H
#define IO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct io;

struct io_ops {
	const char *name; /* "plain", for the log */
	/* Up to len bytes: the count, 0 at end of input, or a negative
	 * errno (-EAGAIN: nothing now).  Never blocks. */
	ssize_t (*read)(struct io *io, void *buf, size_t len);
	/* Bytes written from the vector (possibly fewer), or a negative
	 * errno (-EAGAIN: the socket is full).  Never blocks, never raises
	 * SIGPIPE. */
	ssize_t (*writev)(struct io *io, const struct iovec *iov, int iovcnt);
	/* Input the transport holds that the socket no longer shows (TLS
	 * records already decrypted): the reader must take it without
	 * waiting for epoll. */
	bool (*pending)(struct io *io);
	/* shutdown(2)'s how: SHUT_WR ends our output after what is sent,
	 * SHUT_RDWR also wakes a reader with end of input. */
	void (*shutdown)(struct io *io, int how);
	/* Release the transport and close the descriptor. */
	void (*close)(struct io *io);
};

struct io {
	const struct io_ops *ops; /* immutable */
	int fd;                   /* immutable: what epoll watches */
	void *state;              /* the transport's own (NULL for plain) */
};

extern const struct io_ops io_plain;

/* An io of ops over fd.  Returns 0 or a negative errno. */
int io_init(struct io *io, const struct io_ops *ops, int fd);

static inline ssize_t
io_read(struct io *io, void *buf, size_t len)
{
	return io->ops->read(io, buf, len);
}

static inline ssize_t
io_writev(struct io *io, const struct iovec *iov, int iovcnt)
{
	return io->ops->writev(io, iov, iovcnt);
}

static inline bool
io_pending(struct io *io)
{
	return io->ops->pending(io);
}

static inline void
io_shutdown(struct io *io, int how)
{
	io->ops->shutdown(io, how);
}

static inline void
io_close(struct io *io)
{
	io->ops->close(io);
}

#endif /* IO_H */

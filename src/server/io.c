/* The plain-socket transport; see io.h. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io.h"

static ssize_t
plain_read(struct io *io, void *buf, size_t len)
{
	ssize_t n = recv(io->fd, buf, len, MSG_DONTWAIT);

	return n >= 0 ? n : errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

static ssize_t
plain_writev(struct io *io, const struct iovec *iov, int iovcnt)
{
	struct msghdr mh;
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = (struct iovec *)iov;
	mh.msg_iovlen = (size_t)iovcnt;
	/* MSG_NOSIGNAL: a peer that left must not SIGPIPE us. */
	n = sendmsg(io->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	return n >= 0 ? n : errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

static bool
plain_pending(struct io *io)
{
	(void)io;
	return false; /* the kernel's buffer is all there is, and epoll sees it */
}

static void
plain_shutdown(struct io *io, int how)
{
	shutdown(io->fd, how);
}

static void
plain_close(struct io *io)
{
	close(io->fd);
}

const struct io_ops io_plain = {
	.name = "plain",
	.read = plain_read,
	.writev = plain_writev,
	.pending = plain_pending,
	.shutdown = plain_shutdown,
	.close = plain_close,
};

int
io_init(struct io *io, const struct io_ops *ops, int fd)
{
	io->ops = ops;
	io->fd = fd;
	io->state = NULL;
	return 0;
}

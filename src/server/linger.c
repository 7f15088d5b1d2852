/* Polite closing; see linger.h. */
#define _GNU_SOURCE /* EPOLLRDHUP */
#include "config.h"

#include <errno.h>
#include <sys/epoll.h>

#include "linger.h"

void
linger_init(struct linger_set *l, int epfd)
{
	l->epfd = epfd;
	l->head = l->tail = NULL;
	l->n = 0;
}

/* Ask for what c still needs: output room until its write side is shut,
 * input until the peer has closed. */
static void
watch(struct linger_set *l, struct conn *c)
{
	struct epoll_event ev = { .events = 0, .data.ptr = c };

	if (!c->linger_rd_done)
		ev.events |= EPOLLIN | EPOLLRDHUP;
	if (!c->linger_wr_done)
		ev.events |= EPOLLOUT;
	epoll_ctl(l->epfd, EPOLL_CTL_MOD, c->io.fd, &ev);
}

static void
finish(struct linger_set *l, struct conn *c)
{
	if (c->linger_prev != NULL)
		c->linger_prev->linger_next = c->linger_next;
	else
		l->head = c->linger_next;
	if (c->linger_next != NULL)
		c->linger_next->linger_prev = c->linger_prev;
	else
		l->tail = c->linger_prev;
	l->n--;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->io.fd, NULL);
	conn_unref(c); /* the descriptor closes with the last reference */
}

/* Write what is left; once nothing is, shut the write side down. */
static void
try_write(struct conn *c)
{
	if (c->linger_wr_done)
		return;
	if (conn_flush(c) != 0 || conn_pending(c) == 0) {
		conn_shutdown_write(c);
		c->linger_wr_done = true;
	}
}

/* Read and throw away input, up to the budget; true once it has ended. */
static bool
drain(struct conn *c)
{
	size_t budget = LINGER_READ_BUDGET;

	while (budget > 0) {
		char buf[4096];
		ssize_t n = conn_read(c, buf, sizeof(buf));

		if (n > 0) {
			budget -= (size_t)n < budget ? (size_t)n : budget;
			continue;
		}
		if (n == -EINTR)
			continue;
		return n != -EAGAIN; /* end of input, or an error: nothing more */
	}
	return false;
}

void
linger_add(struct linger_set *l, struct conn *c, long now_ms)
{
	conn_linger_begin(c);
	c->lingering = true;
	c->linger_due = now_ms + LINGER_MS;
	c->linger_next = NULL;
	c->linger_prev = l->tail;
	if (l->tail != NULL)
		l->tail->linger_next = c;
	else
		l->head = c;
	l->tail = c;
	l->n++;
	try_write(c);
	if (!c->linger_rd_done && drain(c))
		c->linger_rd_done = true;
	if (c->linger_rd_done && c->linger_wr_done)
		finish(l, c);
	else
		watch(l, c);
}

void
linger_event(struct linger_set *l, struct conn *c, uint32_t events)
{
	if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
		try_write(c);
	if (!c->linger_rd_done && (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) &&
	    drain(c))
		c->linger_rd_done = true;
	/* A peer that has closed may still read what we send (a half
	 * close), so its end of input alone does not end the wait. */
	if (c->linger_rd_done && c->linger_wr_done)
		finish(l, c);
	else
		watch(l, c);
}

void
linger_expire(struct linger_set *l, long now_ms)
{
	while (l->head != NULL && l->head->linger_due <= now_ms)
		finish(l, l->head);
}

long
linger_timeout(const struct linger_set *l, long now_ms)
{
	if (l->head == NULL)
		return -1;
	return l->head->linger_due > now_ms ? l->head->linger_due - now_ms : 0;
}

size_t
linger_count(const struct linger_set *l)
{
	return l->n;
}

void
linger_close_all(struct linger_set *l)
{
	while (l->head != NULL)
		finish(l, l->head);
}

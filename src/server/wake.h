/*
 * The accept loop's wake-up: an eventfd in its epoll set that any thread
 * writes to make epoll_wait return (a connection to reap, one parked, the
 * last job done at shutdown).  Writes coalesce: the loop drains the count
 * and then looks at everything that could have asked.
 */
#ifndef WAKE_H
#define WAKE_H

/* A non-blocking eventfd, or a negative errno. */
int wake_open(void);

/* Any thread: wake the loop.  Never blocks; a failure is logged. */
void wake_signal(int fd);

/* The loop: take every wake-up pending. */
void wake_drain(int fd);

#endif /* WAKE_H */

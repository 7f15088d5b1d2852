/* The accept loop's wake-up; see wake.h. */
#define _GNU_SOURCE /* eventfd */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "wake.h"

int
wake_open(void)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	return fd >= 0 ? fd : -errno;
}

void
wake_signal(int fd)
{
	uint64_t one = 1;

	/* EAGAIN: the counter is full, so the loop is woken already. */
	if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_error("cannot wake the accept loop: %s", strerror(errno));
}

void
wake_drain(int fd)
{
	uint64_t v;

	while (read(fd, &v, sizeof(v)) > 0)
		;
}

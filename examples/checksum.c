/*
 * checksum: the POSIX cksum(1) of each FILE, computed in parallel on a
 * libthreadpool pool and printed in argument order, so its output can be
 * compared with cksum's own.
 *
 *   cc -o checksum checksum.c $(pkg-config --cflags --libs threadpool)
 *   ./checksum [-j WORKERS] FILE...
 *
 * Built against the *installed* library only: it includes <threadpool.h>
 * and links through pkg-config, as any user program would.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <threadpool.h>

struct job {
	const char *path;
	uint32_t crc;
	unsigned long long size;
};

static uint32_t table[256];

static void
make_table(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i << 24;

		for (int k = 0; k < 8; k++)
			c = c & 0x80000000u ? (c << 1) ^ 0x04C11DB7u : c << 1;
		table[i] = c;
	}
}

/* The task: one file's CRC as cksum(1) defines it.  Returns errno on failure. */
static int
cksum_file(void *arg, void **result)
{
	struct job *j = arg;
	unsigned char buf[65536];
	uint32_t crc = 0;
	unsigned long long len;
	ssize_t n;
	int fd, err = 0;

	(void)result; /* the outcome goes into *j */
	if ((fd = open(j->path, O_RDONLY)) < 0)
		return errno;
	j->size = 0;
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = errno;
			break;
		}
		for (ssize_t i = 0; i < n; i++)
			crc = (crc << 8) ^ table[(crc >> 24) ^ buf[i]];
		j->size += (unsigned long long)n;
	}
	close(fd);
	for (len = j->size; len != 0; len >>= 8)
		crc = (crc << 8) ^ table[(crc >> 24) ^ (len & 0xff)];
	j->crc = ~crc;
	return err;
}

int
main(int argc, char **argv)
{
	struct tp_options opts = { TP_OPTIONS_INIT };
	struct job *jobs;
	tp_future **fs;
	tp_pool *pool;
	int c, i, n, rc, status = 0;

	while ((c = getopt(argc, argv, "j:")) != -1) {
		if (c == 'j' && atoi(optarg) > 0) {
			opts.max_workers = (unsigned)atoi(optarg);
		} else {
			fprintf(stderr, "usage: checksum [-j WORKERS] FILE...\n");
			return 2;
		}
	}
	n = argc - optind;
	if (n < 1) {
		fprintf(stderr, "usage: checksum [-j WORKERS] FILE...\n");
		return 2;
	}
	make_table();
	jobs = calloc((size_t)n, sizeof(*jobs));
	fs = calloc((size_t)n, sizeof(*fs));
	if (jobs == NULL || fs == NULL) {
		fprintf(stderr, "checksum: out of memory\n");
		return 1;
	}
	if ((rc = tp_pool_create(&pool, &opts)) != 0) {
		fprintf(stderr, "checksum: cannot create pool: %s\n", strerror(-rc));
		return 1;
	}
	for (i = 0; i < n; i++) {
		jobs[i].path = argv[optind + i];
		if ((rc = tp_submit(pool, cksum_file, &jobs[i], &fs[i])) != 0) {
			fprintf(stderr, "checksum: cannot submit %s: %s\n", jobs[i].path,
			        strerror(-rc));
			status = 1;
		}
	}
	for (i = 0; i < n; i++) {
		if (fs[i] == NULL)
			continue;
		rc = tp_future_result(fs[i], -1, NULL);
		if (rc == 0) {
			printf("%lu %llu %s\n", (unsigned long)jobs[i].crc, jobs[i].size,
			       jobs[i].path);
		} else {
			fprintf(stderr, "checksum: %s: %s\n", jobs[i].path,
			        strerror(rc < 0 ? -rc : rc));
			status = 1;
		}
		tp_future_release(fs[i]);
	}
	tp_pool_free(pool);
	free(fs);
	free(jobs);
	return status;
}

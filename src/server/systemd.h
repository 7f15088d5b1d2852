/*
 * The two systemd protocols the server speaks, without libsystemd (the
 * protocols are small and stable, and a build without the library then
 * behaves exactly as one with it):
 *
 *  - socket activation (sd_listen_fds(3)): listening sockets passed from
 *    descriptor 3 on, counted by LISTEN_FDS, for the process LISTEN_PID,
 *    named by LISTEN_FDNAMES (FileDescriptorName= in the .socket unit).
 *    A socket named "tls" is a TLS listener; any other is plain.
 *  - readiness (sd_notify(3)): "READY=1", "RELOADING=1", "STOPPING=1"
 *    and "STATUS=..." datagrams to the socket NOTIFY_SOCKET names, for a
 *    Type=notify service.
 *
 * Both read the environment once, from the main thread, at start.
 */
#ifndef SYSTEMD_H
#define SYSTEMD_H

#include <stdbool.h>
#include <stddef.h>

/* Descriptors systemd passes start here (SD_LISTEN_FDS_START). */
#define SYSTEMD_FDS_START 3

/*
 * Take the listening sockets systemd passed to this process, if any: at
 * most max of them, into fds (made close-on-exec and non-blocking) with
 * tls[i] set for those named "tls".  *n is 0 when none were passed (no
 * LISTEN_FDS, or one meant for another process).  The variables are
 * removed from the environment either way.  Returns 0, or a negative
 * errno with a message in err: a descriptor that is not a listening
 * stream socket, more than max, or a malformed variable.
 */
int systemd_listeners(int *fds, bool *tls, size_t max, size_t *n, char *err, size_t len);

/*
 * Open the notification socket if NOTIFY_SOCKET names one (and remove the
 * variable).  Returns true if the service manager listens.
 */
bool systemd_notify_open(void);

/* Send one state ("READY=1", "STATUS=12 clients"); nothing if no service
 * manager listens.  Never blocks: a datagram the socket cannot take is
 * dropped (the next state replaces it).  Main thread only. */
void systemd_notify(const char *state);

/* Close the notification socket. */
void systemd_notify_close(void);

#endif /* SYSTEMD_H */

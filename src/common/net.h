/*
 * Socket helpers shared by the server and the client: address formatting,
 * listening sockets, non-blocking mode.
 */
#ifndef NET_H
#define NET_H

#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

/* "[2001:db8::1]:52842", "127.0.0.1:52842"; IPv4-mapped IPv6 as plain IPv4. */
#define NET_ADDRSTRLEN 64

/* Format sa as above into buf (NET_ADDRSTRLEN bytes).  Never fails: an
 * unknown family formats as "?". */
void net_format_addr(const struct sockaddr *sa, char *buf, size_t len);

/*
 * Open listening sockets for host:port (host NULL: every address, IPv6
 * dual-stack on "::", or 0.0.0.0 where IPv6 is unavailable).  A host name
 * may resolve to several addresses: each gets a socket.  With port "0" the
 * kernel's choice for the first socket is reused for the others.
 * Stores up to max descriptors (non-blocking, close-on-exec) in fds and
 * their count in *n.  Returns 0, or a negative errno with a message for
 * people in err ("cannot listen on 0.0.0.0:4333: Address already in use").
 */
int net_listen(const char *host, const char *port, int backlog, int *fds, size_t max, size_t *n,
               char *err, size_t errlen);

/*
 * Connect a blocking TCP socket to host:port, trying every address
 * getaddrinfo gives (IPv6 and IPv4) in turn.  If trace is set, each attempt
 * and its outcome is written there as a line.  Returns the descriptor
 * (close-on-exec), or a negative errno with a message for people in err
 * ("cannot connect to localhost:4333: Connection refused"; the reason is
 * that of the last address tried).
 */
int net_connect(const char *host, const char *port, FILE *trace, char *err, size_t errlen);

/* Make fd non-blocking.  Returns 0 or a negative errno. */
int net_set_nonblock(int fd);

#endif /* NET_H */

/*
 * Certificates for the TLS tests, made at run time with the openssl
 * command (no private key is committed): each test makes its own in a
 * fresh directory and removes it at the end.
 */
#ifndef TLS_CERT_H
#define TLS_CERT_H

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

/* Whether the openssl command is there to make certificates. */
static inline bool
have_openssl_cmd(void)
{
	return system("command -v openssl >/dev/null 2>&1") == 0;
}

/* A fresh directory for one test's files. */
static inline void
cert_dir(char *dir, size_t len)
{
	snprintf(dir, len, "/tmp/chat-tls-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static inline void
cert_dir_remove(const char *dir)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

/*
 * A self-signed P-256 certificate dir/NAME.pem and its key dir/NAME.key,
 * for common name cn, valid for localhost and 127.0.0.1 as well as cn (or
 * only for cn when only_cn): what a client checks the host name against.
 */
static inline void
cert_make(const char *dir, const char *name, const char *cn, bool only_cn)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd),
	         "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
	         "-subj '/CN=%s' -addext 'subjectAltName=DNS:%s%s' "
	         "-keyout '%s/%s.key' -out '%s/%s.pem' >/dev/null 2>&1",
	         cn, cn, only_cn ? "" : ",DNS:localhost,IP:127.0.0.1", dir, name, dir, name);
	ck_assert_msg(system(cmd) == 0, "cannot make a certificate: %s", cmd);
}

/* dir/NAME.SUFFIX into buf. */
static inline const char *
cert_path(char *buf, size_t len, const char *dir, const char *name, const char *suffix)
{
	snprintf(buf, len, "%s/%s.%s", dir, name, suffix);
	return buf;
}

#endif /* TLS_CERT_H */

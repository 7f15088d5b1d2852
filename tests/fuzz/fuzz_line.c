/*
 * libFuzzer target for the pure input path: framing (line_feed,
 * line_finish) and sanitising (line_sanitize).  Beyond crashes, leaks and
 * sanitizer reports, it checks what the rest of the server relies on:
 *  - no raw line is longer than max_line;
 *  - sanitised output is valid UTF-8, holds no control character but TAB,
 *    and is never longer than max_line.
 * The first byte picks max_line (small, to exercise cuts); the second how
 * the rest is split into reads.
 *
 *   make fuzz && ./tests/fuzz/fuzz_line -max_total_time=60 corpus-dir tests/fuzz/corpus
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "line.h"

struct ctx {
	size_t max_line;
	char out[1 << 16];
};

static void
check_utf8_clean(const unsigned char *s, size_t n)
{
	size_t i = 0;
	unsigned blank = 0;

	while (i < n) {
		unsigned char b = s[i];
		size_t need;
		uint32_t cp;

		if (b < 0x80) {
			if ((b < 0x20 && b != '\t') || b == 0x7F)
				abort(); /* a control character got through */
			blank = b == ' ' ? blank + 1 : b == '\t' ? blank + LINE_BLANK_RUN : 0;
			if (blank > LINE_BLANK_RUN)
				abort(); /* padding that could wrap a fake line */
			i++;
			continue;
		}
		blank = 0;
		if (b >= 0xC2 && b <= 0xDF) {
			need = 1;
			cp = b & 0x1F;
		} else if (b >= 0xE0 && b <= 0xEF) {
			need = 2;
			cp = b & 0x0F;
		} else if (b >= 0xF0 && b <= 0xF4) {
			need = 3;
			cp = b & 0x07;
		} else {
			abort(); /* not a lead byte */
		}
		if (i + need >= n)
			abort(); /* truncated: the continuation bytes are missing */
		for (size_t k = 1; k <= need; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				abort();
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10FFFF ||
		    (cp >= 0xD800 && cp <= 0xDFFF) || (cp >= 0x80 && cp <= 0x9F))
			abort(); /* overlong, out of range, surrogate, or C1 */
		if ((cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) ||
		    cp == 0x200E || cp == 0x200F || cp == 0x061C || cp == 0x2028 || cp == 0x2029 ||
		    cp == 0x200B || cp == 0x2060 || cp == 0xFEFF || cp == 0xA0 || cp == 0x3000 ||
		    (cp >= 0x2000 && cp <= 0x200A))
			abort(); /* what could make a line pass for another */
		i += need + 1;
	}
}

static void
on_line(void *arg, const char *line, size_t len, bool truncated)
{
	struct ctx *c = arg;
	bool cut;
	size_t n;

	(void)truncated;
	if (len > c->max_line)
		abort();
	n = line_sanitize(line, len, c->out, c->max_line, &cut);
	if (n > c->max_line)
		abort();
	check_utf8_clean((const unsigned char *)c->out, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ctx c;
	struct line_buf lb = { 0 };
	size_t split, off;

	if (size < 2)
		return 0;
	c.max_line = 1 + data[0] % 64;
	split = 1 + data[1];
	data += 2;
	size -= 2;
	for (off = 0; off < size; off += split) {
		size_t n = size - off < split ? size - off : split;

		line_feed(&lb, c.max_line, (const char *)data + off, n, on_line, &c);
	}
	line_finish(&lb, on_line, &c);
	line_buf_free(&lb);
	return 0;
}

/*
 * chat-client's line editor: one line of UTF-8 text, a cursor, and this
 * session's history.  Bytes from the keyboard go in, one at a time; a
 * picture of the line comes out.  Pure code, no I/O and no terminal of
 * its own, so that it can be tested key by key.
 *
 * Keys: printable UTF-8 is inserted; Backspace, Delete, Ctrl-U (erase to
 * the start), Ctrl-K (to the end), Ctrl-W and Alt-Backspace (the word
 * before the cursor), Left/Right (Ctrl-B/Ctrl-F), Ctrl-Left/Right and
 * Alt-B/F (a word), Home/End (Ctrl-A/Ctrl-E), Up/Down (Ctrl-P/Ctrl-N)
 * through the history, Enter, Ctrl-D (end on an empty line, else delete),
 * Ctrl-C; Tab and Ctrl-Z are reported for the caller to act on.  Escape
 * sequences it does not know are swallowed whole, never inserted.
 *
 * Ownership: the caller owns a struct edit and serialises calls on it
 * (chat-client does so under its terminal lock, term.h).
 */
#ifndef EDIT_H
#define EDIT_H

#include <stdbool.h>
#include <stddef.h>

#define EDIT_MAX_LINE 65536 /* bytes; typing beyond is ignored */
#define EDIT_HISTORY 500    /* lines remembered */

enum edit_action {
	EDIT_NONE,      /* nothing visible changed */
	EDIT_REDRAW,    /* the line or the cursor changed: render it */
	EDIT_ENTER,     /* a non-empty line is complete: edit_take() it */
	EDIT_EOF,       /* Ctrl-D on an empty line */
	EDIT_INTERRUPT, /* Ctrl-C */
	EDIT_REFRESH,   /* Ctrl-L: redraw the screen */
	EDIT_COMPLETE,  /* Tab: complete the word before the cursor */
	EDIT_SUSPEND    /* Ctrl-Z: stop the program (the caller restores the
	                 * terminal first) */
};

struct edit {
	char *buf;             /* the line, NUL-terminated */
	size_t len, cap;       /* bytes in buf (NUL not counted), its size */
	size_t cur;            /* cursor: a byte offset on a character boundary */
	char **hist;           /* lines entered, oldest first */
	size_t nhist;          /* how many */
	size_t hpos;           /* the history line shown; nhist: the line being typed */
	char *draft;           /* the line being typed, kept while browsing history */
	unsigned char seq[16]; /* an escape sequence or UTF-8 character in progress */
	size_t nseq, need;     /* bytes of it so far; for UTF-8, bytes it will have */
};

void edit_init(struct edit *e);
void edit_free(struct edit *e);

/* One byte of input.  Out of memory, a key is ignored (EDIT_NONE). */
enum edit_action edit_key(struct edit *e, unsigned char byte);

/* The line, NUL-terminated (also *len); valid until the next call. */
const char *edit_line(const struct edit *e, size_t *len);

/*
 * After EDIT_ENTER: the line, in a new string the caller frees (NULL if
 * out of memory).  The line goes into the history and the editor starts a
 * new, empty one.
 */
char *edit_take(struct edit *e, size_t *len);

/*
 * The escape sequences that draw prompt and line on one terminal row of
 * cols columns, the cursor in place: "\r", the prompt, as much of the line
 * as fits (scrolled so that the cursor is visible), erase to the end of
 * the row, move to the cursor.  Written to out (cap bytes, NUL-terminated;
 * less of the line is shown if cap is short: 4 * cols + 64 is enough but
 * for zero-width characters); returns the length.
 */
size_t edit_render(const struct edit *e, const char *prompt, unsigned cols, char *out, size_t cap);

/* Where the word before the cursor begins (a byte offset): what Tab
 * completes. */
size_t edit_word_start(const struct edit *e);

/* Replace the text from start to the cursor with s (n bytes), the cursor
 * after it: a completion. */
enum edit_action edit_replace(struct edit *e, size_t start, const char *s, size_t n);

/* Columns a code point takes on a terminal: 0 to 2. */
int edit_width(unsigned cp);

#endif /* EDIT_H */

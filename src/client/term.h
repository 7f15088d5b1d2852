/*
 * chat-client's terminal: raw mode, and one input line at the bottom that
 * arriving messages never garble.
 *
 * Two threads share it: the sender types into the line editor
 * (term_key), the receiver prints messages (term_print), each under mu, so
 * a message is printed by erasing the input line, writing the message and
 * its line end, and drawing the input line again, whole, all in one
 * write.
 *
 * The terminal's mode is restored on every way out: term_close(), exit()
 * (an atexit handler), and SIGTERM, SIGHUP, SIGINT, SIGQUIT (a handler
 * that restores it, then dies of the signal as it would have).
 */
#ifndef TERM_H
#define TERM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "edit.h"

struct term {
	pthread_mutex_t mu; /* guards ed and every write to out */
	int in, out;        /* descriptors of the terminal */
	char prompt[64];    /* mu */
	struct edit ed;
};

/* Put the terminal on in (keys) and out (display) in raw mode and draw
 * the prompt.  Returns 0 or a negative errno (then nothing changed). */
int term_open(struct term *t, int in, int out, const char *prompt);

/* Change the prompt (cut to 63 bytes) and draw the input line again. */
void term_set_prompt(struct term *t, const char *prompt);

/* Restore the terminal's mode, leave the cursor on a fresh line, free. */
void term_close(struct term *t);

/* Print one line (already safe to show) above the input line. */
void term_print(struct term *t, const char *line, size_t len);

/*
 * Feed the n bytes typed (one read's worth: a paste may be thousands),
 * up to the first that completes a line or ends the input.  The line is
 * drawn once for all of them, not once a byte, and mu is held only for
 * these, so that messages keep arriving during a long paste.  Returns
 * what happened (edit.h: EDIT_ENTER, EDIT_EOF, EDIT_INTERRUPT,
 * EDIT_COMPLETE, EDIT_SUSPEND, or EDIT_NONE when all n were taken) and in
 * *used how many bytes were taken; on EDIT_ENTER, *line is the line typed
 * (the caller frees it and shows it, term_print; NULL if out of memory),
 * and the prompt is empty again.
 */
enum edit_action term_keys(struct term *t, const char *buf, size_t n, size_t *used, char **line,
                           size_t *len);

/* Draw the input line again at the terminal's width now (SIGWINCH). */
void term_redraw(struct term *t);

/* Put line back into the editor (a line that could not be sent). */
void term_set_line(struct term *t, const char *line, size_t len);

/*
 * Tab: complete the word before the cursor from names (n of them, most
 * wanted first), without regard to case.  One match: the whole name
 * (and ": " when it opens the line); several: what they share, or, when
 * they share no more, the choices shown above the line.
 */
void term_complete(struct term *t, const char *const *names, size_t n);

/* Ctrl-Z: give the terminal back, stop (SIGTSTP to our process group),
 * and once resumed take raw mode again and redraw. */
void term_suspend(struct term *t);

#endif /* TERM_H */

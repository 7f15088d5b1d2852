/* Commands; see command.h. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broadcast.h"
#include "command.h"
#include "log.h"
#include "msg.h"

/* A /who line holds names up to about this many bytes. */
#define WHO_LINE 400

static bool
is_alpha(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

bool
command_nick_valid(const char *s, size_t n)
{
	if (n < 1 || n > CONN_NICK_MAX || !is_alpha(s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!is_alpha(s[i]) && !(s[i] >= '0' && s[i] <= '9') && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

/* Split off the first word of [*p, end); returns its length. */
static size_t
word(const char **p, const char *end, const char **w)
{
	const char *s = *p;
	size_t n;

	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	*w = s;
	while (s < end && *s != ' ' && *s != '\t')
		s++;
	n = (size_t)(s - *w);
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	*p = s;
	return n;
}

static bool
verb_is(const char *v, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(v, name, n) == 0;
}

/* The others hear of a rename only if they heard of the join: a first
 * line's /nick is part of the join (relay.c). */
static void
tell_rename(const struct command_ctx *cx, struct conn *c, const char *old, const char *now)
{
	if (atomic_load_explicit(&c->announced, memory_order_relaxed))
		msg_broadcast(cx->bc, c, msg_notice("%s is now %s", old, now));
}

bool
command_is_nick(const char *text, size_t len)
{
	const char *p = text + 1, *verb;
	size_t vlen = word(&p, text + len, &verb);

	return verb_is(verb, vlen, "nick");
}

static void
do_nick(const struct command_ctx *cx, struct conn *c, const char *arg, size_t n)
{
	char nick[CONN_NICK_MAX + 1], old[sizeof(c->name)], oldlog[sizeof(c->logname)];
	int rc;

	if (n == 0) {
		msg_tell(c, msg_notice("usage: /nick NAME"));
		return;
	}
	if (!command_nick_valid(arg, n)) {
		msg_tell(c, msg_notice("invalid nick '%.*s': 1 to %d letters, digits, _ or -, "
		                       "beginning with a letter",
		                       (int)(n < 64 ? n : 64), arg, CONN_NICK_MAX));
		return;
	}
	memcpy(nick, arg, n);
	nick[n] = '\0';
	if (strcmp(nick, c->nick) == 0) {
		/* Nothing changes (another case is a change): nobody is told. */
		msg_tell(c, msg_notice("you are already %s", nick));
		return;
	}
	if (cx->bc->bus.claim_nick != NULL) {
		/* A cluster: free here is not enough; Redis decides, and the
		 * answer comes back to this connection's job. */
		if (!broadcast_nick_free(cx->bc, c, nick)) {
			msg_tell(c, msg_notice("nick %s is taken", nick));
			return;
		}
		if (conn_ask_nick(c, nick) != 0) {
			msg_tell(c, msg_notice("a nick change is already under way"));
			return;
		}
		rc = cx->bc->bus.claim_nick(cx->bc->bus.arg, c, nick);
		if (rc != 0) {
			char ignored[CONN_NICK_MAX + 1];

			conn_answer_nick(c, CONN_NICK_FAILED);
			conn_take_nick(c, ignored, sizeof(ignored));
			msg_tell(c, msg_notice("%s", rc == -ENOTCONN
			                                     ? "cluster link down: nicks cannot change "
			                                       "until it is back"
			                                     : "out of memory: nick not changed"));
		}
		return;
	}
	memcpy(old, c->name, sizeof(old)); /* ours to read: only we write it */
	memcpy(oldlog, c->logname, sizeof(oldlog));
	if ((rc = broadcast_set_nick(cx->bc, c, nick)) == -EEXIST) {
		msg_tell(c, msg_notice("nick %s is taken", nick));
		return;
	}
	log_info("%s is now %s", oldlog, c->logname);
	msg_tell(c, msg_notice("you are now %s", nick));
	tell_rename(cx, c, old, nick);
}

bool
command_nick_answer(const struct command_ctx *cx, struct conn *c)
{
	char nick[CONN_NICK_MAX + 1], old[sizeof(c->name)], oldlog[sizeof(c->logname)];
	enum conn_nick st = conn_take_nick(c, nick, sizeof(nick));

	switch (st) {
	case CONN_NICK_GRANTED:
		memcpy(old, c->name, sizeof(old));
		memcpy(oldlog, c->logname, sizeof(oldlog));
		if (broadcast_set_nick(cx->bc, c, nick) != 0) {
			/* Taken here meanwhile by a local client the cluster
			 * had refused: cannot happen while Redis decides, and
			 * if it does, nobody gets two. */
			msg_tell(c, msg_notice("nick %s is taken", nick));
			return true;
		}
		log_info("%s is now %s", oldlog, c->logname);
		msg_tell(c, msg_notice("you are now %s", nick));
		tell_rename(cx, c, old, nick);
		break;
	case CONN_NICK_TAKEN:
		msg_tell(c, msg_notice("nick %s is taken", nick));
		break;
	case CONN_NICK_FAILED:
		msg_tell(c, msg_notice("cluster link down: nick %s not taken; try again", nick));
		break;
	case CONN_NICK_REVOKED:
		if (strcasecmp(c->nick, nick) != 0)
			break; /* changed since */
		memcpy(old, c->name, sizeof(old));
		memcpy(oldlog, c->logname, sizeof(oldlog));
		broadcast_clear_nick(cx->bc, c);
		log_info("%s is now %s (its nick was taken on another server)", oldlog, c->logname);
		msg_tell(c, msg_notice("nick %s was taken on another server while this one was cut "
		                       "off; you are %s again (/nick to pick one)",
		                       nick, c->shown));
		tell_rename(cx, c, old, c->shown);
		break;
	default:
		break;
	}
	return st > CONN_NICK_PENDING;
}

/* In a cluster, the other servers' members in room (NULL: anywhere), as
 * the bus last heard; 0 standalone. */
static size_t
remote_count(const struct command_ctx *cx, const char *room)
{
	size_t n = 0;
	char *names;

	if (cx->bc->bus.names == NULL)
		return 0;
	names = cx->bc->bus.names(cx->bc->bus.arg, room, &n);
	free(names);
	return n;
}

/*
 * /who: the members of c's room, or with "*" of the whole server (and
 * cluster).  While c is in #lobby and #lobby is everyone, the line reads
 * as it always has: "N online: ...".
 */
static void
do_who(const struct command_ctx *cx, struct conn *c, bool everyone)
{
	size_t n, len, start = 0, rn = 0;
	char *names = broadcast_names(cx->bc, everyone ? NULL : c, &n), *remote = NULL;
	char head[64];

	if (everyone || (c->room == cx->bc->lobby && n == broadcast_online(cx->bc) &&
	                 remote_count(cx, BROADCAST_LOBBY) == remote_count(cx, NULL))) {
		everyone = true;
		snprintf(head, sizeof(head), "online");
	} else {
		snprintf(head, sizeof(head), "in %s", c->room->name);
	}
	if (names != NULL && cx->bc->bus.names != NULL &&
	    (remote = cx->bc->bus.names(cx->bc->bus.arg, everyone ? NULL : c->room->name, &rn)) !=
	            NULL) {
		/* Other servers' clients after ours. */
		size_t ln = strlen(names);
		char *all = malloc(ln + 2 + strlen(remote) + 1);

		if (all != NULL) {
			sprintf(all, "%s%s%s", names, ln > 0 ? ", " : "", remote);
			free(names);
			names = all;
			n += rn;
		}
		free(remote);
	}
	if (names == NULL) {
		msg_tell(c, msg_notice("%s", "out of memory"));
		return;
	}
	/* Long rooms take several lines, cut between names. */
	len = strlen(names);
	do {
		size_t end = len;

		if (len - start > WHO_LINE) {
			char *comma = NULL;

			for (size_t i = start + WHO_LINE; i > start; i--)
				if (names[i] == ',') {
					comma = names + i;
					break;
				}
			end = comma ? (size_t)(comma - names) : start + WHO_LINE;
		}
		if (start == 0)
			msg_tell(c,
			         msg_notice("%zu %s: %.*s", n, head, (int)(end - start), names));
		else
			msg_tell(c, msg_notice("%.*s", (int)(end - start), names + start));
		start = end;
		while (start < len && (names[start] == ',' || names[start] == ' '))
			start++;
	} while (start < len);
	free(names);
}

/* Tell c its line was cut, as a chat line's would be. */
static void
tell_cut(const struct command_ctx *cx, struct conn *c)
{
	msg_tell(c, msg_notice("line too long: cut to %zu bytes", cx->max_line));
}

static void
do_me(const struct command_ctx *cx, struct conn *c, const char *text, size_t n, bool cut)
{
	const char *who = c->nick[0] ? c->nick : c->shown;
	size_t wlen = strlen(who), len = 2 + wlen + 1 + n;
	struct msg *m;
	char *line;
	bool cut2;

	if (n == 0) {
		msg_tell(c, msg_notice("usage: /me TEXT"));
		return;
	}
	if ((line = malloc(len)) == NULL) {
		msg_tell(c, msg_notice("out of memory"));
		return;
	}
	memcpy(line, "* ", 2);
	memcpy(line + 2, who, wlen);
	line[2 + wlen] = ' ';
	memcpy(line + 3 + wlen, text, n);
	m = msg_chat(c->name, line, len, cx->max_line, false, &cut2);
	free(line);
	if (cut || cut2)
		tell_cut(cx, c);
	if (m != NULL) {
		broadcast_send_chat(cx->bc, c, &m, 1); /* an action is chat: kept in history */
		/* The sender sees its own action as the others do (an nc user
		 * would otherwise see nothing of it). */
		conn_send(c, &m, 1);
		msg_unref(m);
	}
}

static void
do_msg(const struct command_ctx *cx, struct conn *c, const char *args, const char *end, bool cut)
{
	char nick[CONN_NICK_MAX + 1], to_nick[CONN_NICK_MAX + 1];
	const char *p = args, *who;
	size_t n = word(&p, end, &who);
	struct conn *to;
	struct msg *m;
	bool cut2;

	if (n == 0 || p == end) {
		msg_tell(c, msg_notice("usage: /msg NAME TEXT"));
		return;
	}
	to = NULL;
	if (command_nick_valid(who, n)) {
		memcpy(nick, who, n);
		nick[n] = '\0';
		/* Its nick as it is now, copied under the registry's lock: the
		 * recipient may be renaming itself at this very moment. */
		to = broadcast_find_nick(cx->bc, nick, to_nick, sizeof(to_nick));
	}
	if (to == NULL && cx->bc->bus.tell != NULL && command_nick_valid(who, n)) {
		/* Perhaps on another server: the bus finds out, and says. */
		int rc;

		m = msg_chat(c->name, p, (size_t)(end - p), cx->max_line, true, &cut2);
		if (cut || cut2)
			tell_cut(cx, c);
		if (m == NULL)
			return;
		rc = cx->bc->bus.tell(cx->bc->bus.arg, c, nick, m);
		msg_unref(m);
		if (rc == -ENOTCONN)
			msg_tell(c, msg_notice("no such nick on this server: %s (cluster link down)",
			                       nick));
		else if (rc != 0)
			msg_tell(c, msg_notice("out of memory: message not sent"));
		return;
	}
	if (to == NULL) {
		msg_tell(c, msg_notice("no such nick: %.*s", (int)(n < 64 ? n : 64), who));
		return;
	}
	m = msg_chat(c->name, p, (size_t)(end - p), cx->max_line, true, &cut2);
	if (cut || cut2)
		tell_cut(cx, c);
	if (m != NULL)
		conn_send(to, &m, 1);
	msg_tell(c, msg_notice("sent to %s", to_nick));
	if (m != NULL) {
		conn_send(c, &m, 1); /* what the recipient saw, after the receipt */
		msg_unref(m);
	}
	conn_unref(to);
}

/* /join NAME: c's own job moves it; the two rooms are told. */
static void
do_join(const struct command_ctx *cx, struct conn *c, const char *arg, size_t n)
{
	char name[ROOM_NAME_MAX + 2], topic[ROOM_TOPIC_MAX + 1], by[ROOM_BY_MAX];
	struct room *left;
	size_t here;
	int rc;

	if (n == 0) {
		msg_tell(c, msg_notice("usage: /join NAME (you are in %s)", c->room->name));
		return;
	}
	if (room_name_parse(arg, n, name) != 0) {
		msg_tell(c, msg_notice("invalid room name '%.*s': 1 to %d letters, digits, - or _ "
		                       "(the # is optional)",
		                       (int)(n < 64 ? n : 64), arg, ROOM_NAME_MAX));
		return;
	}
	rc = broadcast_move(cx->bc, c, name, &left, &here);
	if (rc == -EALREADY) {
		msg_tell(c, msg_notice("you are already in %s", c->room->name));
		return;
	}
	if (rc == -ENOSPC) {
		msg_tell(c, msg_notice("cannot make %s: there are %zu rooms already (the server's "
		                       "--max-rooms)",
		                       name, cx->bc->max_rooms));
		return;
	}
	if (rc != 0) {
		msg_tell(c, msg_notice("out of memory: you stay in %s", c->room->name));
		return;
	}
	/*
	 * The room it left hears of it only if it heard of its arrival: a
	 * quiet join (accept.h, churn) leaves #lobby as quietly as it came,
	 * or ten thousand clients from one address going to their rooms
	 * would cost #lobby a notice each for each (O(n^2)).  The room it
	 * enters always hears of it, so from now on it is announced.
	 */
	if (atomic_exchange_explicit(&c->announced, true, memory_order_relaxed))
		msg_broadcast_room(cx->bc, left,
		                   msg_notice("%s left for %s", c->name, c->room->name));
	room_unref(left);
	/* In a cluster, "here" counts the other servers' members too. */
	here += remote_count(cx, c->room->name);
	msg_broadcast(cx->bc, c, msg_notice("%s joined %s (%zu here)", c->name, c->room->name, here));
	msg_tell(c, msg_notice("you are now in %s (%zu here)", c->room->name, here));
	broadcast_topic(cx->bc, c, NULL, topic, sizeof(topic), by, sizeof(by));
	if (topic[0] != '\0')
		msg_tell(c, msg_notice("topic of %s: %s (set by %s)", c->room->name, topic, by));
	do_who(cx, c, false);
}

/*
 * In a cluster, the other servers' rooms join ours: their members add to
 * our counts, their rooms we have nobody in are listed too, and a topic
 * comes from the cluster where we have none here.  Returns the new count
 * (*all may move).
 */
static size_t
merge_remote_rooms(const struct command_ctx *cx, struct broadcast_room **all, size_t n)
{
	struct bus_room *rem;
	struct broadcast_room *grown;
	size_t rn = 0;

	if (cx->bc->bus.rooms == NULL ||
	    (rem = cx->bc->bus.rooms(cx->bc->bus.arg, &rn)) == NULL)
		return n;
	if ((grown = realloc(*all, (n + rn + 1) * sizeof(**all))) != NULL) {
		*all = grown;
		for (size_t i = 0; i < rn; i++) {
			size_t j;

			for (j = 0; j < n; j++)
				if (strcasecmp(grown[j].name, rem[i].name) == 0)
					break;
			if (j == n) {
				if (rem[i].members == 0)
					continue; /* a topic of a room nobody is in */
				snprintf(grown[n].name, sizeof(grown[n].name), "%s", rem[i].name);
				grown[n].topic[0] = '\0';
				grown[n++].members = 0;
			}
			grown[j].members += rem[i].members;
			if (grown[j].topic[0] == '\0')
				snprintf(grown[j].topic, sizeof(grown[j].topic), "%s", rem[i].topic);
		}
	}
	free(rem);
	return n;
}

static void
do_rooms(const struct command_ctx *cx, struct conn *c)
{
	size_t n;
	struct broadcast_room *all;

	if ((all = broadcast_rooms(cx->bc, &n)) == NULL) {
		msg_tell(c, msg_notice("out of memory"));
		return;
	}
	n = merge_remote_rooms(cx, &all, n);
	msg_tell(c, msg_notice("%zu room%s:", n, n == 1 ? "" : "s"));
	for (size_t i = 0; i < n; i++) {
		if (all[i].topic[0] != '\0')
			msg_tell(c, msg_notice("%s (%zu here): %s", all[i].name, all[i].members,
			                       all[i].topic));
		else
			msg_tell(c, msg_notice("%s (%zu here)", all[i].name, all[i].members));
	}
	free(all);
}

/* /topic [TEXT]: show or set the topic of c's room. */
static void
do_topic(const struct command_ctx *cx, struct conn *c, const char *text, size_t n)
{
	char topic[ROOM_TOPIC_MAX + 1], by[ROOM_BY_MAX], set[ROOM_TOPIC_MAX + 1];
	char both[ROOM_BY_MAX + 1 + ROOM_TOPIC_MAX + 1];
	struct msg *m;

	if (n == 0) {
		broadcast_topic(cx->bc, c, NULL, topic, sizeof(topic), by, sizeof(by));
		if (topic[0] == '\0')
			msg_tell(c, msg_notice("%s has no topic", c->room->name));
		else
			msg_tell(c, msg_notice("topic of %s: %s (set by %s)", c->room->name, topic,
			                       by));
		return;
	}
	if (n > ROOM_TOPIC_MAX) {
		msg_tell(c, msg_notice("topic too long: cut to %d bytes", ROOM_TOPIC_MAX));
		n = ROOM_TOPIC_MAX;
		while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
			n--; /* not inside a character */
	}
	memcpy(set, text, n);
	set[n] = '\0';
	broadcast_topic(cx->bc, c, set, topic, sizeof(topic), by, sizeof(by));
	msg_tell(c, msg_notice("you set the topic of %s: %s", c->room->name, topic));
	/* The other servers of a cluster keep the topic too: it travels with
	 * its notice. */
	snprintf(both, sizeof(both), "%s\t%s", by, topic);
	if ((m = msg_notice("%s set the topic of %s: %s", c->name, c->room->name, topic)) != NULL) {
		broadcast_send_topic(cx->bc, c, m, both);
		msg_unref(m);
	}
}

static void
do_help(struct conn *c)
{
	static const char *const lines[] = {
		"commands:",
		"  /nick NAME       take a nick (letters, digits, _ or -; a letter first)",
		"  /join NAME       go to room #NAME, made if needed (you start in #lobby)",
		"  /rooms           the rooms, how many are in each, their topics",
		"  /topic [TEXT]    show, or set, the topic of your room",
		"  /who, /names     who is in your room; /who * everyone online",
		"  /me TEXT         an action: * NAME TEXT",
		"  /msg NAME TEXT   to NAME alone",
		"  /quit [REASON]   leave",
		"  /help            this list",
		"  //text           sends /text",
	};

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		msg_tell(c, msg_notice("%s", lines[i]));
}

bool
command_run(const struct command_ctx *cx, struct conn *c, const char *text, size_t len, bool cut,
            char *reason, size_t reason_len)
{
	const char *p = text + 1, *end = text + len, *verb, *arg;
	size_t vlen = word(&p, end, &verb), alen;

	/* Trailing blanks are no part of an argument. */
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (verb_is(verb, vlen, "nick")) {
		const char *rest = p;

		alen = word(&rest, end, &arg);
		if (rest != end)
			alen = (size_t)(end - arg); /* "a b" is no nick */
		do_nick(cx, c, arg, alen);
	} else if (verb_is(verb, vlen, "who") || verb_is(verb, vlen, "names")) {
		do_who(cx, c, end - p == 1 && *p == '*');
	} else if (verb_is(verb, vlen, "join")) {
		const char *rest = p;

		alen = word(&rest, end, &arg);
		if (rest != end)
			alen = (size_t)(end - arg); /* "a b" is no room name */
		do_join(cx, c, arg, alen);
	} else if (verb_is(verb, vlen, "rooms")) {
		do_rooms(cx, c);
	} else if (verb_is(verb, vlen, "topic")) {
		do_topic(cx, c, p, (size_t)(end - p));
	} else if (verb_is(verb, vlen, "me")) {
		do_me(cx, c, p, (size_t)(end - p), cut);
	} else if (verb_is(verb, vlen, "msg")) {
		do_msg(cx, c, p, end, cut);
	} else if (verb_is(verb, vlen, "quit")) {
		snprintf(reason, reason_len, "%.*s", (int)(end - p), p);
		return true;
	} else if (verb_is(verb, vlen, "help")) {
		do_help(c);
	} else {
		msg_tell(c, msg_notice("unknown command /%.*s (try /help)",
		                       (int)(vlen < 64 ? vlen : 64), verb));
	}
	return false;
}

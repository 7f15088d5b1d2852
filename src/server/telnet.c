/* Telnet commands out of the input; see telnet.h. */
#include "config.h"

#include "telnet.h"

enum {
	DATA,   /* plain bytes */
	IAC,    /* after IAC */
	OPT_DO, /* after IAC DO: the option comes next (and so on) */
	OPT_DONT,
	OPT_WILL,
	OPT_WONT,
	SB,     /* inside a subnegotiation: skipped up to IAC SE */
	SB_IAC, /* after IAC inside one */
};

/* Refuse opt once: DO asks us to do it (we won't), WILL offers to do it
 * (we don't want it). */
static void
refuse(struct telnet *t, int verb, uint8_t opt, unsigned char *reply, size_t *rlen)
{
	unsigned bit = (verb == TELNET_DO ? 0u : 256u) + opt;

	if (t->answered[bit / 8] & (1u << (bit % 8)))
		return;
	t->answered[bit / 8] |= (uint8_t)(1u << (bit % 8));
	reply[(*rlen)++] = TELNET_IAC;
	reply[(*rlen)++] = verb == TELNET_DO ? TELNET_WONT : TELNET_DONT;
	reply[(*rlen)++] = opt;
}

size_t
telnet_filter(struct telnet *t, char *buf, size_t n, unsigned char *reply, size_t *rlen)
{
	size_t out = 0;

	for (size_t i = 0; i < n; i++) {
		uint8_t b = (uint8_t)buf[i];

		switch (t->state) {
		case DATA:
			if (b == TELNET_IAC)
				t->state = IAC;
			else
				buf[out++] = (char)b;
			break;
		case IAC:
			switch (b) {
			case TELNET_DO: t->state = OPT_DO; break;
			case TELNET_DONT: t->state = OPT_DONT; break;
			case TELNET_WILL: t->state = OPT_WILL; break;
			case TELNET_WONT: t->state = OPT_WONT; break;
			case TELNET_SB: t->state = SB; break;
			default:
				/* IAC IAC (a data byte 0xFF, no part of any
				 * text), NOP, GA, AYT, ...: dropped. */
				t->state = DATA;
				break;
			}
			break;
		case OPT_DO: refuse(t, TELNET_DO, b, reply, rlen); t->state = DATA; break;
		case OPT_WILL: refuse(t, TELNET_WILL, b, reply, rlen); t->state = DATA; break;
		case OPT_DONT: /* already what we do: nothing to say */
		case OPT_WONT: t->state = DATA; break;
		case SB:
			if (b == TELNET_IAC)
				t->state = SB_IAC;
			break;
		case SB_IAC:
			/* IAC SE ends it; IAC IAC is a 0xFF inside it. */
			t->state = b == TELNET_SE ? DATA : SB;
			break;
		default: t->state = DATA; break;
		}
	}
	return out;
}

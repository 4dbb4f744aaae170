/*
 * serve.c: requests in, replies out.
 *
 * Framing is done here, not by libmodbus: on TCP the MBAP header says how
 * long a frame is; on RTU the function code does (1..6: 8 bytes, 15/16:
 * 9 + byte count), the CRC is checked here and a frame that fails it is
 * skipped one byte at a time until one passes.  That lets one pty serve many
 * unit ids (libmodbus' RTU receive filters on its own slave id).
 *
 * Every request that survives is checked for a length that matches its
 * function code, so libmodbus never reads past the frame, and then answered
 * by modbus_reply() with the unit's own mapping.  The reply is captured
 * through a socketpair (the context's socket is pointed at it for the call)
 * so the injected faults can rewrite, cut, delay or drop it before it goes
 * to the real peer.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "sim.h"

#define RTU_MIN_FRAME 4          /* unit, function, CRC */
#define RTU_MAX_FRAME 256
#define TCP_HEADER 7

uint16_t sim_crc16(const uint8_t *p, size_t n)
{
	uint16_t crc = 0xffff;
	size_t i;
	int b;

	for (i = 0; i < n; i++) {
		crc ^= p[i];
		for (b = 0; b < 8; b++)
			crc = (crc & 1) ? (uint16_t) ((crc >> 1) ^ 0xa001) : (uint16_t) (crc >> 1);
	}
	return crc;
}

/* CRC over all but the last two bytes, which hold it low byte first. */
static bool crc_ok(const uint8_t *f, size_t len)
{
	uint16_t crc;

	if (len < RTU_MIN_FRAME)
		return false;
	crc = sim_crc16(f, len - 2);
	return f[len - 2] == (crc & 0xff) && f[len - 1] == (crc >> 8);
}

static void crc_put(uint8_t *f, size_t len)
{
	uint16_t crc = sim_crc16(f, len - 2);

	f[len - 2] = (uint8_t) (crc & 0xff);
	f[len - 1] = (uint8_t) (crc >> 8);
}

/*
 * The length of the RTU request starting at buf: 0 = need more bytes,
 * -1 = a function code we cannot frame.
 */
static long rtu_request_len(const uint8_t *buf, size_t len)
{
	if (len < 2)
		return 0;
	switch (buf[1]) {
	case 1: case 2: case 3: case 4: case 5: case 6:
		return 8;
	case 15: case 16:
		if (len < 7)
			return 0;
		return 9 + (long) buf[6];
	default:
		return -1;
	}
}

size_t rtu_frames(struct sim_model *m, const uint8_t *buf, size_t len, bool final,
		  frame_fn fn, void *arg)
{
	size_t pos = 0;
	bool skipping = false;

	while (len - pos >= RTU_MIN_FRAME) {
		const uint8_t *f = buf + pos;
		size_t avail = len - pos;
		long need = rtu_request_len(f, avail);

		if (need > 0 && (size_t) need <= avail) {
			if (crc_ok(f, (size_t) need)) {
				fn(arg, f, (size_t) need);
				pos += (size_t) need;
				skipping = false;
				continue;
			}
		} else if (need < 0 && final && avail <= RTU_MAX_FRAME && crc_ok(f, avail)) {
			/* a whole, valid frame with a function code we do not
			 * frame: serve_request answers "illegal function" */
			fn(arg, f, avail);
			pos += avail;
			skipping = false;
			continue;
		} else if (!final && need >= 0) {
			break;  /* wait for the rest of this frame */
		} else if (!final && need < 0) {
			/* unknown function: maybe garbage before a frame that
			 * is already here; else wait for the line to go quiet */
			bool later = false;
			size_t k;

			for (k = 1; k + RTU_MIN_FRAME <= avail && !later; k++) {
				long n2 = rtu_request_len(f + k, avail - k);

				later = n2 > 0 && (size_t) n2 <= avail - k && crc_ok(f + k, (size_t) n2);
			}
			if (!later)
				break;
		}
		/* not a frame here: skip a byte and resynchronise */
		if (!skipping)
			m->bad_frames++;
		skipping = true;
		pos++;
	}
	if (final && pos < len) {
		if (!skipping)
			m->bad_frames++;
		pos = len;
	}
	return pos;
}

long tcp_frames(struct sim_model *m, const uint8_t *buf, size_t len, frame_fn fn, void *arg)
{
	size_t pos = 0;

	while (len - pos >= TCP_HEADER) {
		const uint8_t *f = buf + pos;
		unsigned proto = (unsigned) f[2] << 8 | f[3];
		unsigned mlen = (unsigned) f[4] << 8 | f[5];

		if (proto != 0 || mlen < 2 || mlen > 254) {
			m->bad_frames++;
			return -1;
		}
		if (len - pos < 6 + (size_t) mlen)
			break;
		fn(arg, f, 6 + (size_t) mlen);
		pos += 6 + (size_t) mlen;
	}
	return (long) pos;
}

/* An exception reply built by hand (any code 1..255). */
static void build_exception(bool rtu, const uint8_t *req, uint8_t code, struct dbuf *out)
{
	uint8_t r[9];

	if (rtu) {
		r[0] = req[0];
		r[1] = (uint8_t) (req[1] | 0x80);
		r[2] = code;
		crc_put(r, 5);
		dbuf_add(out, r, 5);
	} else {
		r[0] = req[0];
		r[1] = req[1];
		r[2] = 0;
		r[3] = 0;
		r[4] = 0;
		r[5] = 3;
		r[6] = req[6];
		r[7] = (uint8_t) (req[7] | 0x80);
		r[8] = code;
		dbuf_add(out, r, 9);
	}
}

/*
 * 0 if the PDU (function code onwards, without CRC) is a well formed
 * request we serve, else the exception code to answer with.
 */
static uint8_t check_pdu(const uint8_t *pdu, size_t n)
{
	unsigned qty;

	switch (pdu[0]) {
	case 1: case 2: case 3: case 4: case 5: case 6:
		if (n != 5)
			return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
		/* quantities libmodbus would refuse only after sleeping its
		 * response timeout (it "flushes" the line first) */
		qty = (unsigned) pdu[3] << 8 | pdu[4];
		if (pdu[0] <= 2 && (qty < 1 || qty > MODBUS_MAX_READ_BITS))
			return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
		if ((pdu[0] == 3 || pdu[0] == 4) && (qty < 1 || qty > MODBUS_MAX_READ_REGISTERS))
			return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
		if (pdu[0] == 5 && qty != 0xff00 && qty != 0)
			return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
		return 0;
	case 15: case 16:
		if (n < 6 || n != 6 + (size_t) pdu[5])
			return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
		qty = (unsigned) pdu[3] << 8 | pdu[4];
		if (pdu[0] == 15 && (qty < 1 || qty > MODBUS_MAX_WRITE_BITS || pdu[5] != (qty + 7) / 8))
			return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
		if (pdu[0] == 16 && (qty < 1 || qty > MODBUS_MAX_WRITE_REGISTERS || pdu[5] != qty * 2))
			return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
		return 0;
	default:
		return MODBUS_EXCEPTION_ILLEGAL_FUNCTION;
	}
}

/* An "exception UNIT ADDR CODE" rule that covers this read, or 0. */
static uint8_t injected_exception(const struct sim_dev *d, const uint8_t *pdu)
{
	unsigned addr, qty;
	int i;

	if (pdu[0] < 1 || pdu[0] > 4 || d->f.nexc == 0)
		return 0;
	addr = (unsigned) pdu[1] << 8 | pdu[2];
	qty = (unsigned) pdu[3] << 8 | pdu[4];
	for (i = 0; i < d->f.nexc; i++)
		if (d->f.exc[i].addr >= addr && d->f.exc[i].addr < addr + qty)
			return d->f.exc[i].code;
	return 0;
}

/* modbus_reply() into the capture socketpair; the reply bytes to out. */
static void libmodbus_reply(modbus_t *ctx, int capture_fd[2], int unit, const uint8_t *frame,
			    size_t len, modbus_mapping_t *map, struct dbuf *out)
{
	int saved = modbus_get_socket(ctx);
	uint8_t rsp[MODBUS_MAX_ADU_LENGTH + 16];
	ssize_t n;

	modbus_set_socket(ctx, capture_fd[0]);
	modbus_set_slave(ctx, unit);
	modbus_reply(ctx, frame, (int) len, map);
	modbus_set_socket(ctx, saved);
	/* SOCK_SEQPACKET: one reply is one message */
	while ((n = recv(capture_fd[1], rsp, sizeof(rsp), MSG_DONTWAIT)) > 0)
		dbuf_add(out, rsp, (size_t) n);
}

/* The one-shot and persistent faults, applied to a reply in out. */
static void apply_faults(struct sim_model *m, struct sim_dev *d, bool rtu, struct dbuf *out)
{
	size_t uidx = rtu ? 0 : 6;
	uint8_t *r = (uint8_t *) out->p;

	if (d->f.garbage > 0) {
		size_t n = 1 + model_rand(m) % 64, i;

		d->f.garbage--;
		d->st.faults++;
		out->len = 0;
		for (i = 0; i < n; i++) {
			uint8_t b = (uint8_t) (model_rand(m) >> 56);

			dbuf_add(out, &b, 1);
		}
		return;
	}
	if (d->f.wrongunit > 0 && out->len > uidx) {
		d->f.wrongunit--;
		d->st.faults++;
		if (rtu) {
			r[0] = (uint8_t) (r[0] % 247 + 1);
			if (out->len >= RTU_MIN_FRAME)
				crc_put(r, out->len);
		} else {
			r[uidx] = (uint8_t) (r[uidx] + 1);
		}
	}
	if (d->f.badcrc > 0 && out->len >= (rtu ? 4u : 6u)) {
		d->f.badcrc--;
		d->st.faults++;
		if (rtu) {
			r[out->len - 2] ^= 0x5a;
			r[out->len - 1] ^= 0xa5;
		} else {
			/* MBAP: protocol id not 0 and a length that lies */
			unsigned l = ((unsigned) r[4] << 8 | r[5]) + 16;

			r[2] = 0xff;
			r[3] = 0xff;
			r[4] = (uint8_t) (l >> 8);
			r[5] = (uint8_t) l;
		}
	}
	if (d->f.truncate > 0 && out->len > 1) {
		d->f.truncate--;
		d->st.faults++;
		out->len /= 2;
	}
}

bool serve_request(struct sim_model *m, modbus_t *ctx, int capture_fd[2],
		   const uint8_t *frame, size_t len, struct dbuf *reply, unsigned *delay_ms)
{
	bool rtu = m->rtu;
	size_t hdr = rtu ? 1 : TCP_HEADER;
	size_t pdu_len = len - hdr - (rtu ? 2 : 0);
	const uint8_t *pdu = frame + hdr;
	int unit = frame[hdr - 1];
	struct sim_dev *d = m->by_unit[unit];
	bool changed = false;
	uint8_t code;

	*delay_ms = 0;
	reply->len = 0;
	if (d == NULL || (rtu && unit == 0) || pdu_len < 1) {
		m->ignored++;
		return false;
	}
	d->st.requests++;
	if (d->f.silent) {
		d->st.faults++;
		return false;
	}
	if ((code = check_pdu(pdu, pdu_len)) != 0) {
		build_exception(rtu, frame, code, reply);
	} else if ((code = injected_exception(d, pdu)) != 0) {
		d->st.faults++;
		build_exception(rtu, frame, code, reply);
	} else {
		libmodbus_reply(ctx, capture_fd, unit, frame, len, d->map, reply);
		if (reply->len > hdr && !(reply->p[hdr] & 0x80) && pdu[0] >= 5)
			changed = model_refresh(d);
	}
	if (reply->len == 0)
		return changed;
	if (reply->len > hdr && (reply->p[hdr] & 0x80))
		d->st.exceptions++;
	d->st.replies++;
	apply_faults(m, d, rtu, reply);
	if (d->f.delay_ms > 0) {
		d->st.faults++;
		*delay_ms = d->f.delay_ms;
	}
	return changed;
}

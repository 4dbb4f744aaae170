/*
 * mqtt.c: libmosquitto driven from the core poll() loop.
 *
 * Telemetry comes from the spool (spool.c), in seq order; at most
 * 'max_inflight' messages are published and waiting for PUBACK at a time,
 * and a message leaves the spool only on its PUBACK.  Retained state
 * (gateway and device status, meta) is published directly: it is
 * republished on every connect, so it needs no queue.
 *
 * libmosquitto has an outgoing queue of its own and resends its in-flight
 * messages after a reconnect.  We do not let it: when the connection is
 * lost the client object is destroyed and a fresh one made for the next
 * attempt, and the spool hands out everything unacknowledged again, oldest
 * first.  Two owners of one retry queue would resend in two orders; one
 * owner resends in one.  The broker may then see a message twice
 * (at-least-once); receivers drop duplicates by "seq".
 *
 * No threads: mosquitto_loop_read/_write/_misc are called by the core loop,
 * and callbacks only change this object's state.
 *
 * A connection that dies silently (a blackhole, a NAT that forgot it) is
 * noticed by our own deadline: nothing heard from the broker for 1.5 x
 * keepalive, the limit the MQTT spec gives the broker for a silent client
 * (3.1.1, 3.1.2.10).  libmosquitto's own check (mosquitto__check_keepalive,
 * lib/util_mosq.c in 2.0.11) takes up to 2 x keepalive: it sends PINGREQ
 * once nothing has come in for a keepalive, resets its "last message in"
 * time to that moment and gives up only when another full keepalive passes
 * without a PINGRESP (in whole seconds of its clock, so nearly 2 x keepalive
 * after the last packet of a busy connection).  On a healthy connection
 * something arrives at least every keepalive plus one round trip (PUBACKs,
 * or the PINGRESP to that PINGREQ), which leaves half a keepalive for the
 * PINGRESP, less the one second granularity of libmosquitto's clock.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>

#include "backoff.h"
#include "log.h"
#include "mqtt.h"
#include "spool.h"
#include "util.h"

#define CONNECT_TIMEOUT_MS 15000
#define SILENCE_LIMIT_MS(ka_s) ((int64_t) (ka_s) * 1500)   /* 1.5 x keepalive */

struct inflight {
	int mid;
	uint64_t seq;
};

struct mqtt {
	const struct conf *c;
	const struct mqtt_conf *mc;
	struct mosquitto *mosq;
	mqtt_connect_cb cb;
	void *cb_arg;
	char password[256];
	bool have_password;
	char will_topic[512];

	struct spool *sp;
	struct inflight *fl;  /* published, waiting for PUBACK */
	size_t nfl;

	enum { ST_IDLE, ST_CONNECTING, ST_CONNECTED } state;
	bool lost;            /* set by callbacks; handled in mqtt_tick() */
	int lost_rc;
	bool just_connected;
	bool was_connected;   /* for "lost"/"back" log lines */
	bool reported_down;
	int64_t down_since;
	int64_t connect_deadline;
	int64_t last_rx;      /* connected: when the broker last sent us anything */
	int64_t silent_ms;    /* how long it had been silent when we gave up; -1: still connecting */
	int64_t retry_at;
	unsigned attempts;
	char lib_error[256];  /* last error libmosquitto logged (TLS reasons) */

	struct mqtt_stats st;
	bool clock_ok;
	bool clock_wait_logged;
};

static int lib_init_count;

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
	struct mqtt *m = obj;

	(void) mosq;
	if (rc == 0) {
		m->state = ST_CONNECTED;
		m->just_connected = true;
	} else {
		m->lost = true;
		m->lost_rc = -rc;    /* negative: CONNACK refusal code */
	}
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
	struct mqtt *m = obj;

	(void) mosq;
	m->lost = true;
	if (!m->lost_rc)
		m->lost_rc = rc ? rc : MOSQ_ERR_CONN_LOST;
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid)
{
	struct mqtt *m = obj;

	(void) mosq;
	for (size_t i = 0; i < m->nfl; i++) {
		if (m->fl[i].mid == mid) {
			spool_ack(m->sp, m->fl[i].seq);
			m->fl[i] = m->fl[--m->nfl];
			m->st.acked++;
			return;
		}
	}
	/* a direct (retained state) publish: nothing to do */
}

static void on_log(struct mosquitto *mosq, void *obj, int level, const char *str)
{
	struct mqtt *m = obj;

	(void) mosq;
	if (level == MOSQ_LOG_ERR)
		strlcpy_(m->lib_error, str, sizeof(m->lib_error));
	log_debug("mqtt: libmosquitto: %s", str);
}

struct mqtt *mqtt_new(const struct conf *c, struct spool *sp, mqtt_connect_cb cb, void *arg)
{
	struct mqtt *m = calloc(1, sizeof(*m));

	if (!m) {
		log_err("mqtt: out of memory");
		return NULL;
	}
	if (lib_init_count++ == 0)
		mosquitto_lib_init();
	m->c = c;
	m->mc = &c->mqtt;
	m->cb = cb;
	m->cb_arg = arg;
	m->sp = sp;
	m->fl = calloc((size_t) m->mc->max_inflight, sizeof(*m->fl));
	if (!m->fl) {
		log_err("mqtt: out of memory");
		goto fail;
	}
	if (m->mc->password_file[0]) {
		int r = read_secret("mqtt-password", m->mc->password_file, m->password, sizeof(m->password));
		if (r < 0) {
			log_err("mqtt: password file '%s': %s", m->mc->password_file,
				r == -EFBIG ? "longer than 255 bytes" : strerror(-r));
			goto fail;
		}
		m->have_password = true;
	}
	snprintf(m->will_topic, sizeof(m->will_topic), "%s/%s/%s/status", m->mc->topic_prefix, c->site, c->id);
	m->state = ST_IDLE;
	m->down_since = mono_ms();
	return m;
fail:
	mqtt_free(m);
	return NULL;
}

static void client_destroy(struct mqtt *m)
{
	if (m->mosq) {
		mosquitto_destroy(m->mosq);
		m->mosq = NULL;
	}
}

static const char *reason(struct mqtt *m, int rc)
{
	static char buf[384];

	if (rc < 0) {
		/* CONNACK 4 (bad user name or password), 5 (not authorised): say where
		 * the credentials come from */
		if (-rc == 4 || -rc == 5) {
			snprintf(buf, sizeof(buf), "%s (check mqtt.username and mqtt.password_file%s)",
				 mosquitto_connack_string(-rc), m->mc->username[0] ? "" : ": none set");
			return buf;
		}
		return mosquitto_connack_string(-rc);
	}
	if (rc == MOSQ_ERR_KEEPALIVE) {
		/* libmosquitto 2.0.11's mosquitto_strerror() has no text for it; its own
		 * check also ends a connect attempt unanswered for a keepalive */
		if (m->silent_ms < 0)
			snprintf(buf, sizeof(buf), "no answer within the keepalive, %d s", m->mc->keepalive_s);
		else
			snprintf(buf, sizeof(buf), "nothing heard from the broker for %.1f s, keepalive %d s",
				 m->silent_ms / 1000.0, m->mc->keepalive_s);
		return buf;
	}
	if (rc == MOSQ_ERR_TLS && !m->lib_error[0] && m->state == ST_CONNECTED)
		return "TLS error on the open connection (libmosquitto's reason is logged with -v)";
	if (rc == MOSQ_ERR_TLS || rc == MOSQ_ERR_TLS_HANDSHAKE || (rc == MOSQ_ERR_ERRNO && m->lib_error[0])) {
		const char *s = m->lib_error[0] ? m->lib_error : "handshake failed";
		const char *p = strstr(s, "error:");
		/* "OpenSSL Error[0]: error:0A000086:SSL routines::certificate verify failed" */
		if (p && (p = strrchr(p, ':')))
			s = p + 1;
		snprintf(buf, sizeof(buf), "TLS: %s (check mqtt ca_file, the broker's certificate and host name)", s);
		return buf;
	}
	if (rc == MOSQ_ERR_ERRNO)
		return strerror(errno);
	return mosquitto_strerror(rc);
}

static int client_create(struct mqtt *m)
{
	const struct mqtt_conf *mc = m->mc;
	static const char offline[] = "{\"online\":false}";
	int r;

	m->mosq = mosquitto_new(mc->client_id, true, m);
	if (!m->mosq)
		return -errno;
	mosquitto_connect_callback_set(m->mosq, on_connect);
	mosquitto_disconnect_callback_set(m->mosq, on_disconnect);
	mosquitto_publish_callback_set(m->mosq, on_publish);
	mosquitto_log_callback_set(m->mosq, on_log);
	mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
	/* our outbox limits what is in flight; libmosquitto must not hold any back */
	mosquitto_max_inflight_messages_set(m->mosq, 0);
	r = mosquitto_will_set(m->mosq, m->will_topic, (int) strlen(offline), offline, mc->qos, true);
	if (r)
		goto fail;
	if (mc->username[0] || m->have_password) {
		r = mosquitto_username_pw_set(m->mosq, mc->username[0] ? mc->username : NULL,
					      m->have_password ? m->password : NULL);
		if (r)
			goto fail;
	}
	if (mc->ca_file[0]) {
		r = mosquitto_tls_set(m->mosq, mc->ca_file, NULL, mc->cert_file[0] ? mc->cert_file : NULL,
				      mc->key_file[0] ? mc->key_file : NULL, NULL);
		if (r)
			goto fail;
		/* 1 = SSL_VERIFY_PEER; host name checked too (tls_insecure stays false) */
		r = mosquitto_tls_opts_set(m->mosq, 1, NULL, NULL);
		if (r)
			goto fail;
		mosquitto_tls_insecure_set(m->mosq, false);
	}
	return 0;
fail:
	log_err("mqtt: cannot set up the client: %s", mosquitto_strerror(r));
	client_destroy(m);
	return -EINVAL;
}

static void schedule_retry(struct mqtt *m, int64_t now)
{
	int64_t d = backoff_jitter(m->mc->reconnect_min_ms, m->mc->reconnect_max_ms, m->attempts++, rand32());

	m->retry_at = now + d;
}

/* Connection gone (or never made): unsend what was in flight, drop the client. */
static void handle_lost(struct mqtt *m, int64_t now)
{
	int rc = m->lost_rc;
	size_t held = spool_held(m->sp);

	spool_rewind(m->sp);
	m->nfl = 0;
	client_destroy(m);
	m->lost = false;
	m->lost_rc = 0;
	schedule_retry(m, now);
	if (m->state == ST_CONNECTED || m->was_connected) {
		log_warn("mqtt: connection to %s:%d lost (%s); %zu messages held, reconnecting in %.1f s",
			 m->mc->host, m->mc->port, reason(m, rc), held, (m->retry_at - now) / 1000.0);
		m->was_connected = false;
		m->down_since = now;
		m->reported_down = true;
	} else if (!m->reported_down) {
		log_warn("mqtt: cannot connect to %s:%d (%s); %zu messages held, retrying in %.1f s",
			 m->mc->host, m->mc->port, reason(m, rc), held, (m->retry_at - now) / 1000.0);
		m->reported_down = true;
	} else {
		log_debug("mqtt: connect to %s:%d failed again (%s)", m->mc->host, m->mc->port, reason(m, rc));
	}
	m->lib_error[0] = '\0';
	m->state = ST_IDLE;
	m->st.connected = false;
}

static void try_connect(struct mqtt *m, int64_t now)
{
	int r;

	if (client_create(m) < 0) {
		schedule_retry(m, now);
		return;
	}
	m->state = ST_CONNECTING;
	m->connect_deadline = now + CONNECT_TIMEOUT_MS;
	r = mosquitto_connect_async(m->mosq, m->mc->host, m->mc->port, m->mc->keepalive_s);
	if (r != MOSQ_ERR_SUCCESS) {
		m->lost_rc = r;
		handle_lost(m, now);
	}
}

void mqtt_pump(struct mqtt *m)
{
	while (m->state == ST_CONNECTED && !m->lost && m->nfl < (size_t) m->mc->max_inflight) {
		const struct spool_msg *msg = spool_next(m->sp);
		int mid = 0, r;

		if (!msg)
			return;
		r = mosquitto_publish(m->mosq, &mid, msg->topic, (int) msg->len, msg->payload, m->mc->qos, false);
		if (r != MOSQ_ERR_SUCCESS) {
			/* the spool hands it out again after the reconnect */
			m->lost = true;
			m->lost_rc = r;
			return;
		}
		if (m->mc->qos == 0) {
			/* nothing will acknowledge it: handed to the socket is done */
			spool_ack(m->sp, msg->seq);
			m->st.acked++;
		} else {
			m->fl[m->nfl].mid = mid;
			m->fl[m->nfl].seq = msg->seq;
			m->nfl++;
		}
	}
}

bool mqtt_connected(const struct mqtt *m)
{
	return m->state == ST_CONNECTED && !m->lost;
}

void mqtt_set_clock_ok(struct mqtt *m, bool ok)
{
	m->clock_ok = ok;
}

bool mqtt_away(const struct mqtt *m)
{
	return m->reported_down;
}

int mqtt_publish_direct(struct mqtt *m, const char *topic, const char *payload, size_t len, bool retain)
{
	if (m->state != ST_CONNECTED || m->lost)
		return -ENOTCONN;
	return mosquitto_publish(m->mosq, NULL, topic, (int) len, payload, m->mc->qos, retain) ? -EIO : 0;
}

int mqtt_fd(struct mqtt *m)
{
	return m->mosq && m->state != ST_IDLE ? mosquitto_socket(m->mosq) : -1;
}

short mqtt_events(struct mqtt *m)
{
	if (!m->mosq || m->state == ST_IDLE)
		return 0;
	return POLLIN | (mosquitto_want_write(m->mosq) || m->state == ST_CONNECTING ? POLLOUT : 0);
}

void mqtt_io(struct mqtt *m, short revents)
{
	int r = MOSQ_ERR_SUCCESS;

	if (!m->mosq || m->state == ST_IDLE)
		return;
	if (revents & (POLLIN | POLLERR | POLLHUP))
		r = mosquitto_loop_read(m->mosq, 1);
	if (r == MOSQ_ERR_SUCCESS && (revents & POLLIN))
		m->last_rx = mono_ms();
	if (r == MOSQ_ERR_SUCCESS && (revents & POLLOUT) && m->mosq)
		r = mosquitto_loop_write(m->mosq, 1);
	if (r != MOSQ_ERR_SUCCESS) {
		m->lost = true;
		if (!m->lost_rc)
			m->lost_rc = r;
	}
}

int64_t mqtt_tick(struct mqtt *m, int64_t now)
{
	int64_t next = 1000;

	if (m->state != ST_IDLE && m->mosq && !m->lost) {
		int r = mosquitto_loop_misc(m->mosq);
		if (r != MOSQ_ERR_SUCCESS && r != MOSQ_ERR_NO_CONN) {
			m->lost = true;
			m->lost_rc = r;
			m->silent_ms = m->state == ST_CONNECTED ? now - m->last_rx : -1;
		}
	}
	if (m->state == ST_CONNECTED && !m->lost && !m->just_connected &&
	    now - m->last_rx >= SILENCE_LIMIT_MS(m->mc->keepalive_s)) {
		m->lost = true;
		m->lost_rc = MOSQ_ERR_KEEPALIVE;
		m->silent_ms = now - m->last_rx;
	}
	if (m->state == ST_CONNECTING && !m->lost && now >= m->connect_deadline) {
		m->lost = true;
		m->lost_rc = MOSQ_ERR_ERRNO;
		errno = ETIMEDOUT;
	}
	if (m->lost)
		handle_lost(m, now);
	if (m->state == ST_IDLE && m->mc->ca_file[0] && !m->clock_ok) {
		if (!m->clock_wait_logged)
			log_notice("mqtt: waiting for the clock to be synchronised before connecting with TLS "
				   "(certificates cannot be checked against a wrong date)");
		m->clock_wait_logged = true;
		return 1000;
	}
	if (m->state == ST_IDLE) {
		if (now >= m->retry_at) {
			try_connect(m, now);
		}
		if (m->state == ST_IDLE)
			return m->retry_at - now > 0 ? m->retry_at - now : 0;
	}
	if (m->just_connected) {
		m->just_connected = false;
		/* libmosquitto formats a line for every packet it sends or reads
		 * (malloc and vsnprintf, a tenth of the daemon's instructions under
		 * load) whenever a log callback is set; the lines that matter, why a
		 * connection or handshake failed, come before this point, and the
		 * next attempt makes a new client with the callback set again */
		if (!log_enabled(LOG_DEBUG_))
			mosquitto_log_callback_set(m->mosq, NULL);
		m->attempts = 0;
		m->last_rx = now;
		m->st.connects++;
		m->st.connected = true;
		if (m->reported_down)
			log_notice("mqtt: connected to %s:%d after %.0f s away; sending %zu held messages",
				   m->mc->host, m->mc->port, (now - m->down_since) / 1000.0, spool_held(m->sp));
		else
			log_info("mqtt: connected to %s:%d", m->mc->host, m->mc->port);
		m->reported_down = false;
		m->was_connected = true;
		if (m->cb)
			m->cb(m->cb_arg);
	}
	mqtt_pump(m);
	if (m->state == ST_CONNECTING)
		next = m->connect_deadline - now;
	else if (m->state == ST_CONNECTED && m->last_rx + SILENCE_LIMIT_MS(m->mc->keepalive_s) - now < next)
		next = m->last_rx + SILENCE_LIMIT_MS(m->mc->keepalive_s) - now;
	return next < 1000 ? (next > 0 ? next : 0) : 1000;
}

void mqtt_shutdown(struct mqtt *m, const char *status_topic, const char *last, int wait_ms)
{
	int64_t end = mono_ms() + wait_ms;

	if (m->state == ST_CONNECTED && !m->lost) {
		mosquitto_publish(m->mosq, NULL, status_topic, (int) strlen(last), last, m->mc->qos, true);
		/* let the outbox drain a little, then say goodbye */
		mqtt_pump(m);
		while (mono_ms() < end && !m->lost && m->mosq && (m->nfl > 0 || mosquitto_want_write(m->mosq))) {
			struct pollfd p = { .fd = mosquitto_socket(m->mosq), .events = mqtt_events(m) };
			if (poll(&p, 1, 100) > 0)
				mqtt_io(m, p.revents);
			mosquitto_loop_misc(m->mosq);
			mqtt_pump(m);
		}
		if (m->mosq && !m->lost) {
			mosquitto_disconnect(m->mosq);
			/* push the DISCONNECT out before the socket closes */
			mosquitto_loop_write(m->mosq, 1);
		}
	}
	client_destroy(m);
	m->state = ST_IDLE;
}

void mqtt_get_stats(const struct mqtt *m, struct mqtt_stats *ret)
{
	*ret = m->st;
	ret->queued = spool_held(m->sp);
	ret->dropped = spool_dropped(m->sp);
}

void mqtt_rebind(struct mqtt *m, const struct conf *c)
{
	m->c = c;
	m->mc = &c->mqtt;
}

void mqtt_free(struct mqtt *m)
{
	if (!m)
		return;
	client_destroy(m);
	free(m->fl);
	explicit_bzero(m->password, sizeof(m->password));   /* memset() before free() may be optimised away */
	free(m);
	if (--lib_init_count == 0)
		mosquitto_lib_cleanup();
}

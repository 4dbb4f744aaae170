/*
 * uplink.c: POSTs batches of closed windows to the platform over HTTPS.
 *
 * One batch is in flight at a time, on one reused easy handle inside a
 * multi handle; libcurl tells us which sockets to watch and when its timer
 * is due (CURLMOPT_SOCKETFUNCTION, CURLMOPT_TIMERFUNCTION) and the core's
 * poll() loop drives it with curl_multi_socket_action(), so a slow
 * platform never holds up MQTT or the buses.  Batches come from the store,
 * which forms each one once and keeps its windows and its key across
 * retries and restarts: the Idempotency-Key a receiver sees for a batch
 * never changes.  The body is built again for every attempt rather than
 * kept, since a batch the store dropped in the meantime (size cap) must not
 * be sent.
 *
 * Answers: 2xx deletes the batch; other 4xx moves it to the dead letters
 * (the request itself is wrong, resending it cannot help); 408, 429, 5xx,
 * anything else and every transport error (refused, timeout, TLS) is
 * retried after a full-jitter back-off that never undercuts Retry-After.
 * One sequential pipe keeps batches in order and costs nothing on the thin
 * links these gateways live on, where parallel uploads would only compete.
 *
 * The log gets transitions, not attempts: the first failure (with libcurl's
 * own words for it, CURLOPT_ERRORBUFFER) and the recovery, each with the
 * backlog; every dead letter, with the status and the start of the answer.
 * The token is read once, kept only in the header list, wiped on free and
 * never logged; log lines show the URL without user info or query.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#define ZLIB_CONST
#include <zlib.h>

#include "backoff.h"
#include "log.h"
#include "payload.h"
#include "uplink.h"
#include "util.h"

#define IDLE_WAIT_MS 60000
#define DOWN_AFTER 3             /* failed attempts in a row before the state reads "down" */
#define TOKEN_MAX 4096

struct sock {
	curl_socket_t fd;
	short events;
};

struct uplink {
	struct uplink_conf uc;
	char site[CONF_NAME_MAX], id[CONF_NAME_MAX];
	char where[600];             /* the URL for log lines */
	char *auth;                  /* "Authorization: Bearer ..." or NULL; secret */
	struct store *s;
	bool curl_ready;             /* curl_global_init() done */
	CURLM *multi;
	CURL *easy;
	char errbuf[CURL_ERROR_SIZE];
	struct sock socks[UPLINK_MAX_FDS];
	int nsocks;
	int64_t timer_at;            /* libcurl's timer, mono ms; -1 when unset */

	bool busy;                   /* a transfer is in flight */
	bool kicked;                 /* windows may be waiting in the store */
	int64_t retry_at;            /* no attempt before this, mono ms */
	struct store_batch batch;
	struct jbuf body;
	unsigned char *gz;
	struct curl_slist *headers;
	char answer[UPLINK_ANSWER_MAX + 1];
	size_t answer_len;

	bool clock_ok;               /* the clock is trusted: TLS can be checked */
	bool clock_wait_logged;
	unsigned failures;           /* attempts failed in a row */
	bool reported_down;
	struct uplink_stats st;
};

enum uplink_verdict uplink_verdict(long status)
{
	if (status >= 200 && status <= 299)
		return UPLINK_ACK;
	if (status == 408 || status == 429)
		return UPLINK_RETRY;
	if (status >= 400 && status <= 499)
		return UPLINK_DEAD;
	return UPLINK_RETRY;
}

static int64_t sec_to_ms(int64_t s)
{
	if (s <= 0)
		return 0;
	return s > INT64_MAX / 1000 ? INT64_MAX : s * 1000;
}

int64_t uplink_retry_after_ms(const char *value, time_t now_wall_s)
{
	const char *p = value, *end;
	bool neg = false;
	int64_t secs = 0;
	char date[64];
	time_t t;
	size_t len;

	while (*p == ' ' || *p == '\t')
		p++;
	end = p + strlen(p);
	while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
		end--;
	if (end == p)
		return -1;
	if (*p == '-' || *p == '+' || (*p >= '0' && *p <= '9')) {
		const char *d = p;

		if (*d == '-' || *d == '+')
			neg = *d++ == '-';
		if (d == end)
			return -1;
		for (; d < end; d++) {
			if (*d < '0' || *d > '9')
				break;
			if (secs < INT64_MAX / 1000)
				secs = secs * 10 + (*d - '0');
		}
		if (d == end)
			return neg ? 0 : sec_to_ms(secs);
		/* not a number after all: a date such as "1 Jan 2030 ..." */
	}
	len = (size_t) (end - p);
	if (len >= sizeof(date))
		return -1;
	memcpy(date, p, len);
	date[len] = '\0';
	t = curl_getdate(date, NULL);
	if (t == -1)
		return -1;
	return t <= now_wall_s ? 0 : sec_to_ms((int64_t) t - (int64_t) now_wall_s);
}

int64_t uplink_retry_delay(int64_t base_ms, int64_t max_ms, unsigned attempt, uint32_t rnd,
			   int64_t retry_after_ms)
{
	int64_t d = backoff_full_jitter(base_ms, max_ms, attempt, rnd);

	if (retry_after_ms >= 0) {
		int64_t ra = retry_after_ms < max_ms ? retry_after_ms : max_ms;

		if (ra > d)
			d = ra;
	}
	return d;
}

/* ---- libcurl callbacks ---- */

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp)
{
	struct uplink *u = arg;
	int i;

	(void) easy;
	(void) sockp;
	for (i = 0; i < u->nsocks && u->socks[i].fd != fd; i++)
		;
	if (what == CURL_POLL_REMOVE) {
		if (i < u->nsocks)
			u->socks[i] = u->socks[--u->nsocks];
		return 0;
	}
	if (i == u->nsocks) {
		if (u->nsocks == UPLINK_MAX_FDS)
			return -1;      /* cannot happen with one transfer; libcurl fails it */
		u->nsocks++;
	}
	u->socks[i].fd = fd;
	u->socks[i].events = (short) ((what & CURL_POLL_IN ? POLLIN : 0) | (what & CURL_POLL_OUT ? POLLOUT : 0));
	return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *arg)
{
	struct uplink *u = arg;

	(void) multi;
	u->timer_at = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
	return 0;
}

/* The answer: the first UPLINK_ANSWER_MAX bytes are kept, the rest read and dropped. */
static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct uplink *u = arg;
	size_t len = size * n, room = UPLINK_ANSWER_MAX - u->answer_len;

	if (room > len)
		room = len;
	memcpy(u->answer + u->answer_len, p, room);
	u->answer_len += room;
	u->answer[u->answer_len] = '\0';
	return len;
}

/* ---- set-up ---- */

static void headers_free(struct uplink *u)
{
	/* one entry holds the token */
	for (struct curl_slist *l = u->headers; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(u->headers);
	u->headers = NULL;
}

void uplink_free(struct uplink *u)
{
	if (!u)
		return;
	if (u->busy)
		curl_multi_remove_handle(u->multi, u->easy);
	if (u->easy)
		curl_easy_cleanup(u->easy);
	if (u->multi)
		curl_multi_cleanup(u->multi);
	headers_free(u);
	store_batch_done(&u->batch);
	jbuf_done(&u->body);
	free(u->gz);
	if (u->auth) {
		explicit_bzero(u->auth, strlen(u->auth));
		free(u->auth);
	}
	if (u->curl_ready)
		curl_global_cleanup();
	free(u);
}

/* u->where from the URL; checks the scheme.  Logs and returns -EINVAL when unusable. */
static int check_url(struct uplink *u)
{
	CURLU *h = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	CURLUcode rc;
	int r = -EINVAL;

	if (!h) {
		log_err("uplink: out of memory");
		return -ENOMEM;
	}
	rc = curl_url_set(h, CURLUPART_URL, u->uc.url, 0);
	if (rc != CURLUE_OK) {
		log_err("uplink: url is not usable: %s", curl_url_strerror(rc));
		goto out;
	}
	if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
		log_err("uplink: url is not usable: no host");
		goto out;
	}
	(void) curl_url_get(h, CURLUPART_PORT, &port, CURLU_NO_DEFAULT_PORT);
	snprintf(u->where, sizeof(u->where), "%s://%s%s%s%s", scheme, host, port ? ":" : "", port ? port : "", path);
	if (strcmp(scheme, "http") == 0 && u->uc.allow_insecure) {
		log_warn("uplink: %s: plain http allowed by allow_insecure: the token and the data "
			 "travel unencrypted and the platform is not authenticated", u->where);
	} else if (strcmp(scheme, "https") != 0) {
		log_err("uplink: %s: only https:// is supported (http:// needs allow_insecure = true)", u->where);
		goto out;
	}
	r = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(h);
	return r;
}

/* The bearer token, if any, into u->auth.  Logs and returns negative errno on failure. */
static int read_token(struct uplink *u)
{
	char tok[TOKEN_MAX], path[CONF_PATH_MAX + 32];
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	const char *from = NULL;
	int n = -ENOENT, r = -EINVAL;

	if (dir && dir[0]) {
		snprintf(path, sizeof(path), "%s/platform-token", dir);
		from = path;
		n = read_secret_file(path, tok, sizeof(tok));
	}
	if (n == -ENOENT && u->uc.token_file[0]) {
		from = u->uc.token_file;
		n = read_secret_file(from, tok, sizeof(tok));
	}
	if (!from || (n == -ENOENT && from == path))
		return 0;          /* no token: mutual TLS, or an open platform */
	if (n < 0) {
		log_err("uplink: token file '%s': %s", from, n == -EFBIG ? "too long" : strerror(-n));
		goto out;
	}
	for (int i = 0; i < n; i++)
		if ((unsigned char) tok[i] < 0x20 || tok[i] == 0x7f)
			n = -1;
	if (n <= 0) {
		log_err("uplink: token file '%s': %s", from, n == 0 ? "empty" : "not a single line of text");
		goto out;
	}
	r = asprintf(&u->auth, "Authorization: Bearer %s", tok) < 0 ? -ENOMEM : 0;
	if (r < 0) {
		u->auth = NULL;
		log_err("uplink: out of memory");
	}
out:
	explicit_bzero(tok, sizeof(tok));
	return r;
}

static int check_file(const char *what, const char *path)
{
	if (path[0] && access(path, R_OK) < 0) {
		log_err("uplink: %s '%s': %s", what, path, strerror(errno));
		return -errno;
	}
	return 0;
}

struct uplink *uplink_new(const struct conf *c, struct store *s)
{
	struct uplink *u = calloc(1, sizeof(*u));
	const struct uplink_conf *uc = &c->uplink;
	bool bad = false;

	if (!u) {
		log_err("uplink: out of memory");
		return NULL;
	}
	u->uc = *uc;
	strlcpy_(u->site, c->site, sizeof(u->site));
	strlcpy_(u->id, c->id, sizeof(u->id));
	u->s = s;
	u->timer_at = -1;
	u->kicked = true;          /* a backlog from before the start goes out first */
	u->st.state = "ok";
	if (check_url(u) < 0 || check_file("ca_file", uc->ca_file) < 0 ||
	    check_file("cert_file", uc->cert_file) < 0 || check_file("key_file", uc->key_file) < 0 ||
	    read_token(u) < 0)
		goto fail;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_err("uplink: cannot initialise libcurl");
		goto fail;
	}
	u->curl_ready = true;
	u->multi = curl_multi_init();
	u->easy = curl_easy_init();
	if (!u->multi || !u->easy) {
		log_err("uplink: out of memory");
		goto fail;
	}
	curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
	curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);

	/* verification is not configurable: never off */
	bad |= curl_easy_setopt(u->easy, CURLOPT_URL, uc->url) != CURLE_OK;
	bad |= curl_easy_setopt(u->easy, CURLOPT_PROTOCOLS_STR, uc->allow_insecure ? "http,https" : "https") != CURLE_OK;
	bad |= curl_easy_setopt(u->easy, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(u->easy, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
	if (uc->ca_file[0])
		bad |= curl_easy_setopt(u->easy, CURLOPT_CAINFO, uc->ca_file) != CURLE_OK;
	if (uc->cert_file[0])
		bad |= curl_easy_setopt(u->easy, CURLOPT_SSLCERT, uc->cert_file) != CURLE_OK;
	if (uc->key_file[0])
		bad |= curl_easy_setopt(u->easy, CURLOPT_SSLKEY, uc->key_file) != CURLE_OK;
	/* libcurl 7.88 caches a TLS session before it checks the host name, so
	 * a platform whose certificate was fixed would be resumed with the old
	 * one and refused again; batches are minutes apart, resumption buys nothing */
	bad |= curl_easy_setopt(u->easy, CURLOPT_SSL_SESSIONID_CACHE, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(u->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	if (bad) {
		log_err("uplink: %s: libcurl refused the URL or TLS settings", u->where);
		goto fail;
	}
	curl_easy_setopt(u->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(u->easy, CURLOPT_USERAGENT, "agrigw/" AGRIGW_VERSION);
	curl_easy_setopt(u->easy, CURLOPT_CONNECTTIMEOUT_MS, (long) uc->connect_timeout_ms);
	curl_easy_setopt(u->easy, CURLOPT_TIMEOUT_MS, (long) uc->timeout_ms);
	curl_easy_setopt(u->easy, CURLOPT_LOW_SPEED_LIMIT, (long) uc->low_speed_limit);
	curl_easy_setopt(u->easy, CURLOPT_LOW_SPEED_TIME, (long) uc->low_speed_time_s);
	curl_easy_setopt(u->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(u->easy, CURLOPT_ERRORBUFFER, u->errbuf);
	curl_easy_setopt(u->easy, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(u->easy, CURLOPT_WRITEDATA, u);
	log_info("uplink: %s%s%s%s", u->where, u->auth ? ", bearer token" : "",
		 uc->cert_file[0] ? ", client certificate" : "", uc->gzip ? ", gzip" : "");
	return u;
fail:
	uplink_free(u);
	return NULL;
}

/* ---- one attempt ---- */

static uint64_t backlog(const struct uplink *u)
{
	struct store_stats ss;

	store_get_stats(u->s, &ss);
	return ss.win_rows;
}

/* gzip (RFC 1952) of the body into u->gz; returns its length, or 0 when that failed. */
static size_t compress_body(struct uplink *u)
{
	z_stream z = { 0 };
	size_t len = 0;

	free(u->gz);
	u->gz = NULL;
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return 0;
	z.avail_out = (uInt) deflateBound(&z, (uLong) u->body.len);
	u->gz = malloc(z.avail_out);
	if (u->gz) {
		z.next_in = (const Bytef *) u->body.s;
		z.avail_in = (uInt) u->body.len;
		z.next_out = u->gz;
		if (deflate(&z, Z_FINISH) == Z_STREAM_END)
			len = z.total_out;
	}
	deflateEnd(&z);
	return len;
}

static void recovered(struct uplink *u)
{
	if (u->reported_down)
		log_notice("uplink: %s: platform reachable again after %u failed attempt%s; %llu windows waiting",
			   u->where, u->failures, u->failures == 1 ? "" : "s", (unsigned long long) backlog(u));
	u->reported_down = false;
	u->failures = 0;
	u->st.state = "ok";
}

static void retry(struct uplink *u, int64_t now, const char *cause, int64_t retry_after_ms)
{
	int64_t d = uplink_retry_delay(u->uc.backoff_base_ms, u->uc.backoff_max_ms, u->failures, rand32(),
				       retry_after_ms);

	if (u->failures < UINT_MAX)
		u->failures++;
	u->st.retries++;
	u->st.state = u->failures >= DOWN_AFTER ? "down" : "retrying";
	u->retry_at = now + d;
	log_msg(u->reported_down ? LOG_DEBUG_ : LOG_WARNING_, "uplink: %s: %s; %llu windows waiting, retrying in %.1f s",
		u->where, cause, (unsigned long long) backlog(u), d / 1000.0);
	u->reported_down = true;
}

/* Log-safe copy of the answer: one line, printable ASCII. */
static void printable(char *dst, const char *src, size_t size)
{
	size_t i;

	for (i = 0; src[i] && i + 1 < size; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : ' ';
	dst[i] = '\0';
}

static void finish(struct uplink *u, CURLcode code)
{
	int64_t now = mono_ms();
	char cause[CURL_ERROR_SIZE + 128], answer[UPLINK_ANSWER_MAX + 1];
	struct curl_header *h;
	long status = 0;
	int r;

	if (code != CURLE_OK) {
		const char *why = u->errbuf[0] ? u->errbuf : curl_easy_strerror(code);
		const char *hint = "";

		if (code == CURLE_PEER_FAILED_VERIFICATION)
			hint = " (check uplink.ca_file, the platform's certificate and its host name)";
		else if (code == CURLE_SSL_CACERT_BADFILE)
			hint = " (check uplink.ca_file)";
		else if (code == CURLE_SSL_CERTPROBLEM)
			hint = " (check uplink.cert_file and key_file)";
		snprintf(cause, sizeof(cause), "%s%s", why, hint);
		u->st.last_status = 0;
		retry(u, now, cause, -1);
		goto done;
	}
	curl_easy_getinfo(u->easy, CURLINFO_RESPONSE_CODE, &status);
	u->st.last_status = status;
	switch (uplink_verdict(status)) {
	case UPLINK_ACK:
		r = store_batch_delete(u->s, u->batch.id);
		if (r < 0)    /* the store logged it; the batch goes again under the same key */
			u->retry_at = now + u->uc.backoff_base_ms;
		u->st.batches_ok++;
		u->st.windows_sent += u->batch.n;
		recovered(u);
		break;
	case UPLINK_DEAD:
		printable(answer, u->answer, sizeof(answer));
		log_warn("uplink: %s: batch %s (%zu windows) refused with HTTP %ld: \"%s\"; kept as a dead letter, "
			 "not retried", u->where, u->batch.key, u->batch.n, status, answer);
		if (store_batch_dead(u->s, u->batch.id, status, u->answer) < 0)
			u->retry_at = now + u->uc.backoff_base_ms;
		u->st.dead_letters++;
		recovered(u);
		break;
	case UPLINK_RETRY:
		snprintf(cause, sizeof(cause), "HTTP %ld%s", status,
			 status >= 300 && status <= 399 ? " (redirects are not followed: check uplink.url)" : "");
		if (curl_easy_header(u->easy, "Retry-After", 0, CURLH_HEADER, -1, &h) == CURLHE_OK)
			retry(u, now, cause, uplink_retry_after_ms(h->value, time(NULL)));
		else
			retry(u, now, cause, -1);
		break;
	}
done:
	u->kicked = true;
	store_batch_done(&u->batch);
	headers_free(u);
	free(u->gz);
	u->gz = NULL;
}

static void check_done(struct uplink *u)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(u->multi, &left))) {
		if (m->msg != CURLMSG_DONE || m->easy_handle != u->easy)
			continue;
		CURLcode code = m->data.result;

		curl_multi_remove_handle(u->multi, u->easy);
		u->busy = false;
		finish(u, code);
	}
}

static bool add_header(struct uplink *u, const char *line)
{
	struct curl_slist *l = curl_slist_append(u->headers, line);

	if (l)
		u->headers = l;
	return l != NULL;
}

static void start(struct uplink *u, int64_t now)
{
	char key[sizeof(u->batch.key) + 32];
	size_t gz_len = 0;
	int r;

	r = store_batch_next(u->s, (size_t) u->uc.batch_max_items, (size_t) u->uc.batch_max_bytes, &u->batch);
	if (r <= 0) {
		if (r == 0)
			u->kicked = false;
		else              /* the store logged it */
			u->retry_at = now + u->uc.backoff_base_ms;
		return;
	}
	jbuf_reset(&u->body);
	jbuf_puts(&u->body, "{\"gateway\":");
	jbuf_string(&u->body, u->id);
	jbuf_puts(&u->body, ",\"site\":");
	jbuf_string(&u->body, u->site);
	jbuf_puts(&u->body, ",\"batch\":");
	jbuf_string(&u->body, u->batch.key);
	jbuf_puts(&u->body, ",\"windows\":[");
	jbuf_puts(&u->body, u->batch.items);
	jbuf_puts(&u->body, "]}");
	if (u->uc.gzip && !u->body.failed)
		gz_len = compress_body(u);
	snprintf(key, sizeof(key), "Idempotency-Key: %s", u->batch.key);
	if (u->body.failed || !add_header(u, "Content-Type: application/json") || !add_header(u, key) ||
	    (u->auth && !add_header(u, u->auth)) || (gz_len && !add_header(u, "Content-Encoding: gzip")) ||
	    !add_header(u, "Expect:")) {
		store_batch_done(&u->batch);
		headers_free(u);
		retry(u, now, "out of memory", -1);
		return;
	}
	curl_easy_setopt(u->easy, CURLOPT_HTTPHEADER, u->headers);
	curl_easy_setopt(u->easy, CURLOPT_POSTFIELDS, gz_len ? (const char *) u->gz : u->body.s);
	curl_easy_setopt(u->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) (gz_len ? gz_len : u->body.len));
	u->errbuf[0] = '\0';
	u->answer_len = 0;
	u->answer[0] = '\0';
	if (curl_multi_add_handle(u->multi, u->easy) != CURLM_OK) {
		store_batch_done(&u->batch);
		headers_free(u);
		retry(u, now, "libcurl refused the transfer", -1);
		return;
	}
	u->busy = true;
}

/* ---- the loop's side ---- */

void uplink_kick(struct uplink *u)
{
	u->kicked = true;
}

int uplink_pollfds(struct uplink *u, struct pollfd *pfd, int max)
{
	int n = 0;

	for (int i = 0; i < u->nsocks && n < max; i++)
		if (u->socks[i].events)
			pfd[n++] = (struct pollfd) { .fd = u->socks[i].fd, .events = u->socks[i].events };
	return n;
}

void uplink_io(struct uplink *u, const struct pollfd *pfd, int n)
{
	int running;

	for (int i = 0; i < n; i++) {
		int mask = 0;

		if (pfd[i].revents & (POLLIN | POLLHUP))
			mask |= CURL_CSELECT_IN;
		if (pfd[i].revents & POLLOUT)
			mask |= CURL_CSELECT_OUT;
		if (pfd[i].revents & (POLLERR | POLLNVAL))
			mask |= CURL_CSELECT_ERR;
		if (mask)
			curl_multi_socket_action(u->multi, pfd[i].fd, mask, &running);
	}
	check_done(u);
}

int64_t uplink_tick(struct uplink *u, int64_t now_mono_ms)
{
	int64_t wait = IDLE_WAIT_MS;
	int running;

	if (u->timer_at >= 0 && now_mono_ms >= u->timer_at) {
		u->timer_at = -1;
		curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
		check_done(u);
	}
	if (!u->busy && u->kicked && !u->clock_ok) {
		if (!u->clock_wait_logged)
			log_notice("uplink: waiting for the clock to be synchronised before sending "
				   "(certificates cannot be checked against a wrong date)");
		u->clock_wait_logged = true;
	} else if (!u->busy && u->kicked && now_mono_ms >= u->retry_at) {
		start(u, now_mono_ms);
	}
	if (u->timer_at >= 0 && u->timer_at - now_mono_ms < wait)
		wait = u->timer_at - now_mono_ms;
	if (!u->busy && u->kicked && u->clock_ok && u->retry_at - now_mono_ms < wait)
		wait = u->retry_at - now_mono_ms;
	return wait < 0 ? 0 : wait;
}

void uplink_set_clock_ok(struct uplink *u, bool ok)
{
	u->clock_ok = ok;
}

void uplink_get_stats(const struct uplink *u, struct uplink_stats *ret)
{
	*ret = u->st;
	ret->backlog = backlog(u);
}

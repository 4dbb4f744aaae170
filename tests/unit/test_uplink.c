/*
 * test_uplink.c: the uplink's pure parts (answers, Retry-After, delays) and
 * what uplink_new() checks and reads.  Includes uplink.c to reach its
 * statics; transfers themselves are tested in tests/integration/test_uplink.py.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "../../src/uplink.c"

static char dir[64];

static void put_file(const char *name, const char *text)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void test_verdict(void)
{
	CHECK(uplink_verdict(200) == UPLINK_ACK);
	CHECK(uplink_verdict(201) == UPLINK_ACK);
	CHECK(uplink_verdict(204) == UPLINK_ACK);
	CHECK(uplink_verdict(299) == UPLINK_ACK);
	CHECK(uplink_verdict(400) == UPLINK_DEAD);
	CHECK(uplink_verdict(401) == UPLINK_DEAD);
	CHECK(uplink_verdict(403) == UPLINK_DEAD);
	CHECK(uplink_verdict(413) == UPLINK_DEAD);
	CHECK(uplink_verdict(422) == UPLINK_DEAD);
	CHECK(uplink_verdict(499) == UPLINK_DEAD);
	CHECK(uplink_verdict(408) == UPLINK_RETRY);
	CHECK(uplink_verdict(429) == UPLINK_RETRY);
	CHECK(uplink_verdict(500) == UPLINK_RETRY);
	CHECK(uplink_verdict(503) == UPLINK_RETRY);
	CHECK(uplink_verdict(599) == UPLINK_RETRY);
	CHECK(uplink_verdict(301) == UPLINK_RETRY);
	CHECK(uplink_verdict(0) == UPLINK_RETRY);
}

static void test_retry_after(void)
{
	time_t now = curl_getdate("Wed, 21 Oct 2015 07:28:00 GMT", NULL);

	CHECK(now > 0);
	CHECK(uplink_retry_after_ms("120", now) == 120000);
	CHECK(uplink_retry_after_ms(" 5 \r\n", now) == 5000);
	CHECK(uplink_retry_after_ms("+7", now) == 7000);
	CHECK(uplink_retry_after_ms("0", now) == 0);
	CHECK(uplink_retry_after_ms("-3", now) == 0);
	CHECK(uplink_retry_after_ms("-99999999999999999999999", now) == 0);
	CHECK(uplink_retry_after_ms("99999999999999999999999", now) == INT64_MAX);
	CHECK(uplink_retry_after_ms("9223372036854775", now) == 9223372036854775000LL);
	CHECK(uplink_retry_after_ms("9223372036854776", now) == INT64_MAX);
	CHECK(uplink_retry_after_ms("Wed, 21 Oct 2015 07:28:30 GMT", now) == 30000);
	CHECK(uplink_retry_after_ms("Wednesday, 21-Oct-15 08:28:00 GMT", now) == 3600000);  /* RFC 850 */
	CHECK(uplink_retry_after_ms("Wed Oct 21 07:29:00 2015", now) == 60000);            /* asctime */
	CHECK(uplink_retry_after_ms("Tue, 20 Oct 2015 07:28:00 GMT", now) == 0);
	CHECK(uplink_retry_after_ms("", now) == -1);
	CHECK(uplink_retry_after_ms("  ", now) == -1);
	CHECK(uplink_retry_after_ms("-", now) == -1);
	CHECK(uplink_retry_after_ms("soon", now) == -1);
	CHECK(uplink_retry_after_ms("12 parsecs", now) == -1);
}

static void test_retry_delay(void)
{
	/* full jitter: anywhere in [0, min(base * 2^attempt, max)], both ends reachable */
	for (unsigned a = 0; a < 70; a++) {
		int64_t cap = backoff_delay(200, 3000, a);

		CHECK(uplink_retry_delay(200, 3000, a, 0, -1) == 0);
		CHECK(uplink_retry_delay(200, 3000, a, UINT32_MAX, -1) == cap);
		CHECK(uplink_retry_delay(200, 3000, a, 0x80000000u, -1) <= cap);
	}
	CHECK(backoff_delay(200, 3000, 0) == 200 && backoff_delay(200, 3000, 4) == 3000);
	/* Retry-After is a floor, itself capped at the maximum */
	CHECK(uplink_retry_delay(200, 3000, 0, UINT32_MAX, 1000) == 1000);
	CHECK(uplink_retry_delay(200, 3000, 0, 0, 0) == 0);
	CHECK(uplink_retry_delay(200, 3000, 3, UINT32_MAX, 100) == 1600);
	CHECK(uplink_retry_delay(200, 3000, 0, 0, 5000) == 3000);
	CHECK(uplink_retry_delay(200, 3000, 0, 0, INT64_MAX) == 3000);
}

static struct uplink *make(const char *url, bool insecure, const char *token_file, const char *ca_file)
{
	struct conf c = { 0 };

	strcpy(c.site, "itest");
	strcpy(c.id, "gw1");
	snprintf(c.uplink.url, sizeof(c.uplink.url), "%s", url);
	c.uplink.allow_insecure = insecure;
	c.uplink.gzip = true;
	snprintf(c.uplink.token_file, sizeof(c.uplink.token_file), "%s", token_file);
	snprintf(c.uplink.ca_file, sizeof(c.uplink.ca_file), "%s", ca_file);
	return uplink_new(&c, NULL);
}

static void test_new(void)
{
	char tok[128], empty[128], crlf[128];
	struct uplink *u;

	snprintf(tok, sizeof(tok), "%s/token", dir);
	snprintf(empty, sizeof(empty), "%s/empty", dir);
	snprintf(crlf, sizeof(crlf), "%s/crlf", dir);
	put_file("token", "s3cret-token\n");
	put_file("empty", "\n");
	put_file("crlf", "abc\r\nX-Evil: 1\n");

	/* https only, unless allowed (then warned) */
	CHECK(make("http://127.0.0.1:1/ingest", false, "", "") == NULL);
	CHECK(make("ftp://127.0.0.1/ingest", true, "", "") == NULL);
	CHECK(make("not a url", false, "", "") == NULL);
	u = make("http://127.0.0.1:1/ingest", true, "", "");
	CHECK(u != NULL && u->auth == NULL);
	uplink_free(u);

	/* the token: file, trailing newline stripped; log lines show no user info or query */
	u = make("https://user:pw@platform.example:8443/v1/ingest?key=abc", false, tok, "");
	CHECK(u != NULL);
	if (u) {
		CHECK_STR(u->auth, "Authorization: Bearer s3cret-token");
		CHECK_STR(u->where, "https://platform.example:8443/v1/ingest");
		uplink_free(u);
	}
	/* systemd credentials first; back to token_file when it has no platform-token */
	setenv("CREDENTIALS_DIRECTORY", dir, 1);
	put_file("platform-token", "from-credentials\n");
	u = make("https://platform.example/ingest", false, tok, "");
	CHECK(u != NULL && u->auth && strcmp(u->auth, "Authorization: Bearer from-credentials") == 0);
	uplink_free(u);
	setenv("CREDENTIALS_DIRECTORY", "/nonexistent", 1);
	u = make("https://platform.example/ingest", false, tok, "");
	CHECK(u != NULL && u->auth && strcmp(u->auth, "Authorization: Bearer s3cret-token") == 0);
	uplink_free(u);
	u = make("https://platform.example/ingest", false, "", "");
	CHECK(u != NULL && u->auth == NULL);
	uplink_free(u);
	unsetenv("CREDENTIALS_DIRECTORY");

	/* unreadable, empty or multi-line tokens, missing CA file */
	CHECK(make("https://platform.example/ingest", false, "/nonexistent/token", "") == NULL);
	CHECK(make("https://platform.example/ingest", false, empty, "") == NULL);
	CHECK(make("https://platform.example/ingest", false, crlf, "") == NULL);
	CHECK(make("https://platform.example/ingest", false, "", "/nonexistent/ca.pem") == NULL);
}

static void test_gzip_and_sockets(void)
{
	struct uplink *u = make("https://platform.example/ingest", false, "", "");
	char out[4096];
	z_stream z = { 0 };
	size_t len;
	struct pollfd pfd[UPLINK_MAX_FDS + 1];

	if (!u) {
		CHECK(u != NULL);
		return;
	}
	for (int i = 0; i < 100; i++)
		jbuf_printf(&u->body, "{\"device\":\"pond1-do\",\"n\":%d},", i);
	len = compress_body(u);
	CHECK(len > 18 && len < u->body.len);
	CHECK(u->gz[0] == 0x1f && u->gz[1] == 0x8b);     /* gzip magic */
	CHECK(inflateInit2(&z, 16 + MAX_WBITS) == Z_OK);
	z.next_in = u->gz;
	z.avail_in = (uInt) len;
	z.next_out = (Bytef *) out;
	z.avail_out = sizeof(out);
	CHECK(inflate(&z, Z_FINISH) == Z_STREAM_END);
	CHECK(z.total_out == u->body.len && memcmp(out, u->body.s, u->body.len) == 0);
	inflateEnd(&z);

	/* the sockets libcurl asks for are what the loop polls */
	CHECK(uplink_pollfds(u, pfd, UPLINK_MAX_FDS) == 0);
	CHECK(on_socket(NULL, 7, CURL_POLL_OUT, u, NULL) == 0);
	CHECK(on_socket(NULL, 9, CURL_POLL_IN, u, NULL) == 0);
	CHECK(on_socket(NULL, 7, CURL_POLL_INOUT, u, NULL) == 0);
	CHECK(uplink_pollfds(u, pfd, UPLINK_MAX_FDS) == 2);
	CHECK(pfd[0].fd == 7 && pfd[0].events == (POLLIN | POLLOUT));
	CHECK(pfd[1].fd == 9 && pfd[1].events == POLLIN);
	CHECK(uplink_pollfds(u, pfd, 1) == 1);
	CHECK(on_socket(NULL, 7, CURL_POLL_REMOVE, u, NULL) == 0);
	CHECK(uplink_pollfds(u, pfd, UPLINK_MAX_FDS) == 1 && pfd[0].fd == 9);
	for (int i = 10; i < 10 + UPLINK_MAX_FDS - 1; i++)
		CHECK(on_socket(NULL, i, CURL_POLL_IN, u, NULL) == 0);
	CHECK(on_socket(NULL, 99, CURL_POLL_IN, u, NULL) == -1);
	CHECK(on_socket(NULL, 9, CURL_POLL_REMOVE, u, NULL) == 0);
	CHECK(uplink_pollfds(u, pfd, UPLINK_MAX_FDS) == UPLINK_MAX_FDS - 1);
	u->nsocks = 0;

	/* a refusal's answer: only the first bytes, and one printable line in the log */
	char big[1000], line[UPLINK_ANSWER_MAX + 1];
	memset(big, 'x', sizeof(big));
	big[0] = '\n';
	CHECK(on_data(big, 1, sizeof(big), u) == sizeof(big));
	CHECK(on_data(big, 1, 10, u) == 10);
	CHECK(u->answer_len == UPLINK_ANSWER_MAX && strlen(u->answer) == UPLINK_ANSWER_MAX);
	printable(line, u->answer, sizeof(line));
	CHECK(line[0] == ' ' && line[1] == 'x' && strlen(line) == UPLINK_ANSWER_MAX);
	uplink_free(u);
}

int main(void)
{
	log_init(0, 1);     /* uplink_new() explains every refusal; not needed here */
	snprintf(dir, sizeof(dir), "/tmp/test_uplink.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_verdict();
	test_retry_after();
	test_retry_delay();
	test_new();
	test_gzip_and_sockets();
	uplink_free(NULL);

	static const char *const files[] = { "token", "empty", "crlf", "platform-token" };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[128];

		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		(void) unlink(path);
	}
	(void) rmdir(dir);
	return CHECK_DONE();
}

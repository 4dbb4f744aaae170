/* test_payload.c: topics and JSON payloads, each parsed back with jansson. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "payload.h"

static json_t *parse(const struct jbuf *j)
{
	json_error_t e;
	json_t *v = json_loads(j->s, JSON_DECODE_ANY, &e);

	if (!v)
		fprintf(stderr, "not JSON (%s): %s\n", e.text, j->s);
	return v;
}

static struct point mkpoint(const char *name, int decimals)
{
	struct point p = { .scale = 1.0, .bit = -1, .decimals = decimals };

	strcpy(p.name, name);
	return p;
}

int main(void)
{
	struct jbuf j = { 0 };
	struct conf c = { 0 };
	struct point pts[4];
	struct profile prof = { .points = pts, .npoints = 4 };
	struct event *ev = event_new(EV_READING, 4);
	json_t *v, *vals;

	/* topics */
	strcpy(c.site, "yujiang-paddy-03");
	strcpy(c.id, "gw01");
	strcpy(c.mqtt.topic_prefix, "agrigw");
	payload_topic(&j, &c, "pond1-do", "telemetry");
	CHECK_STR(j.s, "agrigw/yujiang-paddy-03/gw01/pond1-do/telemetry");
	payload_topic(&j, &c, NULL, "status");
	CHECK_STR(j.s, "agrigw/yujiang-paddy-03/gw01/status");

	/* telemetry: values at their resolution, bad points listed, not valued */
	pts[0] = mkpoint("do", 2);
	pts[1] = mkpoint("water_temp", 1);
	pts[2] = mkpoint("ph", 2);
	pts[3] = mkpoint("f", -1);
	ev->values[0].value = 621 * 0.01;
	ev->values[1].value = -0.04;       /* prints as 0.0, never -0.0 */
	ev->values[2].value = NAN;
	ev->values[2].state = VAL_NAN;
	ev->values[3].value = 123.456001;
	payload_telemetry(&j, &prof, ev, 1795000000123LL, 42, false);
	CHECK_STR(j.s, "{\"ts\":1795000000123,\"seq\":42,\"values\":{\"do\":6.21,\"water_temp\":0.0,\"f\":123.456},\"bad\":[\"ph\"]}");
	v = parse(&j);
	CHECK(v != NULL);
	if (v) {
		vals = json_object_get(v, "values");
		CHECK(json_integer_value(json_object_get(v, "ts")) == 1795000000123LL);
		CHECK(json_integer_value(json_object_get(v, "seq")) == 42);
		CHECK_NEAR(json_number_value(json_object_get(vals, "do")), 6.21, 1e-12);
		CHECK(json_object_get(vals, "ph") == NULL);
		CHECK(json_array_size(json_object_get(v, "bad")) == 1);
		CHECK(json_object_get(v, "historical") == NULL);
		json_decref(v);
	}
	/* all good: no "bad" key; historical flag */
	ev->values[2].state = VAL_OK;
	ev->values[2].value = 7.0;
	payload_telemetry(&j, &prof, ev, 1, 1, true);
	v = parse(&j);
	CHECK(v && json_object_get(v, "bad") == NULL);
	CHECK(v && json_is_true(json_object_get(v, "historical")));
	CHECK(v && json_number_value(json_object_get(json_object_get(v, "values"), "ph")) == 7.0);
	json_decref(v);

	/* strings are escaped: quotes, backslashes, control characters, UTF-8 kept */
	jbuf_reset(&j);
	jbuf_string(&j, "a\"b\\c\n\x01°C");
	CHECK_STR(j.s, "\"a\\\"b\\\\c\\u000a\\u0001°C\"");
	v = parse(&j);
	CHECK(v && strcmp(json_string_value(v), "a\"b\\c\n\x01°C") == 0);
	json_decref(v);

	/* numbers */
	jbuf_reset(&j);
	jbuf_number(&j, -0.0, -1);
	CHECK_STR(j.s, "0");
	jbuf_reset(&j);
	jbuf_number(&j, INFINITY, 2);
	CHECK_STR(j.s, "null");
	jbuf_reset(&j);
	jbuf_number(&j, 132854, 0);
	CHECK_STR(j.s, "132854");

	/* device and gateway status, meta */
	struct device_health h = { .online = false, .known = true, .since_ms = 5, .error = "no \"response\"",
				   .polls = 10, .timeouts = 3, .exceptions = 1, .bad_frames = 2 };
	payload_device_status(&j, &h);
	v = parse(&j);
	CHECK(v && json_is_false(json_object_get(v, "online")));
	CHECK(v && strcmp(json_string_value(json_object_get(v, "error")), "no \"response\"") == 0);
	CHECK(v && json_integer_value(json_object_get(v, "timeouts")) == 3);
	json_decref(v);

	struct gateway_health g = { .online = true, .version = "1.2", .devices = 7, .devices_online = 6, .dropped = 9 };
	payload_gateway_status(&j, &g);
	v = parse(&j);
	CHECK(v && json_is_true(json_object_get(v, "online")));
	CHECK(v && json_integer_value(json_object_get(v, "devices_online")) == 6);
	CHECK(v && json_integer_value(json_object_get(v, "dropped")) == 9);
	json_decref(v);
	payload_gateway_offline(&j);
	CHECK_STR(j.s, "{\"online\":false}");

	struct bus_conf bus = { .type = BUS_RTU };
	struct device_conf dev = { .bus = 0, .unit = 55, .profile = 0, .interval_ms = 1500 };
	strcpy(bus.name, "rs485-0");
	strcpy(prof.name, "s-rjy-01");
	strcpy(prof.description, "DO \"probe\"");
	strcpy(pts[0].unit, "mg/L");
	pts[0].has_min = pts[0].has_max = true;
	pts[0].max = 20;
	c.buses = &bus;
	c.nbuses = 1;
	c.profiles = &prof;
	c.nprofiles = 1;
	payload_meta(&j, &c, &dev);
	v = parse(&j);
	CHECK(v != NULL);
	if (v) {
		json_t *p0 = json_array_get(json_object_get(v, "points"), 0);
		CHECK(json_integer_value(json_object_get(v, "unit")) == 55);
		CHECK(json_number_value(json_object_get(v, "interval_s")) == 1.5);
		CHECK(json_array_size(json_object_get(v, "points")) == 4);
		CHECK(strcmp(json_string_value(json_object_get(p0, "unit")), "mg/L") == 0);
		CHECK(json_number_value(json_object_get(p0, "max")) == 20);
		CHECK(strcmp(json_string_value(json_object_get(v, "bus")), "rs485-0") == 0);
		json_decref(v);
	}
	free(ev);
	jbuf_done(&j);
	return CHECK_DONE();
}

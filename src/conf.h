/*
 * conf.h: the configuration, parsed by libconfig and checked in full.
 *
 * conf_load() reads one file (plus its @includes, resolved relative to the
 * directory of the main file), checks every setting and reports every problem
 * as "file:line: message".  The returned struct conf is immutable afterwards
 * and owned by the caller (conf_free()).  Names are copied; nothing points
 * back into libconfig.  Called from the main thread only.
 */
#ifndef AGRIGW_CONF_H
#define AGRIGW_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONF_NAME_MAX 64         /* names of buses, devices, profiles, points */
#define CONF_UNIT_MAX 16         /* unit strings such as "mg/L" */
#define CONF_PATH_MAX 256
#define CONF_MAX_BUSES 32
#define CONF_MAX_DEVICES 1024
#define CONF_MAX_PROFILES 256
#define CONF_MAX_POINTS 128      /* per profile */
#define CONF_MAX_ERRORS 200      /* stop collecting after this many */

enum table { TABLE_HOLDING, TABLE_INPUT, TABLE_COIL, TABLE_DISCRETE };
enum vtype { VT_U16, VT_S16, VT_U32, VT_S32, VT_U64, VT_S64, VT_F32, VT_F64, VT_BOOL };
enum worder { WO_ABCD, WO_CDAB, WO_BADC, WO_DCBA };
enum bus_type { BUS_RTU, BUS_TCP };

struct point {
	char name[CONF_NAME_MAX];
	enum table table;
	uint16_t address;        /* 0-based wire (PDU) address */
	enum vtype type;
	enum worder order;       /* default ABCD (big endian, high word first) */
	int bit;                 /* bit index 0..15 for bool on a register table, else -1 */
	double scale;            /* value = raw * scale + offset; default 1 */
	double offset;           /* default 0 */
	char unit[CONF_UNIT_MAX];
	bool has_min, has_max;   /* valid range; outside it the value is bad */
	double min, max;
	int decimals;            /* digits after the point when published (derived from scale, or "decimals" key); -1 = %.7g */
	int line;
};

struct profile {
	char name[CONF_NAME_MAX];
	char description[128];
	struct point *points;    /* owned */
	size_t npoints;
	char file[CONF_PATH_MAX];
	int line;
};

struct bus_conf {
	char name[CONF_NAME_MAX];
	enum bus_type type;
	/* rtu */
	char device[CONF_PATH_MAX];
	int baud;                /* 1200..921600, default 9600 */
	char parity;             /* 'N', 'E', 'O'; default 'N' */
	int data_bits;           /* 7 or 8, default 8 */
	int stop_bits;           /* 1 or 2, default 1 */
	bool rs485;              /* default false */
	/* tcp */
	char host[CONF_PATH_MAX];
	int port;                /* 1..65535, default 502 */
	int connect_timeout_ms;  /* default 3000 */
	/* both */
	int response_timeout_ms; /* default 500 (rtu) / 1000 (tcp) */
	int pause_ms;            /* silence between requests; default 20 (rtu) / 0 (tcp) */
	int line;
};

struct device_conf {
	char name[CONF_NAME_MAX];
	int bus;                 /* index into conf->buses */
	int unit;                /* 1..247 (0..255 on tcp) */
	int profile;             /* index into conf->profiles */
	int interval_ms;         /* "interval" in seconds (may be fractional), 0.1..86400 s */
	int timeout_ms;          /* 0 = the bus' response timeout */
	int retries;             /* extra tries per request after a timeout or bad frame; default 1 */
	int max_registers;       /* per request, 1..125, default 125 */
	int max_gap;             /* registers filled between points to merge reads, 0..124, default 8 */
	int offline_after;       /* consecutive failed polls before offline, default 3 */
	int backoff_max_ms;      /* cap of the offline backoff, default 300 s */
	bool enabled;            /* default true */
	int line;
};

struct mqtt_conf {
	char host[CONF_PATH_MAX];      /* default "127.0.0.1" */
	int port;                      /* default 1883 (8883 when ca_file is set) */
	char ca_file[CONF_PATH_MAX];   /* non-empty: TLS with verification */
	char cert_file[CONF_PATH_MAX]; /* client certificate (optional) */
	char key_file[CONF_PATH_MAX];
	char username[CONF_NAME_MAX];
	char password_file[CONF_PATH_MAX];
	char client_id[CONF_NAME_MAX]; /* default "agrigw-{site}-{id}" */
	int keepalive_s;               /* 5..3600, default 60 */
	int qos;                       /* 0..2, default 1 */
	char topic_prefix[CONF_NAME_MAX]; /* default "agrigw" */
	int queue_max;                 /* messages held while the broker is away, default 10000 */
	int max_inflight;              /* unacknowledged publishes at once, default 20 */
	int reconnect_min_ms;          /* default 1000 */
	int reconnect_max_ms;          /* default 60000 */
	int status_interval_s;         /* gateway status republished, default 60 */
	int line;
};

struct store_conf {
	char dir[CONF_PATH_MAX];       /* state directory, default "/var/lib/agrigw" */
	int64_t max_bytes;             /* database size cap, default 256 MiB; 1 MiB..1 TiB */
	int commit_interval_ms;        /* "commit_interval" s: at most one commit this often, default 1 s; 0..60 */
	int line;
};

struct uplink_conf {
	char url[512];                 /* "" = no uplink; https:// unless allow_insecure */
	int window_s;                  /* aggregate window, default 300; 10..86400, divides 86400 */
	int grace_ms;                  /* "grace" s: wait for late readings after a window ends, default 10 s */
	char token_file[CONF_PATH_MAX];/* Authorization: Bearer <token> from this file */
	char ca_file[CONF_PATH_MAX];   /* default: the system's CA store */
	char cert_file[CONF_PATH_MAX]; /* client certificate (mutual TLS) */
	char key_file[CONF_PATH_MAX];
	bool gzip;                     /* Content-Encoding: gzip, default true */
	bool allow_insecure;           /* allow http://, default false; warned at every start */
	int batch_max_items;           /* windows per POST, default 500; 1..10000 */
	int batch_max_bytes;           /* JSON bytes per POST before gzip, default 512 KiB; 4 KiB..16 MiB */
	int backoff_base_ms;           /* "backoff_base" s, default 2 s */
	int backoff_max_ms;            /* "backoff_max" s, default 600 s */
	int connect_timeout_ms;        /* default 15 s */
	int timeout_ms;                /* whole request, default 60 s */
	int low_speed_limit;           /* bytes/s, default 10 */
	int low_speed_time_s;          /* below the limit this long aborts, default 30 s */
	int line;
};

struct clock_conf {
	bool trust_system;             /* the system clock is right without NTP saying so (RTC, GPS); default false */
	int line;
};

struct log_conf {
	int summary_interval_s;        /* summary line with the counters, default 600; 0 = never */
	int line;
};

struct conf {
	char file[CONF_PATH_MAX];      /* the main file as given */
	char site[CONF_NAME_MAX];
	char id[CONF_NAME_MAX];
	struct mqtt_conf mqtt;
	struct store_conf store;
	struct uplink_conf uplink;
	struct log_conf log;
	struct clock_conf clock;
	struct bus_conf *buses;        /* owned */
	size_t nbuses;
	struct device_conf *devices;   /* owned */
	size_t ndevices;
	struct profile *profiles;      /* owned */
	size_t nprofiles;
};

/*
 * Load and check 'path'.  Every problem is written to 'errs' as one line
 * "file:line: message".  Returns 0 and sets *ret_conf on success, or the
 * (positive) number of errors found, or a negative errno when the file
 * cannot be read at all (also reported on 'errs').
 */
int conf_load(const char *path, struct conf **ret_conf, FILE *errs);

/* Print the effective configuration (every default filled in) in libconfig
 * syntax, deterministic, secrets never printed (only the password file path). */
void conf_print(const struct conf *c, FILE *out);

void conf_free(struct conf *c);

/* Names of enums as used in the config file ("holding", "u16", "ABCD", ...). */
const char *conf_table_name(enum table t);
const char *conf_vtype_name(enum vtype t);
const char *conf_worder_name(enum worder o);

/* Registers (or bits for coil/discrete) a value of type t occupies. */
int conf_vtype_width(enum vtype t);

#endif

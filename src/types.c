/*
 * types.c: names and widths of the enums shared by the config, the decoder
 * and the planner.  Kept apart so the pure modules need nothing from conf.c.
 */
#include "conf.h"

const char *conf_table_name(enum table t)
{
	static const char *const names[] = { "holding", "input", "coil", "discrete" };
	return (unsigned) t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

const char *conf_vtype_name(enum vtype t)
{
	static const char *const names[] = { "u16", "s16", "u32", "s32", "u64", "s64", "f32", "f64", "bool" };
	return (unsigned) t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

const char *conf_worder_name(enum worder o)
{
	static const char *const names[] = { "ABCD", "CDAB", "BADC", "DCBA" };
	return (unsigned) o < sizeof(names) / sizeof(names[0]) ? names[o] : "?";
}

int conf_vtype_width(enum vtype t)
{
	switch (t) {
	case VT_U32: case VT_S32: case VT_F32:
		return 2;
	case VT_U64: case VT_S64: case VT_F64:
		return 4;
	default:
		return 1;
	}
}

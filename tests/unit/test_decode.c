/*
 * test_decode.c: known register vectors for every type and word order,
 * sign extension at the limits, bools, scaling, NaN/inf and range limits.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "decode.h"

static const enum worder orders[4] = { WO_ABCD, WO_CDAB, WO_BADC, WO_DCBA };

static struct point mkpoint(enum table t, enum vtype type, enum worder order, int bit)
{
	struct point p;

	memset(&p, 0, sizeof(p));
	strcpy(p.name, "p");
	p.table = t;
	p.type = type;
	p.order = order;
	p.bit = bit;
	p.scale = 1;
	p.offset = 0;
	p.decimals = -1;
	return p;
}

/* decode_raw() result, or NaN when it fails */
static double raw_of(const uint16_t *regs, enum vtype type, enum worder order, int bit)
{
	double v;

	if (decode_raw(regs, type, order, bit, &v) < 0)
		return NAN;
	return v;
}

static void test_f32(void)
{
	/* 123.456f = 0x42F6E979 in the four orders */
	static const uint16_t vec[4][2] = {
		{ 0x42F6, 0xE979 },	/* ABCD */
		{ 0xE979, 0x42F6 },	/* CDAB */
		{ 0xF642, 0x79E9 },	/* BADC */
		{ 0x79E9, 0xF642 },	/* DCBA */
	};
	uint16_t nan_r[2] = { 0x7FC0, 0x0000 };
	uint16_t inf_r[2] = { 0x7F80, 0x0000 };
	uint16_t ninf_r[2] = { 0xFF80, 0x0000 };
	uint16_t neg_r[2] = { 0xC2F6, 0xE979 };
	uint16_t zero_r[2] = { 0, 0 };
	double v;
	int i;

	for (i = 0; i < 4; i++) {
		CHECK(decode_raw(vec[i], VT_F32, orders[i], -1, &v) == 0);
		CHECK(v == (double) 123.456f);
		CHECK(decode_bits(vec[i], VT_F32, orders[i]) == 0x42F6E979u);
	}
	/* the ABCD vector read as CDAB is a different number */
	CHECK(decode_bits(vec[0], VT_F32, WO_CDAB) == 0xE97942F6u);
	CHECK(raw_of(neg_r, VT_F32, WO_ABCD, -1) == (double) -123.456f);
	CHECK(raw_of(zero_r, VT_F32, WO_ABCD, -1) == 0.0);

	CHECK(isnan(raw_of(nan_r, VT_F32, WO_ABCD, -1)));
	CHECK(isinf(raw_of(inf_r, VT_F32, WO_ABCD, -1)));
	{
		struct point p = mkpoint(TABLE_HOLDING, VT_F32, WO_ABCD, -1);

		CHECK(decode_point(&p, nan_r, &v) == VAL_NAN);
		CHECK(isnan(v));
		CHECK(decode_point(&p, inf_r, &v) == VAL_NAN);
		CHECK(decode_point(&p, ninf_r, &v) == VAL_NAN);
		CHECK(decode_point(&p, vec[0], &v) == VAL_OK);
		CHECK_NEAR(v, 123.456, 1e-4);
	}
}

static void test_f64(void)
{
	/* -1234.5678 = 0xC0934A456D5CFAAD */
	static const uint16_t vec[4][4] = {
		{ 0xC093, 0x4A45, 0x6D5C, 0xFAAD },	/* ABCD */
		{ 0xFAAD, 0x6D5C, 0x4A45, 0xC093 },	/* CDAB */
		{ 0x93C0, 0x454A, 0x5C6D, 0xADFA },	/* BADC */
		{ 0xADFA, 0x5C6D, 0x454A, 0x93C0 },	/* DCBA */
	};
	uint16_t nan_r[4] = { 0x7FF8, 0, 0, 0 };
	uint16_t inf_r[4] = { 0x7FF0, 0, 0, 0 };
	uint64_t pattern;
	double d = -1234.5678, v;
	int i;

	memcpy(&pattern, &d, sizeof(pattern));
	CHECK(pattern == UINT64_C(0xC0934A456D5CFAAD));
	for (i = 0; i < 4; i++) {
		CHECK(decode_raw(vec[i], VT_F64, orders[i], -1, &v) == 0);
		CHECK(v == -1234.5678);
		CHECK(decode_bits(vec[i], VT_F64, orders[i]) == UINT64_C(0xC0934A456D5CFAAD));
	}
	CHECK(isnan(raw_of(nan_r, VT_F64, WO_ABCD, -1)));
	CHECK(isinf(raw_of(inf_r, VT_F64, WO_ABCD, -1)));
}

static void test_16bit(void)
{
	uint16_t r;

	r = 0;
	CHECK(raw_of(&r, VT_U16, WO_ABCD, -1) == 0);
	r = 65535;
	CHECK(raw_of(&r, VT_U16, WO_ABCD, -1) == 65535);
	CHECK(raw_of(&r, VT_S16, WO_ABCD, -1) == -1);
	r = 0x8000;
	CHECK(raw_of(&r, VT_S16, WO_ABCD, -1) == -32768);
	CHECK(raw_of(&r, VT_U16, WO_ABCD, -1) == 32768);
	r = 0x7FFF;
	CHECK(raw_of(&r, VT_S16, WO_ABCD, -1) == 32767);

	/* 16-bit: CDAB is as-is, BADC and DCBA swap the bytes */
	r = 0x1234;
	CHECK(raw_of(&r, VT_U16, WO_ABCD, -1) == 0x1234);
	CHECK(raw_of(&r, VT_U16, WO_CDAB, -1) == 0x1234);
	CHECK(raw_of(&r, VT_U16, WO_BADC, -1) == 0x3412);
	CHECK(raw_of(&r, VT_U16, WO_DCBA, -1) == 0x3412);
	CHECK(decode_bits(&r, VT_U16, WO_DCBA) == 0x3412);
	r = 0x0080;	/* 0x8000 after the swap */
	CHECK(raw_of(&r, VT_S16, WO_BADC, -1) == -32768);
	CHECK(raw_of(&r, VT_S16, WO_ABCD, -1) == 128);
	r = 0xFFFF;
	/* decode_bits shows the pattern, not the sign-extended value */
	CHECK(decode_bits(&r, VT_S16, WO_ABCD) == 0xFFFF);
}

static void test_32bit(void)
{
	uint16_t r[2];

	r[0] = 0xFFFF; r[1] = 0xFFFF;
	CHECK(raw_of(r, VT_U32, WO_ABCD, -1) == 4294967295.0);
	CHECK(raw_of(r, VT_S32, WO_ABCD, -1) == -1);
	CHECK(raw_of(r, VT_S32, WO_DCBA, -1) == -1);
	r[0] = 0x8000; r[1] = 0x0000;
	CHECK(raw_of(r, VT_S32, WO_ABCD, -1) == INT32_MIN);
	CHECK(raw_of(r, VT_U32, WO_ABCD, -1) == 2147483648.0);
	/* the same registers word swapped: 0x00008000 */
	CHECK(raw_of(r, VT_S32, WO_CDAB, -1) == 32768);
	r[0] = 0x7FFF; r[1] = 0xFFFF;
	CHECK(raw_of(r, VT_S32, WO_ABCD, -1) == INT32_MAX);
	r[0] = 0xFFFF; r[1] = 0x7FFF;
	CHECK(raw_of(r, VT_S32, WO_CDAB, -1) == INT32_MAX);
	r[0] = 0xFF7F; r[1] = 0xFFFF;
	CHECK(raw_of(r, VT_S32, WO_BADC, -1) == INT32_MAX);
	r[0] = 0xFFFF; r[1] = 0xFF7F;
	CHECK(raw_of(r, VT_S32, WO_DCBA, -1) == INT32_MAX);

	/* 0x12345678 in each order */
	r[0] = 0x1234; r[1] = 0x5678;
	CHECK(decode_bits(r, VT_U32, WO_ABCD) == 0x12345678u);
	CHECK(decode_bits(r, VT_U32, WO_CDAB) == 0x56781234u);
	CHECK(decode_bits(r, VT_U32, WO_BADC) == 0x34127856u);
	CHECK(decode_bits(r, VT_U32, WO_DCBA) == 0x78563412u);
	CHECK(raw_of(r, VT_U32, WO_ABCD, -1) == 305419896.0);
}

static void test_64bit(void)
{
	uint16_t r[4] = { 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF };

	CHECK(raw_of(r, VT_S64, WO_ABCD, -1) == -1);
	CHECK(raw_of(r, VT_U64, WO_ABCD, -1) == 18446744073709551615.0);
	CHECK(decode_bits(r, VT_U64, WO_ABCD) == UINT64_MAX);
	r[0] = 0x8000; r[1] = 0; r[2] = 0; r[3] = 0;
	CHECK(raw_of(r, VT_S64, WO_ABCD, -1) == (double) INT64_MIN);
	CHECK(raw_of(r, VT_U64, WO_ABCD, -1) == 9223372036854775808.0);
	CHECK(raw_of(r, VT_S64, WO_CDAB, -1) == 32768);
	r[0] = 0; r[1] = 0; r[2] = 0; r[3] = 0x8000;
	CHECK(raw_of(r, VT_S64, WO_CDAB, -1) == (double) INT64_MIN);
	r[0] = 0; r[1] = 0; r[2] = 0; r[3] = 0x0080;
	CHECK(raw_of(r, VT_S64, WO_DCBA, -1) == (double) INT64_MIN);
	/* 2^53 - 1 is still exact */
	r[0] = 0x001F; r[1] = 0xFFFF; r[2] = 0xFFFF; r[3] = 0xFFFF;
	CHECK(raw_of(r, VT_U64, WO_ABCD, -1) == 9007199254740991.0);
	CHECK(raw_of(r, VT_S64, WO_ABCD, -1) == 9007199254740991.0);

	r[0] = 0x0102; r[1] = 0x0304; r[2] = 0x0506; r[3] = 0x0708;
	CHECK(decode_bits(r, VT_U64, WO_ABCD) == UINT64_C(0x0102030405060708));
	CHECK(decode_bits(r, VT_U64, WO_CDAB) == UINT64_C(0x0708050603040102));
	CHECK(decode_bits(r, VT_U64, WO_BADC) == UINT64_C(0x0201040306050807));
	CHECK(decode_bits(r, VT_U64, WO_DCBA) == UINT64_C(0x0807060504030201));
}

static void test_bool(void)
{
	struct point p;
	uint16_t r;
	double v;

	r = 0x0001;
	CHECK(raw_of(&r, VT_BOOL, WO_ABCD, 0) == 1);
	CHECK(raw_of(&r, VT_BOOL, WO_ABCD, 15) == 0);
	CHECK(raw_of(&r, VT_BOOL, WO_BADC, 8) == 1);	/* byte order applied first */
	CHECK(raw_of(&r, VT_BOOL, WO_BADC, 0) == 0);
	r = 0x8000;
	CHECK(raw_of(&r, VT_BOOL, WO_ABCD, 15) == 1);
	CHECK(raw_of(&r, VT_BOOL, WO_ABCD, 0) == 0);
	CHECK(raw_of(&r, VT_BOOL, WO_ABCD, -1) == 1);
	r = 0;
	CHECK(raw_of(&r, VT_BOOL, WO_ABCD, -1) == 0);
	CHECK(decode_raw(&r, VT_BOOL, WO_ABCD, 16, &v) == -EINVAL);

	/* coil/discrete: the caller passes the bit in regs[0] */
	p = mkpoint(TABLE_COIL, VT_BOOL, WO_ABCD, -1);
	r = 1;
	CHECK(decode_point(&p, &r, &v) == VAL_OK);
	CHECK(v == 1);
	r = 0;
	CHECK(decode_point(&p, &r, &v) == VAL_OK);
	CHECK(v == 0);
	p = mkpoint(TABLE_DISCRETE, VT_BOOL, WO_DCBA, -1);
	r = 1;
	CHECK(decode_point(&p, &r, &v) == VAL_OK && v == 1);

	/* register table through decode_point */
	p = mkpoint(TABLE_HOLDING, VT_BOOL, WO_ABCD, 3);
	r = 0x0008;
	CHECK(decode_point(&p, &r, &v) == VAL_OK && v == 1);
	r = 0xFFF7;
	CHECK(decode_point(&p, &r, &v) == VAL_OK && v == 0);
}

static void test_scale(void)
{
	struct point p;
	uint16_t r[2];
	double v;

	p = mkpoint(TABLE_INPUT, VT_U16, WO_ABCD, -1);
	p.scale = 0.01;
	r[0] = 735;
	CHECK(decode_point(&p, r, &v) == VAL_OK);
	CHECK_NEAR(v, 7.35, 1e-9);

	p = mkpoint(TABLE_HOLDING, VT_S16, WO_ABCD, -1);
	p.scale = 0.1;
	r[0] = (uint16_t) -123;
	CHECK(decode_point(&p, r, &v) == VAL_OK);
	CHECK_NEAR(v, -12.3, 1e-9);

	p.scale = 0.1;
	p.offset = -40;
	r[0] = 650;	/* 65.0 - 40 */
	CHECK(decode_point(&p, r, &v) == VAL_OK);
	CHECK_NEAR(v, 25.0, 1e-9);

	CHECK(decode_scale(&p, 0, &v) == VAL_OK);
	CHECK_NEAR(v, -40.0, 1e-12);

	/* range limits are inclusive */
	p = mkpoint(TABLE_HOLDING, VT_S16, WO_ABCD, -1);
	p.has_min = true;
	p.min = -10;
	p.has_max = true;
	p.max = 50;
	CHECK(decode_scale(&p, -10, &v) == VAL_OK);
	CHECK(decode_scale(&p, 50, &v) == VAL_OK);
	CHECK(decode_scale(&p, -10.0001, &v) == VAL_RANGE);
	CHECK(v == -10.0001);	/* the value is written even when bad */
	CHECK(decode_scale(&p, 50.0001, &v) == VAL_RANGE);
	r[0] = 0xFFFF;	/* -1 */
	CHECK(decode_point(&p, r, &v) == VAL_OK && v == -1);
	r[0] = 51;
	CHECK(decode_point(&p, r, &v) == VAL_RANGE && v == 51);

	/* only the limit that is set applies */
	p.has_min = false;
	CHECK(decode_scale(&p, -1e9, &v) == VAL_OK);
	CHECK(decode_scale(&p, 1e9, &v) == VAL_RANGE);
	p.has_min = true;
	p.has_max = false;
	CHECK(decode_scale(&p, 1e9, &v) == VAL_OK);
	CHECK(decode_scale(&p, -1e9, &v) == VAL_RANGE);

	/* NaN and inf, before or after scaling, even with a range set */
	CHECK(decode_scale(&p, NAN, &v) == VAL_NAN);
	CHECK(decode_scale(&p, INFINITY, &v) == VAL_NAN);
	CHECK(decode_scale(&p, -INFINITY, &v) == VAL_NAN);
	p.has_min = false;
	p.scale = 1e300;
	CHECK(decode_scale(&p, 1e300, &v) == VAL_NAN);
	CHECK(isinf(v));

	/* 32-bit scaled */
	p = mkpoint(TABLE_HOLDING, VT_U32, WO_CDAB, -1);
	p.scale = 0.001;
	r[0] = 0x86A0; r[1] = 0x0001;	/* 100000 */
	CHECK(decode_point(&p, r, &v) == VAL_OK);
	CHECK_NEAR(v, 100.0, 1e-9);
}

static void test_invalid(void)
{
	uint16_t r[4] = { 1, 2, 3, 4 };
	struct point p;
	double v = 0;

	CHECK(decode_raw(r, (enum vtype) 99, WO_ABCD, -1, &v) == -EINVAL);
	CHECK(decode_raw(r, VT_U16, (enum worder) 7, -1, &v) == -EINVAL);
	CHECK(decode_raw(NULL, VT_U16, WO_ABCD, -1, &v) == -EINVAL);
	CHECK(decode_bits(r, (enum vtype) 99, WO_ABCD) == 0);
	p = mkpoint(TABLE_HOLDING, VT_U32, (enum worder) 9, -1);
	CHECK(decode_point(&p, r, &v) == VAL_NAN && isnan(v));
}

static void test_names(void)
{
	CHECK_STR(decode_state_name(VAL_OK), "ok");
	CHECK_STR(decode_state_name(VAL_NAN), "nan");
	CHECK_STR(decode_state_name(VAL_RANGE), "range");
	CHECK_STR(decode_state_name(VAL_EXCEPTION), "exception");
	CHECK_STR(decode_state_name(VAL_NO_REPLY), "no_reply");
	CHECK_STR(decode_state_name((enum value_state) 42), "?");
}

int main(void)
{
	test_f32();
	test_f64();
	test_16bit();
	test_32bit();
	test_64bit();
	test_bool();
	test_scale();
	test_invalid();
	test_names();
	return CHECK_DONE();
}

/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* A small, strict JSON parser (RFC 8259) producing a read-only tree.
 *
 * Written for QEMU's migration JSON trailer, which comes from the stream
 * and so is untrusted: every resource is bounded (input length, nesting
 * depth, node count, string length), all memory comes from the caller's
 * allocator (one arena growing in blocks, freed at once), and there is no
 * global state.
 *
 * Strictness, and the choices RFC 8259 leaves open:
 * - one value, surrounded by optional whitespace (space, tab, LF, CR);
 *   anything else after it is an error ("trailing data");
 * - the text must be valid UTF-8 (no overlong forms, no encoded
 *   surrogates, nothing above U+10FFFF); a byte order mark is rejected;
 * - \u escapes are decoded to UTF-8; a surrogate pair becomes one code
 *   point and an unpaired surrogate is an error (not U+FFFD);
 * - \u0000 is accepted: strings carry their length, and are also NUL
 *   terminated for convenience (so a C-string view stops early);
 * - an object with the same key twice is an error (the RFC leaves the
 *   meaning open, and a description that says two things is malformed);
 * - a number is "integral" when written without fraction or exponent and
 *   within int64; other numbers are accepted but carry no value here.
 */
#ifndef MS_JSON_H
#define MS_JSON_H

#include "common.h"

typedef enum json_type {
    JSON_NULL,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT
} json_type;

typedef struct json_doc json_doc;     /* owns every node */
typedef struct json_value json_value; /* one node; valid while its doc is */

/* Bounds; a zero member takes the default shown. */
typedef struct json_limits {
    size_t max_len;    /* input bytes (default: unlimited) */
    size_t max_depth;  /* arrays/objects inside each other (64) */
    size_t max_nodes;  /* values in the tree (len / 2 + 1: no limit) */
    size_t max_string; /* bytes of one decoded string or key (1 MiB) */
} json_limits;

typedef enum json_error_kind {
    JSON_OK = 0,
    JSON_ERR_SYNTAX, /* not JSON */
    JSON_ERR_LIMIT,  /* JSON, but over one of the limits */
    JSON_ERR_MEMORY  /* the allocator failed */
} json_error_kind;

typedef struct json_error {
    json_error_kind kind;
    size_t offset;    /* byte offset within the text */
    char detail[96];  /* short reason, NUL terminated */
} json_error;

/* Parse `len` bytes (need not be NUL terminated).  Returns 0 and *out, or
 * -1 with *err filled (offset of the offending byte; the input length when
 * the text ends early).  lim may be NULL (defaults). */
int json_parse(const ms_allocator *a, const char *text, size_t len,
               const json_limits *lim, json_doc **out, json_error *err);
void json_free(const ms_allocator *a, json_doc *doc); /* accepts NULL */

const json_value *json_root(const json_doc *doc);
size_t json_node_count(const json_doc *doc);

/* Accessors accept NULL and then answer "nothing" (NULL, 0, -1). */
json_type json_type_of(const json_value *v); /* JSON_NULL for NULL */
int json_is(const json_value *v, json_type t);
size_t json_offset(const json_value *v); /* first byte of v in the text */
/* Arrays: elements; objects: members; strings: bytes; else 0. */
size_t json_len(const json_value *v);
/* Array element i, or object member i's value (in text order). */
const json_value *json_at(const json_value *v, size_t i);
/* Object member i's key (NUL terminated; *len gets its length if given). */
const char *json_key_at(const json_value *obj, size_t i, size_t *len);
/* Object member by key (a C string), or NULL. */
const json_value *json_get(const json_value *obj, const char *key);
/* String bytes (NUL terminated; *len gets the length if given), or NULL. */
const char *json_string(const json_value *v, size_t *len);
/* 0 and *out when v is an integral number, else -1. */
int json_int(const json_value *v, int64_t *out);

#endif

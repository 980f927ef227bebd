/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream 2.1 embedded streams (spec/migstream.md 5.10-5.12): the
 * reader's state for STREAM_BEGIN / STREAM_DATA / STREAM_END records.
 * mig_read.c frames and checks the records; this file checks their fields
 * against the streams open in the channel and fills the events. */
#ifndef MS_MIG_ARCHIVE_H
#define MS_MIG_ARCHIVE_H

#include "reader_impl.h"

typedef struct mig_stream {
    ms_archive_info label; /* from STREAM_BEGIN (name points at `name`) */
    char *name;
    uint64_t read;       /* bytes of the stream seen so far */
    ms_hash_state *hash; /* XXH3-64 of them (while open) */
    int open;
} mig_stream;

typedef struct mig_streams {
    mig_stream *s;
    size_t n, cap;
    size_t open;      /* streams begun and not ended */
    mig_stream *cur;  /* the STREAM_DATA record being read */
    uint64_t cur_off; /* its next byte's stream offset */
} mig_streams;

/* A verified STREAM_BEGIN / STREAM_END payload `p` of the record at
 * `rec_off` (`size` payload bytes): check it and fill `ev`.  `lax`: 1 when
 * reserved fields may be set (a newer minor version, spec section 1). */
int mig_stream_begin(ms_reader *r, mig_streams *ss, const uint8_t *p,
                     uint64_t size, uint64_t rec_off, int lax, ms_event *ev);
int mig_stream_end(ms_reader *r, mig_streams *ss, const uint8_t *p,
                   uint64_t rec_off, int lax, ms_event *ev);
/* A STREAM_DATA prefix (not yet verified: the caller holds an error back
 * until the payload check is known).  0, or -1 with r->err set. */
int mig_stream_data_prefix(ms_reader *r, mig_streams *ss, const uint8_t *p,
                           uint64_t rec_off, int lax);
/* `n` bytes of the current STREAM_DATA record at archive offset `off`. */
void mig_stream_data(ms_reader *r, mig_streams *ss, const uint8_t *p, size_t n,
                     uint64_t off, ms_event *ev);
/* END: every stream must have ended.  0, or -1 with r->err set. */
int mig_streams_closed(ms_reader *r, const mig_streams *ss, uint64_t rec_off);
void mig_streams_free(ms_reader *r, mig_streams *ss);

#endif

/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Fuzz an ms_set fed by several readers.  The input is split into channel
 * streams at every migstream magic (8D 4D 49 47 0D 0A 1A 0A); bytes before
 * the first magic form a channel of their own; at most MAX_CHANNELS channels
 * (the last one keeps the rest).  The channels are fed round-robin, one
 * slice at a time, so events of different channels interleave the way they
 * do when a migration's channels are read in parallel.
 *
 * Every reader event goes to ms_set_observe(set, slot, &ev), followed by
 * ms_set_next until MS_NEXT_INPUT; a channel whose reader finished cleanly
 * is handed to ms_set_channel_done; at the end ms_set_finish.  Half the
 * inputs (by a bit of their hash) run with check values skipped, so
 * mutated migstream records get past the chained XXH3 checks.
 *
 * Invariants (abort on violation): the reader invariants of fuzz_reader.c
 * that concern one reader (offsets, errors, views), plus: ms_set_error()
 * reports a code exactly when a set call returned an error, set errors are
 * sticky, every derived data view is readable, and a set whose channel was
 * observed but never finished cleanly is not reported complete.
 *
 * Then the same channels go through an ms_migration with nested driver
 * payloads (run_migration below; half the inputs with checks skipped). */
#include "fuzz_common.h"

#define MAX_CHANNELS 8

static const uint8_t magic[8] = {0x8D, 0x4D, 0x49, 0x47,
                                 0x0D, 0x0A, 0x1A, 0x0A};

typedef struct channel {
    const uint8_t *data;
    size_t size, pos;
    ms_reader *r;
    fuzz_slice slice;
    uint64_t last_offset;
    int observed; /* the set was shown at least one event of this slot */
    int done;     /* input exhausted and reader finished (ok or not) */
    int clean;    /* reader finished cleanly, channel_done called */
} channel;

/* QEMU migrations (a main channel and multifd channel files) cannot be cut
 * apart by magic (every multifd packet starts like an init packet), so
 * inputs holding this delimiter are split at it instead (delimiters
 * dropped); scripts/make-corpus.sh writes such seeds. */
static const uint8_t delimiter[8] = {0xFF, 'M', 'S', 'F', 'U', 'Z', 'Z', 0xFF};

/* The first i >= `from` where the 8 bytes of `pattern` start, or `size`
 * when there is none.  memchr looks for the candidates: a loop over every
 * byte in the harness is traced by libFuzzer's comparison hooks (three
 * calls per byte took a quarter of the harness's time;
 * fuzz/corpus/README.md). */
static size_t find_pattern(const uint8_t *data, size_t size, size_t from,
                           const uint8_t *pattern)
{
    while (from + 8 <= size) {
        const uint8_t *p = memchr(data + from, pattern[0], size - 7 - from);
        if (!p)
            break;
        if (p[1] == pattern[1] && memcmp(p + 2, pattern + 2, 6) == 0)
            return (size_t)(p - data);
        from = (size_t)(p - data) + 1;
    }
    return size;
}

/* Split at each magic (or at delimiters, see above: when the input holds
 * one, only at delimiters).  Returns the number of channels. */
static size_t split(const uint8_t *data, size_t size, channel *ch)
{
    size_t n = 0, start = 0;
    size_t at = find_pattern(data, size, 0, delimiter);
    if (at < size) { /* delimited: the delimiters dropped */
        for (; at < size && n + 1 < MAX_CHANNELS;
             at = find_pattern(data, size, start, delimiter)) {
            ch[n].data = data + start;
            ch[n].size = at - start;
            n++;
            start = at + sizeof delimiter;
        }
    } else { /* at each magic but one at byte 0 */
        for (at = find_pattern(data, size, 1, magic);
             at < size && n + 1 < MAX_CHANNELS;
             at = find_pattern(data, size, at + 1, magic)) {
            ch[n].data = data + start;
            ch[n].size = at - start;
            n++;
            start = at;
        }
    }
    ch[n].data = data + start;
    ch[n].size = size - start;
    return n + 1;
}

typedef struct state {
    ms_set *set;
    int set_failed;
} state;

/* Pull what the set derived; returns -1 once the set has failed. */
static int drain_set(state *st)
{
    for (;;) {
        ms_event ev;
        memset(&ev, 0x5A, sizeof ev);
        int rc = ms_set_next(st->set, &ev);
        if (rc == MS_NEXT_ERROR) {
            st->set_failed = 1;
            fuzz_check_error(ms_set_error(st->set), 1);
            return -1;
        }
        FUZZ_CHECK(rc == MS_NEXT_EVENT || rc == MS_NEXT_INPUT);
        fuzz_check_error(ms_set_error(st->set), 0);
        if (rc == MS_NEXT_INPUT)
            return 0;
        fuzz_touch_event(&ev);
    }
}

static int observe(state *st, uint32_t slot, const ms_event *ev)
{
    if (ms_set_observe(st->set, slot, ev) != 0) {
        st->set_failed = 1;
        fuzz_check_error(ms_set_error(st->set), 1);
        return -1;
    }
    fuzz_check_error(ms_set_error(st->set), 0);
    return drain_set(st);
}

/* Feed channel `slot` one slice and pass its events on.  Marks it done when
 * its input is exhausted or its reader failed. */
static void step(state *st, channel *c, uint32_t slot, fuzz_rng *rng)
{
    int failed = 0;
    if (c->pos < c->size) {
        size_t n = fuzz_slice_size(rng);
        if (n > c->size - c->pos)
            n = c->size - c->pos;
        fuzz_slice_set(&c->slice, c->data + c->pos, n);
        c->pos += n;
        if (ms_reader_input(c->r, c->slice.buf, c->slice.len) != 0)
            failed = 1;
        while (!failed) {
            ms_event ev;
            memset(&ev, 0xA5, sizeof ev);
            int rc = ms_reader_next(c->r, &ev);
            if (rc == MS_NEXT_ERROR) {
                failed = 1;
                break;
            }
            FUZZ_CHECK(rc == MS_NEXT_EVENT || rc == MS_NEXT_INPUT);
            if (rc == MS_NEXT_INPUT)
                break;
            FUZZ_CHECK(ev.offset >= c->last_offset);
            FUZZ_CHECK(ev.offset <= c->pos);
            c->last_offset = ev.offset;
            fuzz_touch_event(&ev);
            if (ev.kind == MS_EV_DATA && ev.u.data.zero_copy && ev.u.data.size)
                FUZZ_CHECK(fuzz_slice_contains(&c->slice, ev.u.data.data,
                                               ev.u.data.size));
            c->observed = 1;
            if (observe(st, slot, &ev) != 0)
                return;
        }
        fuzz_slice_drop(&c->slice);
        fuzz_check_error(ms_reader_error(c->r), failed);
        if (failed)
            c->done = 1;
        return;
    }
    /* Input exhausted. */
    c->done = 1;
    if (ms_reader_finish(c->r) != 0) {
        fuzz_check_error(ms_reader_error(c->r), 1);
        return;
    }
    fuzz_check_error(ms_reader_error(c->r), 0);
    c->clean = 1;
    if (ms_set_channel_done(st->set, slot) != 0) {
        st->set_failed = 1;
        fuzz_check_error(ms_set_error(st->set), 1);
        return;
    }
    fuzz_check_error(ms_set_error(st->set), 0);
    drain_set(st);
}

/* `parts`: the `nch` channels split() found (nothing else set). */
static void run_set(const channel *parts, size_t nch, uint64_t seed,
                    int verify_checks)
{
    channel ch[MAX_CHANNELS];
    memcpy(ch, parts, sizeof ch);

    ms_options opt;
    fuzz_options(&opt, verify_checks, 0);
    state st = {ms_set_create(&opt), 0};
    FUZZ_CHECK(st.set != NULL);
    fuzz_check_error(ms_set_error(st.set), 0);
    for (size_t i = 0; i < nch; i++) {
        ch[i].r = ms_reader_create(&opt);
        FUZZ_CHECK(ch[i].r != NULL);
    }

    fuzz_rng rng = {seed};
    size_t left = nch;
    while (left && !st.set_failed) {
        left = 0;
        for (size_t i = 0; i < nch && !st.set_failed; i++) {
            if (ch[i].done)
                continue;
            step(&st, &ch[i], (uint32_t)i, &rng);
            if (!ch[i].done)
                left++;
        }
    }

    int unclean = 0;
    for (size_t i = 0; i < nch; i++)
        if (ch[i].observed && !ch[i].clean)
            unclean = 1;
    int rc = ms_set_finish(st.set);
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc == 0) {
        FUZZ_CHECK(!st.set_failed);
        FUZZ_CHECK(!unclean);
        fuzz_check_error(ms_set_error(st.set), 0);
        /* Anything still derivable after finish must be readable too. */
        drain_set(&st);
    } else {
        fuzz_check_error(ms_set_error(st.set), 1);
        ms_error code = ms_set_error(st.set)->code;
        ms_event ev;
        FUZZ_CHECK(ms_set_next(st.set, &ev) == MS_NEXT_ERROR);
        FUZZ_CHECK(ms_set_finish(st.set) == -1);
        FUZZ_CHECK(ms_set_error(st.set)->code == code);
    }

    for (size_t i = 0; i < nch; i++) {
        fuzz_slice_drop(&ch[i].slice);
        ms_reader_free(ch[i].r);
    }
    ms_set_free(st.set);
}

/* ---- the same channels through an ms_migration ---------------------------
 * With nested driver payloads on, fed in a random channel order (multifd
 * channels before their main channel are held) in slices freed right after
 * each call (the migration must copy what it holds).  Invariants: every
 * event and its views are readable, origins name an opened slot, nested
 * events name their device, every problem has a code and a NUL-terminated
 * detail, and ms_migration_finish fails exactly when a problem was
 * reported. */
typedef struct mig_state {
    size_t nch;
    uint64_t problems;
} mig_state;

static void mig_event(void *ctx, const ms_event *ev, const ms_event_origin *o)
{
    const mig_state *st = ctx;
    FUZZ_CHECK(o->channel < st->nch);
    fuzz_touch_event(ev);
    if (o->device) {
        fuzz_touch_str(o->device);
        FUZZ_CHECK(!o->derived);
    }
}

static void mig_problem(void *ctx, const ms_error_info *e)
{
    mig_state *st = ctx;
    st->problems++;
    FUZZ_CHECK(e->code != MS_ERR_OK);
    FUZZ_CHECK(memchr(e->detail, 0, sizeof e->detail) != NULL);
    FUZZ_CHECK(!e->has_channel || e->channel < st->nch);
}

static void run_migration(const channel *parts, size_t nch, uint64_t seed)
{
    channel ch[MAX_CHANNELS];
    memcpy(ch, parts, sizeof ch);
    ms_options opt;
    /* half the inputs with check values skipped, so mutated migstream
     * records reach the nested payload decoders */
    fuzz_options(&opt, (int)((seed >> 1) & 1), 0);
    opt.input_stable = 0;
    mig_state st = {nch, 0};
    ms_migration_callbacks cb = {mig_event, mig_problem, &st};
    ms_migration *m =
        ms_migration_create(&opt, &cb, MS_MIGRATION_NESTED_PAYLOADS);
    FUZZ_CHECK(m != NULL);
    for (size_t i = 0; i < nch; i++)
        FUZZ_CHECK(ms_migration_channel_open(m, (uint32_t)i, NULL) == 0);
    fuzz_rng rng = {seed};
    if (seed & 1) /* said up front: no main channel will come */
        ms_migration_no_main(m);
    for (size_t left = nch; left;) {
        size_t k = fuzz_rng_range(&rng, left) - 1, i = 0;
        for (;; i++) /* the k-th channel not done */
            if (!ch[i].done && !k--)
                break;
        channel *c = &ch[i];
        size_t n = fuzz_slice_size(&rng);
        if (n > c->size - c->pos)
            n = c->size - c->pos;
        fuzz_slice_set(&c->slice, c->data + c->pos, n);
        int rc = ms_migration_input(m, (uint32_t)i, c->slice.buf, n);
        FUZZ_CHECK(rc == 0 || rc == -1);
        fuzz_slice_drop(&c->slice);
        c->pos += n;
        if (rc < 0 || c->pos == c->size) {
            int end = ms_migration_channel_end(m, (uint32_t)i);
            FUZZ_CHECK(end == 0 || end == -1);
            FUZZ_CHECK(rc == 0 || end == -1); /* failed stays failed */
            c->done = 1;
            left--;
        }
    }
    uint64_t before = st.problems;
    int rc = ms_migration_finish(m);
    FUZZ_CHECK(rc == (st.problems ? -1 : 0));
    FUZZ_CHECK(st.problems >= before);
    FUZZ_CHECK(ms_migration_problems(m) == st.problems);
    ms_migration_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t h = fuzz_hash(data, size);
    channel parts[MAX_CHANNELS];
    memset(parts, 0, sizeof parts);
    size_t nch = split(data, size, parts);
    /* one set pass per input, half of them with check values skipped (two
     * passes per input halved the exec/s; fuzz/corpus/README.md) */
    run_set(parts, nch, h ^ 0x2545f4914f6cdd1dull, (int)((h >> 7) & 1));
    run_migration(parts, nch, h);
    return 0;
}

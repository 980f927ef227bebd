/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* What every mode of migstream-synth uses: one PRNG (everything comes from
 * --seed, so the same options give byte-identical files), device-state
 * look-alike bytes, error messages, and the RAM files --expect-dir
 * writes. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "synth.h"

/* ---- PRNG (splitmix64) ------------------------------------------------- */
uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform enough in [0, n) for a workload generator; n > 0. */
uint64_t rng_below(uint64_t *state, uint64_t n)
{
    return rng_next(state) % n;
}

void rng_bytes(uint64_t *state, uint8_t *out, size_t len)
{
    while (len > 0) {
        uint64_t v = rng_next(state);
        /* byte by byte, so the output is the same on any host byte order */
        for (size_t n = len < 8 ? len : 8; n > 0; n--, len--, v >>= 8)
            *out++ = (uint8_t)v;
    }
}

/* Device state look-alike: random runs mixed with zero runs and repeated
 * patterns, so zlib finds something to squeeze, as in real device state. */
void fill_state(uint64_t *rng, uint8_t *buf, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        size_t run = 64 + (size_t)rng_below(rng, 4033);
        if (run > len - pos)
            run = len - pos;
        uint64_t kind = rng_below(rng, 10);
        if (kind < 3) {
            memset(buf + pos, 0, run);
        } else if (kind < 6) {
            uint8_t pattern[16];
            size_t plen = 4 + (size_t)rng_below(rng, 13);
            rng_bytes(rng, pattern, plen);
            for (size_t i = 0; i < run; i++)
                buf[pos + i] = pattern[i % plen];
        } else {
            rng_bytes(rng, buf + pos, run);
        }
        pos += run;
    }
}

/* Balanced like QEMU's multifd, but not plain round-robin. */
uint32_t shuffled_next(uint64_t *rng, uint32_t *order, uint32_t *left,
                       uint32_t n)
{
    if (*left == 0) {
        for (uint32_t i = 0; i < n; i++)
            order[i] = i;
        for (uint32_t i = n - 1; i > 0; i--) {
            uint32_t j = (uint32_t)rng_below(rng, (uint64_t)i + 1);
            uint32_t t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        *left = n;
    }
    return order[n - (*left)--];
}

int grow_array(void **p, size_t *cap, size_t need, size_t unit)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * unit);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

uint64_t chunks_for(uint64_t bytes, uint64_t max)
{
    return bytes / max + (bytes % max != 0);
}

/* ---- errors ------------------------------------------------------------ */
int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry '" PROG " --help'.\n");
    va_end(ap);
    return -1;
}

int io_error(const char *path, int err)
{
    fprintf(stderr, PROG ": %s: %s\n", path, strerror(err));
    return TOOL_USAGE;
}

int close_output(FILE *f)
{
    errno = 0;
    int failed = ferror(f);
    if (f == stdout)
        failed |= fflush(stdout) != 0;
    else
        failed |= fclose(f) != 0;
    return failed ? (errno ? errno : EIO) : 0;
}

/* ---- --expect-dir RAM files -------------------------------------------- */
int expect_ram_list(const char *dir, const ram_desc *blocks, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/ram", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return io_error(path, errno);
    for (size_t k = 0; k < n; k++)
        fprintf(f, "%zu %llu %s\n", k, (unsigned long long)blocks[k].len,
                blocks[k].name);
    if (ferror(f) | (fclose(f) != 0))
        return io_error(path, errno ? errno : EIO);
    return TOOL_OK;
}

int expect_ram_image(const char *dir, size_t k, uint64_t len, int *fd)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/ram-%zu.bin", dir, k);
    *fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (*fd < 0 || ftruncate(*fd, (off_t)len) != 0) {
        int err = errno;
        if (*fd >= 0)
            close(*fd);
        *fd = -1;
        return io_error(path, err);
    }
    return TOOL_OK;
}

void synthetic_blocks(uint64_t ram, ram_desc out[3])
{
    uint64_t bios = ram / 16 / SYNTH_PAGE * SYNTH_PAGE;
    uint64_t rom = ram / 32 / SYNTH_PAGE * SYNTH_PAGE;
    bios = bios < SYNTH_PAGE ? SYNTH_PAGE : bios > 256 << 10 ? 256 << 10 : bios;
    rom = rom < SYNTH_PAGE ? SYNTH_PAGE : rom > 128 << 10 ? 128 << 10 : rom;
    out[0] = (ram_desc){"pc.ram", ram};
    out[1] = (ram_desc){"pc.bios", bios};
    out[2] = (ram_desc){"/rom@etc/acpi/tables", rom};
}

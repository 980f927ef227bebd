/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Replay driver: runs a fuzz harness's LLVMFuzzerTestOneInput over every
 * file named on the command line, recursing into directories (entries in
 * sorted order), without libFuzzer.  So any C compiler can replay the seed
 * corpora and saved crash inputs, and CI without clang still runs them.
 *
 *   replay-<name> DIR|FILE...
 *
 * Prints each input before running it (so a crash names its input) and
 * then how many inputs ran.  Exits 1 when an argument cannot be read or
 * when no input ran at all; a broken invariant aborts inside the harness. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned long ran;
static int errors;
static int verbose = 1;

static void run_file(const char *path, off_t st_size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        errors++;
        return;
    }
    size_t cap = st_size > 0 ? (size_t)st_size : 0;
    /* Exactly the file's size, so an overread past the input is caught. */
    uint8_t *data = malloc(cap ? cap : 1);
    if (!data) {
        fprintf(stderr, "replay: %s: out of memory\n", path);
        fclose(f);
        errors++;
        return;
    }
    size_t len = fread(data, 1, cap, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || len != cap) {
        fprintf(stderr, "replay: %s: read error\n", path);
        free(data);
        errors++;
        return;
    }
    if (verbose) {
        fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
        fflush(stderr);
    }
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    ran++;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_path(const char *path, int depth)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        errors++;
        return;
    }
    if (S_ISREG(st.st_mode)) {
        run_file(path, st.st_size);
        return;
    }
    if (!S_ISDIR(st.st_mode) || depth > 16)
        return;

    DIR *dir = opendir(path);
    if (!dir) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        errors++;
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.')
            continue; /* ., .., and hidden files */
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown)
                abort();
            names = grown;
        }
        size_t len = strlen(path) + 1 + strlen(de->d_name) + 1;
        names[n] = malloc(len);
        if (!names[n])
            abort();
        snprintf(names[n], len, "%s/%s", path, de->d_name);
        n++;
    }
    closedir(dir);
    if (n)
        qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        run_path(names[i], depth + 1);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "-q") == 0) {
        verbose = 0;
        first = 2;
    }
    if (first >= argc) {
        fprintf(stderr,
                "usage: %s [-q] DIR|FILE...\n"
                "Runs the fuzz harness once on every file given "
                "(directories recursively).\n",
                argv[0]);
        return 2;
    }
    for (int i = first; i < argc; i++)
        run_path(argv[i], 0);
    printf("replay: ran %lu input%s\n", ran, ran == 1 ? "" : "s");
    if (ran == 0) {
        fprintf(stderr, "replay: no inputs found\n");
        return 1;
    }
    return errors ? 1 : 0;
}

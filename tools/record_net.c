/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-record: the addresses it listens on and connects to. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "record.h"

/* "HOST:PORT" (HOST may be "[v6]"); 0 or -1. */
static int parse_tcp(const char *spec, rec_addr *out, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    const char *h = spec;
    size_t hlen = colon ? (size_t)(colon - spec) : 0;
    if (!colon || !colon[1]) {
        snprintf(err, errlen, "'%s': expected HOST:PORT", spec);
        return -1;
    }
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof host) {
        snprintf(err, errlen, "'%s': no host", spec);
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = 0;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "'%s': %s", spec, gai_strerror(rc));
        return -1;
    }
    memcpy(&out->sa, res->ai_addr, res->ai_addrlen);
    out->salen = res->ai_addrlen;
    freeaddrinfo(res);
    snprintf(out->text, sizeof out->text, "tcp:%s", spec);
    return 0;
}

int rec_addr_parse(const char *spec, rec_addr *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (strncmp(spec, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)&out->sa;
        const char *path = spec + 5;
        if (!*path || strlen(path) >= sizeof un->sun_path) {
            snprintf(err, errlen, "'%s': the path is empty or too long", spec);
            return -1;
        }
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, path, strlen(path) + 1);
        out->salen = sizeof *un;
        snprintf(out->text, sizeof out->text, "%s", spec);
        return 0;
    }
    if (strncmp(spec, "tcp:", 4) == 0)
        spec += 4;
    return parse_tcp(spec, out, err, errlen);
}

const char *rec_addr_unix_path(const rec_addr *a)
{
    if (a->sa.ss_family != AF_UNIX)
        return NULL;
    return ((const struct sockaddr_un *)&a->sa)->sun_path;
}

/* After bind to port 0: the port the kernel chose, into a->text. */
static void name_bound_port(int fd, rec_addr *a)
{
    struct sockaddr_storage got;
    socklen_t len = sizeof got;
    char host[INET6_ADDRSTRLEN + 2], port[16];
    if (getsockname(fd, (struct sockaddr *)&got, &len) != 0 ||
        getnameinfo((struct sockaddr *)&got, len, host, sizeof host, port,
                    sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return;
    if (got.ss_family == AF_INET6)
        snprintf(a->text, sizeof a->text, "tcp:[%s]:%s", host, port);
    else
        snprintf(a->text, sizeof a->text, "tcp:%s:%s", host, port);
}

int rec_listen(rec_addr *a, char *err, size_t errlen)
{
    int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    const char *path = rec_addr_unix_path(a);
    struct stat st;
    /* A socket left by an earlier run would make bind fail; anything
     * else at the path is not ours to remove. */
    if (path && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    if (!path) {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    }
    if (bind(fd, (struct sockaddr *)&a->sa, a->salen) != 0 ||
        listen(fd, 64) != 0) {
        snprintf(err, errlen, "%s: %s", a->text, strerror(errno));
        close(fd);
        return -1;
    }
    if (!path)
        name_bound_port(fd, a);
    return fd;
}

void rec_nodelay(int fd)
{
    int one = 1;
    /* fails with EOPNOTSUPP on a unix socket: nothing to turn off there */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int rec_connect(const rec_addr *a, char *err, size_t errlen)
{
    int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    /* the signal handlers are SA_RESTART: an interrupted connect goes on */
    if (connect(fd, (const struct sockaddr *)&a->sa, a->salen) != 0) {
        snprintf(err, errlen, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    rec_nodelay(fd);
    return fd;
}

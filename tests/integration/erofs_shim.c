/*
 * erofs_shim.c — an LD_PRELOAD library for tests: a file system that turns
 * read-only under a running featd.
 *
 * Linux refuses to remount a file system read-only while files on it are
 * open for writing (EBUSY), and featd always has its WAL open, so a real
 * "read-only during writes" cannot be staged.  This shim stages it: once the
 * file named by FEATD_EROFS_TRIGGER exists, every call that would change a
 * file under FEATD_EROFS_DIR (write, pwrite, writev, pwritev, fsync,
 * fdatasync, ftruncate, fallocate, opening for writing, creating, renaming,
 * removing) fails with EROFS, as on a file system remounted read-only.
 * Sockets, pipes and files elsewhere are untouched.  Without both variables
 * it does nothing.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static atomic_int tripped;

static int tripped_now(void) {
    if (atomic_load(&tripped)) return 1;
    const char *trig = getenv("FEATD_EROFS_TRIGGER");
    if (!trig || !getenv("FEATD_EROFS_DIR")) return 0;
    struct stat sb;
    if (stat(trig, &sb) != 0) return 0;
    atomic_store(&tripped, 1);
    return 1;
}

static int under_dir(const char *path) {
    const char *dir = getenv("FEATD_EROFS_DIR");
    if (!dir || !path) return 0;
    char abs[PATH_MAX];
    if (path[0] != '/') {
        if (!getcwd(abs, sizeof(abs))) return 0;
        size_t l = strlen(abs);
        snprintf(abs + l, sizeof(abs) - l, "/%s", path);
        path = abs;
    }
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == 0);
}

/* fd is a regular file under the directory (only asked once tripped). */
static int fd_under_dir(int fd) {
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) return 0;
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof(path) - 1);
    if (n < 0) return 0;
    path[n] = 0;
    return under_dir(path);
}

#define REFUSE_FD(fd)                                                                                                  \
    do {                                                                                                               \
        if (tripped_now() && fd_under_dir(fd)) {                                                                       \
            errno = EROFS;                                                                                             \
            return -1;                                                                                                 \
        }                                                                                                              \
    } while (0)

#define REFUSE_PATH(p)                                                                                                 \
    do {                                                                                                               \
        if (tripped_now() && under_dir(p)) {                                                                           \
            errno = EROFS;                                                                                             \
            return -1;                                                                                                 \
        }                                                                                                              \
    } while (0)

#define REAL(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

ssize_t write(int fd, const void *buf, size_t n) {
    REFUSE_FD(fd);
    return REAL(write)(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    REFUSE_FD(fd);
    return REAL(pwrite)(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off) {
    REFUSE_FD(fd);
    return REAL(pwrite64)(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    REFUSE_FD(fd);
    return REAL(writev)(fd, iov, cnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
    REFUSE_FD(fd);
    return REAL(pwritev)(fd, iov, cnt, off);
}

int fsync(int fd) {
    REFUSE_FD(fd);
    return REAL(fsync)(fd);
}

int fdatasync(int fd) {
    REFUSE_FD(fd);
    return REAL(fdatasync)(fd);
}

int ftruncate(int fd, off_t len) {
    REFUSE_FD(fd);
    return REAL(ftruncate)(fd, len);
}

int fallocate(int fd, int mode, off_t off, off_t len) {
    REFUSE_FD(fd);
    return REAL(fallocate)(fd, mode, off, len);
}

static int writes(int flags) { return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND)) != 0; }

int open(const char *path, int flags, ...) {
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    if (writes(flags)) REFUSE_PATH(path);
    return REAL(open)(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    if (writes(flags)) REFUSE_PATH(path);
    return REAL(open64)(path, flags, mode);
}

int rename(const char *a, const char *b) {
    REFUSE_PATH(a);
    REFUSE_PATH(b);
    return REAL(rename)(a, b);
}

int unlink(const char *path) {
    REFUSE_PATH(path);
    return REAL(unlink)(path);
}

int mkdir(const char *path, mode_t mode) {
    REFUSE_PATH(path);
    return REAL(mkdir)(path, mode);
}

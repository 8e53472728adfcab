/*
 * powercut.c: an LD_PRELOAD shim that records what a power cut could leave on disk.
 *
 * tests/power_cut.rs compiles it (`cc -shared -fPIC`) and runs the `strongroom` binary
 * with LD_PRELOAD pointing at it. The workspace forbids unsafe Rust, tests included, so
 * the interposition lives here, in a few lines of C, and the model in Rust.
 *
 * Environment:
 *   POWERCUT_WATCH  absolute, canonical directory: only files and directories under it
 *                   (or it) are recorded
 *   POWERCUT_LOG    directory for the records (outside POWERCUT_WATCH)
 *
 * What it does: fsync(2) and fdatasync(2) are the sync points. After the real call
 * succeeds on a descriptor whose path (readlink of /proc/self/fd/N, a deleted file
 * included) is under POWERCUT_WATCH, it writes record number N (8 digits, from 1):
 *
 *   N.meta  for a regular file: "file <id>\n<path>\n"
 *   N.data  the file's bytes as they were right after the sync
 *   N.meta  for a directory:    "dir <id>\n<path>\n" followed by one line per entry:
 *           "<type> <id> <name>\n", type f (regular), d (directory), l (symlink) or
 *           o (other)
 *
 * <id> is "<inode>-<btime seconds>-<btime nanoseconds>-<inode generation>": it names a
 * file across renames and tells a reused inode number (ext4 reuses them at once) from
 * the file that had it before. Birth times are coarse (a clock tick), so the generation
 * (FS_IOC_GETVERSION) is what separates two files made in the same tick; either part is
 * 0 where the file system has none.
 * A counter file, POWERCUT_LOG/counter, locked with flock(2) around the real call and
 * the copy, numbers the records in the order the syncs completed, across threads and
 * processes. The data is written before the meta file, so a meta file means a whole
 * record.
 *
 * Not modelled, on purpose: sync(2) and syncfs(2) would make everything durable; the
 * code under test does not call them, and if it ever does, the shim writes
 * POWERCUT_LOG/unsupported so the test fails instead of modelling them wrong.
 * sync_file_range(2) gives no durability guarantee and is left alone. Writes through
 * O_SYNC/O_DSYNC descriptors or mmap+msync, and a raw syscall(SYS_fsync), bypass the
 * shim: they would count as lost (a false alarm, never a false pass). The test checks
 * that every command it runs produced records, so a shim that does not load (a
 * statically linked binary) fails the test too.
 *
 * Anything the shim cannot do (a full disk, a path too long) is appended to
 * POWERCUT_LOG/errors, which the test reports as a failure.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

typedef int (*sync_fn)(int);

static void note(const char *log, const char *file, const char *fmt, ...)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", log, file) >= (int)sizeof path)
        return;
    FILE *f = fopen(path, "a");
    if (!f)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fclose(f);
}

/* The watched path of `fd` in `out`, or 0 when it is not under POWERCUT_WATCH. */
static int watched_path(int fd, char *out, size_t len)
{
    const char *watch = getenv("POWERCUT_WATCH");
    if (!watch || !getenv("POWERCUT_LOG"))
        return 0;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, len - 1);
    if (n < 0)
        return 0;
    out[n] = '\0';
    const char *deleted = " (deleted)";
    size_t dl = strlen(deleted);
    if ((size_t)n > dl && strcmp(out + n - dl, deleted) == 0)
        out[n - dl] = '\0';
    size_t wl = strlen(watch);
    return strncmp(out, watch, wl) == 0 && (out[wl] == '\0' || out[wl] == '/');
}

/* The identity of `name` in `dirfd` ("" with AT_EMPTY_PATH: `dirfd` itself) in `id`;
 * its type in `mode`. 0 when it does not exist (any more). */
static int identity(int dirfd, const char *name, int flags, char *id, size_t len,
                    unsigned *mode)
{
    struct statx st;
    memset(&st, 0, sizeof st);
    if (statx(dirfd, name, flags, STATX_TYPE | STATX_INO | STATX_BTIME, &st) != 0 ||
        !(st.stx_mask & STATX_INO))
        return 0;
    if (!(st.stx_mask & STATX_BTIME)) {
        st.stx_btime.tv_sec = 0;
        st.stx_btime.tv_nsec = 0;
    }
    long gen = 0;
    if (name[0] == '\0') {
        if (ioctl(dirfd, FS_IOC_GETVERSION, &gen) != 0)
            gen = 0;
    } else if (S_ISREG(st.stx_mode) || S_ISDIR(st.stx_mode)) {
        int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) {
            if (ioctl(fd, FS_IOC_GETVERSION, &gen) != 0)
                gen = 0;
            close(fd);
        }
    }
    snprintf(id, len, "%llu-%lld-%u-%u", (unsigned long long)st.stx_ino,
             (long long)st.stx_btime.tv_sec, st.stx_btime.tv_nsec, (unsigned)gen);
    *mode = st.stx_mode;
    return 1;
}

static char type_of(unsigned mode)
{
    if (S_ISREG(mode))
        return 'f';
    if (S_ISDIR(mode))
        return 'd';
    if (S_ISLNK(mode))
        return 'l';
    return 'o';
}

/* Writes the record of the synced `fd` (path `path`) as number `n`. 0 on success. */
static int record(const char *log, unsigned long n, int fd, const char *path)
{
    char meta[PATH_MAX], data[PATH_MAX], tmp[PATH_MAX], self[64];
    snprintf(meta, sizeof meta, "%s/%08lu.meta", log, n);
    snprintf(data, sizeof data, "%s/%08lu.data", log, n);
    snprintf(tmp, sizeof tmp, "%s/%08lu.meta.part", log, n);
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);

    char id[128];
    unsigned mode;
    if (!identity(fd, "", AT_EMPTY_PATH, id, sizeof id, &mode))
        return -1;
    FILE *m = fopen(tmp, "w");
    if (!m)
        return -1;
    int ok = 1;
    if (S_ISDIR(mode)) {
        fprintf(m, "dir %s\n%s\n", id, path);
        int dfd = open(self, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
        if (!d) {
            if (dfd >= 0)
                close(dfd);
            ok = 0;
        } else {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                    continue;
                char eid[128];
                unsigned emode;
                if (!identity(dirfd(d), e->d_name, AT_SYMLINK_NOFOLLOW, eid, sizeof eid,
                              &emode))
                    continue; /* gone meanwhile */
                fprintf(m, "%c %s %s\n", type_of(emode), eid, e->d_name);
            }
            closedir(d);
        }
    } else if (S_ISREG(mode)) {
        fprintf(m, "file %s\n%s\n", id, path);
        /* Reopened through /proc: works for write-only and deleted files too. */
        int in = open(self, O_RDONLY | O_CLOEXEC);
        int out = open(data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (in < 0 || out < 0) {
            ok = 0;
        } else {
            char buf[65536];
            ssize_t r;
            while ((r = read(in, buf, sizeof buf)) > 0) {
                if (write(out, buf, (size_t)r) != r) {
                    ok = 0;
                    break;
                }
            }
            if (r < 0)
                ok = 0;
        }
        if (in >= 0)
            close(in);
        if (out >= 0)
            close(out);
    } else {
        fprintf(m, "other %s\n%s\n", id, path);
    }
    if (fclose(m) != 0)
        ok = 0;
    if (!ok || rename(tmp, meta) != 0)
        return -1;
    return 0;
}

static int intercept(const char *name, int fd)
{
    sync_fn real = (sync_fn)dlsym(RTLD_NEXT, name);
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    char path[PATH_MAX];
    if (!watched_path(fd, path, sizeof path))
        return real(fd);
    const char *log = getenv("POWERCUT_LOG");
    char counter[PATH_MAX];
    snprintf(counter, sizeof counter, "%s/counter", log);
    int c = open(counter, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (c < 0 || flock(c, LOCK_EX) != 0) {
        note(log, "errors", "%s(%s): cannot lock the counter: %s", name, path, strerror(errno));
        if (c >= 0)
            close(c);
        return real(fd);
    }
    int rc = real(fd);
    int saved = errno;
    if (rc == 0) {
        char text[32] = {0};
        ssize_t r = pread(c, text, sizeof text - 1, 0);
        unsigned long n = (r > 0 ? strtoul(text, NULL, 10) : 0) + 1;
        int len = snprintf(text, sizeof text, "%lu\n", n);
        if (record(log, n, fd, path) != 0 || ftruncate(c, 0) != 0 ||
            pwrite(c, text, (size_t)len, 0) != len)
            note(log, "errors", "%s(%s): cannot write record %lu", name, path, n);
    }
    flock(c, LOCK_UN);
    close(c);
    errno = saved;
    return rc;
}

int fsync(int fd)
{
    return intercept("fsync", fd);
}

int fdatasync(int fd)
{
    return intercept("fdatasync", fd);
}

void sync(void)
{
    const char *log = getenv("POWERCUT_LOG");
    if (log)
        note(log, "unsupported", "sync(2) was called: the model does not cover it");
    void (*real)(void) = (void (*)(void))dlsym(RTLD_NEXT, "sync");
    if (real)
        real();
}

int syncfs(int fd)
{
    char path[PATH_MAX];
    if (watched_path(fd, path, sizeof path))
        note(getenv("POWERCUT_LOG"), "unsupported",
             "syncfs(2) was called on %s: the model does not cover it", path);
    sync_fn real = (sync_fn)dlsym(RTLD_NEXT, "syncfs");
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    return real(fd);
}

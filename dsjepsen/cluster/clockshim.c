/*
 * dsjepsen's clock shim: an LD_PRELOAD library that adds an offset, read from a file, to the
 * wall clock (CLOCK_REALTIME and its variants) a process sees.
 *
 * Why not libfaketime: its initialisation calls dlsym() and malloc(); a program whose malloc
 * itself asks the clock while it initialises (Debian's redis-server, jemalloc built in) then
 * recurses into libfaketime before libfaketime is ready, and hangs. This shim never calls
 * dlsym, malloc or stdio: the real time comes from the clock_gettime system call, the offset
 * file is read with open/read/close system calls into a buffer on the stack, and the only
 * state is a few words updated atomically.
 *
 * The environment, as dsjepsen/cluster/faketime.py sets it:
 *   DSJ_CLOCK_OFFSET_FILE  the file holding the offset in seconds, in the one format the
 *                          harness writes for libfaketime too: "+12.345000", "-0.250000",
 *                          "+0" (a sign, digits, an optional fraction, a newline)
 * The file is read again at most every REREAD_NS of monotonic time, so a new offset applies
 * within a few milliseconds. A missing or unreadable file keeps the last offset read (0 at
 * first): the harness replaces the file by rename, so it is never seen half written.
 *
 * CLOCK_MONOTONIC, CLOCK_BOOTTIME and the CPU clocks are left alone, as on a machine whose
 * wall clock is stepped with `date -s`: timers and timeouts keep true time.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define REREAD_NS 5000000LL /* 5 ms */
#define NS 1000000000LL

static const char *offset_file;
static int file_known;            /* 1 once offset_file was looked up */
static int64_t offset_ns;         /* the offset last read, nanoseconds */
static int64_t read_at_ns = -NS;  /* monotonic time of that read */

static long raw_clock(clockid_t id, struct timespec *ts) {
    return syscall(SYS_clock_gettime, id, ts);
}

static int64_t monotonic_ns(void) {
    struct timespec ts;
    if (raw_clock(CLOCK_MONOTONIC, &ts) != 0) return 0;
    return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

/* "+12.345000" -> 12345000000; 0 with *ok = 0 when the text is not an offset */
static int64_t parse_offset(const char *s, long n, int *ok) {
    long i = 0;
    int neg = 0, digits = 0;
    int64_t sec = 0, frac = 0, scale = NS;
    *ok = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
        if (sec > 100000000000LL) return 0; /* over 3000 years: not ours */
        sec = sec * 10 + (s[i] - '0');
    }
    if (i < n && s[i] == '.') {
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
            if (scale > 1) {
                scale /= 10;
                frac += (s[i] - '0') * scale;
            }
        }
    }
    if (!digits) return 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) i++;
    if (i != n) return 0;
    *ok = 1;
    int64_t v = sec * NS + frac;
    return neg ? -v : v;
}

static void reread(void) {
    if (!__atomic_load_n(&file_known, __ATOMIC_ACQUIRE)) {
        /* getenv walks environ: no allocation, safe at any time after the loader ran */
        __atomic_store_n(&offset_file, getenv("DSJ_CLOCK_OFFSET_FILE"), __ATOMIC_RELAXED);
        __atomic_store_n(&file_known, 1, __ATOMIC_RELEASE);
    }
    const char *path = __atomic_load_n(&offset_file, __ATOMIC_RELAXED);
    if (path == NULL) return;
    int64_t now = monotonic_ns();
    if (now - __atomic_load_n(&read_at_ns, __ATOMIC_RELAXED) < REREAD_NS) return;
    __atomic_store_n(&read_at_ns, now, __ATOMIC_RELAXED);
    long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[64];
    long got = syscall(SYS_read, fd, buf, sizeof buf);
    syscall(SYS_close, fd);
    int ok;
    if (got <= 0 || got == (long)sizeof buf) return;
    int64_t v = parse_offset(buf, got, &ok);
    if (ok) __atomic_store_n(&offset_ns, v, __ATOMIC_RELAXED);
}

static int is_wall_clock(clockid_t id) {
    return id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE || id == CLOCK_TAI
#ifdef CLOCK_REALTIME_ALARM
           || id == CLOCK_REALTIME_ALARM
#endif
        ;
}

static void shift(struct timespec *ts) {
    reread();
    int64_t t = (int64_t)ts->tv_sec * NS + ts->tv_nsec + __atomic_load_n(&offset_ns, __ATOMIC_RELAXED);
    int64_t sec = t / NS, nsec = t % NS;
    if (nsec < 0) {
        nsec += NS;
        sec -= 1;
    }
    ts->tv_sec = (time_t)sec;
    ts->tv_nsec = (long)nsec;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    long r = raw_clock(id, ts);
    if (r != 0) return -1; /* syscall() has set errno */
    if (is_wall_clock(id)) shift(ts);
    return 0;
}

int __clock_gettime(clockid_t id, struct timespec *ts) { return clock_gettime(id, ts); }

int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
    struct timespec ts;
    if (tz != NULL) {
        struct timezone *z = tz;
        z->tz_minuteswest = 0;
        z->tz_dsttime = 0;
    }
    if (tv == NULL) return 0;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return -1;
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

int __gettimeofday(struct timeval *restrict tv, void *restrict tz) { return gettimeofday(tv, tz); }

time_t time(time_t *out) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return (time_t)-1;
    if (out != NULL) *out = ts.tv_sec;
    return ts.tv_sec;
}

int timespec_get(struct timespec *ts, int base) {
    if (base != TIME_UTC || clock_gettime(CLOCK_REALTIME, ts) != 0) return 0;
    return base;
}

/* util.h - logging, errors, parsing and small helpers shared by every
 * repvol program.
 *
 * core/ is the bottom of the library: the event loop (loop.h), framed
 * nonblocking connections (conn.h), the shared listener (listener.h),
 * the worker-thread mailbox (mailbox.h), files and processes
 * (fsutil.h), byte-order accessors (wire.h), crc32c, and the bdev
 * operation table every data-path layer implements (bdev.h).  It calls
 * nothing else in repvol; every other layer may call it.
 *
 * The error convention, for every function new or touched:
 *   - a function returns 0 (or a count, a size, an fd) on success and a
 *     negative errno on failure: "r = f (...); if (r < 0) ...".
 *     Functions returning a pointer return NULL and say why through a
 *     struct error when the caller needs to know.
 *   - where a person must be told why, the caller passes a struct error;
 *     the function that knows the cause fills it once with error_set()
 *     ("return error_set (err, EINVAL, "size %s: not a number", s);"),
 *     and callers on the way up may add context with error_prefix().
 *     The reason is printed once, by whoever decides it is fatal, with
 *     error_msg(); never log it at every level, never print a NULL.
 *   - bdev completions (bdev.h) carry a positive errno in their err
 *     argument, like a blk_status: that is a value, not a return.
 *   - names: X_new/X_free for objects the library allocates,
 *     X_init/X_fini for ones the caller embeds; CLI verbs are cmd_VERB.
 */
#ifndef REPVOL_UTIL_H
#define REPVOL_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/socket.h>

#define ARRAY_SIZE(a) (sizeof (a) / sizeof ((a)[0]))
#define container_of(ptr, type, member) \
  ((type *) ((char *) (ptr) - offsetof (type, member)))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Why something failed, for a person.  code is a positive errno.  512
 * bytes: an object store's message (the key, the server's code and text,
 * the attempts, where the credentials came from) needs them.
 */
struct error {
  int code;
  char msg[512];
};

/* Fill e (which may be NULL) and return -code: "return error_set (...)". */
int error_set (struct error *e, int code, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));
/* Put context in front of e's message: "registry /x: " + "no space". */
void error_prefix (struct error *e, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));
/* e's message, or strerror of its code when no message was set. */
const char *error_msg (const struct error *e);

/* Logging.  Messages go to stderr, one line each, prefixed with the
 * program name set by log_init().  log_debug() prints only when the
 * REPVOL_DEBUG environment variable is set.
 */
void log_init (const char *progname);
void log_info (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
void log_warn (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
void log_error (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
void log_debug (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
extern bool log_debug_enabled;

/* Set-up shared by the servers (repvold, repvol attach): ignore
 * SIGPIPE (a vanished peer is an error return, not a death) and keep
 * request buffers of up to 64 MiB in the heap: glibc would otherwise
 * mmap and munmap every buffer over 128 KiB, paying a page fault per
 * 4 KiB of each 1 MiB request.
 */
void server_process_init (void);

/* Parse a size such as "4096", "64M", "10G", "1T" (binary units, an
 * optional trailing "B" or "iB").  Returns 0 and sets *out, or -1 with
 * errno = EINVAL / ERANGE.
 */
int parse_size (const char *s, uint64_t *out);

/* Format bytes as "64 MiB" style into buf. */
const char *format_size (uint64_t bytes, char *buf, size_t len);
/* true if len bytes of data are all zero (len 0: true). */
bool mem_is_zero (const void *data, size_t len);

/* Parse "ADDR:PORT" (ADDR an IPv4 address, [IPv6] or a host name).  The
 * result is usable with socket(ss->ss_family, ...) / bind / connect.
 */
int parse_hostport (const char *s, struct sockaddr_storage *ss, socklen_t *len);
/* The HOST of "HOST:PORT" or "[V6]:PORT" into host, *port at PORT.
 * 0 or -EINVAL.
 */
int hostport_split (const char *s, char *host, size_t hostlen,
                    const char **port);

/* Parse an unsigned decimal integer within [min, max]. */
int parse_uint (const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* A duration in seconds within [min, max]: a decimal number with an
 * optional unit s, m, h or d ("90", "30s", "5m", "2h").  -1, errno set.
 */
int parse_duration (const char *s, uint64_t min, uint64_t max,
                    uint64_t *out);

/* A volume or server name: 1..63 of [A-Za-z0-9._-], not starting with '.'. */
bool valid_name (const char *s);
/* The name this host goes by in the registry: $REPVOL_HOST (set by
 * "repvol --host NAME" too), else gethostname().  Static storage; read
 * once.
 */
const char *this_host_name (void);

/* Nonblocking TCP / unix sockets. */
int set_nonblock (int fd);
int tcp_listen (const char *hostport);          /* returns fd or -1 */
int tcp_connect (const char *hostport, int timeout_ms); /* blocking, bounded */
int unix_listen (const char *path);              /* mode 0600 */
struct sockaddr_un;
int unix_sockaddr (const char *path, struct sockaddr_un *sun); /* ENAMETOOLONG */
void set_tcp_nodelay (int fd);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t now_ns (void);

/* crc32c (Castagnoli), hardware accelerated where the CPU has SSE4.2. */
uint32_t crc32c (uint32_t crc, const void *buf, size_t len);

#endif

/* ackload.c - an acknowledged-write workload and its checker, for the soak
 * and the crash-point campaign (tests/soak/).  libnbd is the client.
 *
 *   ackload write URI LOG --tag TAG [--blocks N] [--qd D] [--flush-every K]
 *                 [--rate W] [--seconds S] [--reconnect S]
 *   ackload check URI LOG --tag TAG [--blocks N] [--from OFFSET]
 *
 * write: random 4 KiB block writes into blocks [0, N) (default the whole
 * volume), D in flight, a flush after every K writes, at most W writes per
 * second (0: no limit), for S seconds (0: until SIGTERM or SIGINT, which
 * stop it cleanly).  Each block's content is a stamp: magic, TAG, block
 * number, sequence number, filler derived from them, and a checksum of it
 * all, so any block read back names the one write that produced it.  Right
 * after each acknowledgement the line "BLOCK SEQ" is appended to LOG with
 * write(2), so the log holds every acknowledged write even when this
 * process or the server dies the next instant.  Sequence numbers only grow,
 * across runs too: a run starts above every seq the log holds, in a new
 * 2^40 range, so no write of an earlier run (acknowledged or not) can
 * carry a seq of this one.  With --reconnect S, a connection that dies
 * (the attach was killed) is retried for up to S seconds and the writes go
 * on; without it the run ends there.  Writes that fail are not logged as
 * acknowledged; they are counted.
 *
 * check: reads the volume back and, for every block, finds in LOG the
 * newest acknowledged seq; the block must hold that write or a newer one
 * of the same block (a write sent but never acknowledged may or may not
 * have landed: DESIGN.md rule 1 promises only what was acknowledged).
 * Anything older, a bad checksum, another block's or another tag's stamp
 * is a lost acknowledged write.  A block with no acknowledged write must
 * be zeroes or a valid stamp of its own (anything else is garbage, also
 * counted as lost).  With --from OFFSET only the blocks named by log lines
 * at or after that byte offset are read (the log is read whole, so each
 * is still checked against its newest acknowledgement).  The last line is
 * "checked N acknowledged writes (B blocks), M lost" (N: the log lines
 * from OFFSET on); exit 1 when M > 0.  The log's size is printed as
 * "log-offset BYTES" for the next --from.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <libnbd.h>

#define BS 4096
#define MAGIC 0x3144414f4c4b4341ULL     /* "ACKLOAD1" as little-endian bytes */
#define RUN_SHIFT 40

struct stamp {                  /* the first 32 bytes of every block */
  uint64_t magic;
  char tag[8];
  uint64_t block;
  uint64_t seq;
};

static volatile sig_atomic_t stop_requested;

static void
on_stop (int sig)
{
  stop_requested = 1;
}

static uint64_t
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static uint64_t
fnv1a (const unsigned char *p, size_t n)
{
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

static uint64_t
xorshift (uint64_t *s)
{
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static void
make_block (unsigned char *buf, const char *tag, uint64_t block, uint64_t seq)
{
  struct stamp st = { .magic = MAGIC, .block = block, .seq = seq };
  uint64_t s = (seq * 0x9e3779b97f4a7c15ULL) ^ (block + 1), h;
  memcpy (st.tag, tag, strnlen (tag, sizeof st.tag));
  memcpy (buf, &st, sizeof st);
  for (size_t i = sizeof st; i < BS - 8; i += 8) {
    uint64_t v = xorshift (&s);
    memcpy (buf + i, &v, 8);
  }
  h = fnv1a (buf, BS - 8);
  memcpy (buf + BS - 8, &h, 8);
}

/* What a block read back holds: 1 and its stamp when it is one of ours
 * for this tag and block, 0 when it is all zeroes, -1 otherwise. */
static int
read_stamp (const unsigned char *buf, const char *tag, uint64_t block,
            struct stamp *st)
{
  char want[8] = { 0 };
  uint64_t h;
  static const unsigned char zero[BS];

  if (memcmp (buf, zero, BS) == 0)
    return 0;
  memcpy (st, buf, sizeof *st);
  memcpy (&h, buf + BS - 8, 8);
  memcpy (want, tag, strnlen (tag, sizeof want));
  if (st->magic != MAGIC || h != fnv1a (buf, BS - 8) ||
      memcmp (st->tag, want, sizeof want) != 0 || st->block != block)
    return -1;
  return 1;
}

/* ------------------------------------------------------------------ */
/* the log */

struct acklog {
  uint64_t *newest;             /* per block: newest acknowledged seq, 0: none */
  uint64_t nblocks;
  uint64_t max_seq;
  uint64_t lines_from;          /* acknowledgements at or after `from` */
  unsigned char *touched;       /* per block: named at or after `from` */
  off_t size;
};

static int
read_log (const char *path, uint64_t nblocks, off_t from, struct acklog *L)
{
  FILE *f = fopen (path, "r");
  char line[128];
  off_t pos = 0;

  memset (L, 0, sizeof *L);
  L->nblocks = nblocks;
  L->newest = calloc (nblocks ? nblocks : 1, sizeof *L->newest);
  L->touched = calloc (nblocks ? nblocks : 1, 1);
  if (!L->newest || !L->touched)
    return -ENOMEM;
  if (!f)
    return errno == ENOENT ? 0 : -errno;
  while (fgets (line, sizeof line, f)) {
    uint64_t b, s;
    size_t n = strlen (line);
    off_t at = pos;
    pos += n;
    /* A line cut short by a kill mid-write(2) has no newline: it was
     * never an acknowledgement anyone relied on. */
    if (n == 0 || line[n - 1] != '\n' ||
        sscanf (line, "%" SCNu64 " %" SCNu64, &b, &s) != 2)
      continue;
    if (s > L->max_seq)
      L->max_seq = s;
    if (nblocks == 0)
      continue;
    if (b >= nblocks) {
      fprintf (stderr, "ackload: %s: block %" PRIu64 " outside the %" PRIu64
               " checked\n", path, b, nblocks);
      fclose (f);
      return -ERANGE;
    }
    if (s > L->newest[b])
      L->newest[b] = s;
    if (at >= from) {
      L->touched[b] = 1;
      L->lines_from++;
    }
  }
  L->size = pos;
  fclose (f);
  return 0;
}

/* ------------------------------------------------------------------ */
/* write */

struct slot {
  unsigned char buf[BS];
  uint64_t block, seq;
  bool busy, flush;
};

struct writer {
  const char *tag;
  int logfd;
  uint64_t acked, errors, flushes, last_err;
};

static struct writer W;

static int
write_done (void *opaque, int *error)
{
  struct slot *sl = opaque;
  if (*error) {
    W.errors++;
    W.last_err = *error;
  } else if (sl->flush) {
    W.flushes++;
  } else {
    char line[64];
    int n = snprintf (line, sizeof line, "%" PRIu64 " %" PRIu64 "\n",
                      sl->block, sl->seq);
    /* One write(2) per acknowledgement, before anything else happens:
     * the log must never miss an acknowledged write. */
    if (write (W.logfd, line, n) != n) {
      perror ("ackload: log");
      exit (2);
    }
    W.acked++;
  }
  sl->busy = false;
  return 1;
}

static bool
block_busy (const struct slot *slots, int qd, uint64_t block)
{
  for (int i = 0; i < qd; i++)
    if (slots[i].busy && slots[i].block == block)
      return true;
  return false;
}

static struct nbd_handle *
connect_uri (const char *uri, uint64_t deadline)
{
  for (;;) {
    struct nbd_handle *h = nbd_create ();
    if (!h) {
      fprintf (stderr, "ackload: %s\n", nbd_get_error ());
      exit (2);
    }
    if (nbd_connect_uri (h, uri) == 0)
      return h;
    nbd_close (h);
    if (now_ns () >= deadline || stop_requested)
      return NULL;
    usleep (50000);
  }
}

static int
cmd_write (const char *uri, const char *logpath, const char *tag,
           uint64_t nblocks, int qd, int flush_every, double rate,
           double seconds, double reconnect)
{
  struct acklog L;
  struct nbd_handle *h;
  struct slot *slots;
  uint64_t seq, rng, start = now_ns (), end, sent = 0, reconnects = 0;
  uint64_t since_flush = 0, size;
  struct sigaction sa = { .sa_handler = on_stop };
  int r;

  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGINT, &sa, NULL);
  if ((r = read_log (logpath, 0, 0, &L)) < 0) {
    fprintf (stderr, "ackload: %s: %s\n", logpath, strerror (-r));
    return 2;
  }
  seq = ((L.max_seq >> RUN_SHIFT) + 1) << RUN_SHIFT;
  free (L.newest);
  free (L.touched);
  W.tag = tag;
  W.logfd = open (logpath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (W.logfd < 0) {
    perror (logpath);
    return 2;
  }
  h = connect_uri (uri, now_ns () + 10000000000ULL);
  if (!h) {
    fprintf (stderr, "ackload: cannot connect to %s: %s\n", uri, nbd_get_error ());
    return 2;
  }
  size = nbd_get_size (h);
  if (nblocks == 0 || nblocks > size / BS)
    nblocks = size / BS;
  if (nblocks <= (uint64_t) qd) {
    fprintf (stderr, "ackload: %" PRIu64 " blocks cannot keep %d writes in flight\n",
             nblocks, qd);
    return 2;
  }
  slots = calloc (qd + 1, sizeof *slots);
  rng = now_ns () ^ ((uint64_t) getpid () << 32);
  end = seconds > 0 ? start + (uint64_t) (seconds * 1e9) : UINT64_MAX;

  while (!stop_requested && now_ns () < end) {
    bool dead = nbd_aio_is_dead (h) || nbd_aio_is_closed (h);
    if (!dead) {
      /* Fill every free slot, at the rate asked for. */
      for (int i = 0; i < qd; i++) {
        struct slot *sl = &slots[i];
        if (sl->busy)
          continue;
        if (rate > 0 && sent >= (now_ns () - start) / 1e9 * rate)
          break;
        /* NBD orders nothing between requests in flight together: two
         * writes to one block at once could land in either order, so a
         * block is never written again until its write is answered. */
        do
          sl->block = xorshift (&rng) % nblocks;
        while (block_busy (slots, qd, sl->block));
        sl->seq = ++seq;
        sl->flush = false;
        make_block (sl->buf, tag, sl->block, sl->seq);
        sl->busy = true;
        if (nbd_aio_pwrite (h, sl->buf, BS, sl->block * BS,
                            (nbd_completion_callback) { .callback = write_done,
                                                        .user_data = sl }, 0) < 0) {
          sl->busy = false;
          dead = true;
          break;
        }
        sent++;
        if (flush_every > 0 && ++since_flush >= (uint64_t) flush_every &&
            !slots[qd].busy) {
          since_flush = 0;
          slots[qd].flush = true;
          slots[qd].busy = true;
          if (nbd_aio_flush (h, (nbd_completion_callback) {
                .callback = write_done, .user_data = &slots[qd] }, 0) < 0) {
            slots[qd].busy = false;
            dead = true;
            break;
          }
        }
      }
    }
    if (!dead && nbd_poll (h, 100) < 0 && errno != EINTR)
      dead = true;
    if (dead || nbd_aio_is_dead (h) || nbd_aio_is_closed (h)) {
      /* The connection is gone: its commands were retired with an error
       * (not logged).  Start again on a new connection, or stop. */
      nbd_close (h);
      h = NULL;
      for (int i = 0; i <= qd; i++)
        slots[i].busy = false;
      if (reconnect <= 0)
        break;
      h = connect_uri (uri, now_ns () + (uint64_t) (reconnect * 1e9));
      if (!h) {
        fprintf (stderr, "ackload: no connection to %s within %.0f s\n", uri, reconnect);
        break;
      }
      reconnects++;
    }
  }
  if (h) {
    /* Let what is in flight be answered (and logged) before leaving. */
    uint64_t bound = now_ns () + 30000000000ULL;
    while (nbd_aio_in_flight (h) > 0 && now_ns () < bound)
      if (nbd_poll (h, 100) < 0 && errno != EINTR)
        break;
    nbd_shutdown (h, 0);
    nbd_close (h);
  }
  close (W.logfd);
  printf ("ackload %s: %" PRIu64 " writes acknowledged, %" PRIu64 " flushes, %"
          PRIu64 " failed (last errno %" PRIu64 "), %" PRIu64 " reconnects\n",
          tag, W.acked, W.flushes, W.errors, W.last_err, reconnects);
  free (slots);
  return 0;
}

/* ------------------------------------------------------------------ */
/* check */

static void
report (uint64_t *lost, uint64_t b, const char *what, uint64_t want,
        const struct stamp *st, int kind)
{
  if (++*lost <= 20)
    printf ("LOST block %" PRIu64 ": %s: newest acknowledged seq %#" PRIx64
            ", holds %s%#" PRIx64 "\n", b, what, want,
            kind == 0 ? "zeroes " : kind < 0 ? "garbage " : "seq ",
            kind > 0 ? st->seq : 0);
}

static void
check_block (const unsigned char *buf, uint64_t b, const char *tag,
             const struct acklog *L, uint64_t *lost)
{
  struct stamp st;
  int kind = read_stamp (buf, tag, b, &st);
  uint64_t want = L->newest[b];

  if (want) {
    if (kind <= 0 || st.seq < want)
      report (lost, b, "acknowledged write lost", want, &st, kind);
  } else if (kind < 0) {
    report (lost, b, "never acknowledged, not ours", 0, &st, kind);
  }
}

static int
cmd_check (const char *uri, const char *logpath, const char *tag,
           uint64_t nblocks, off_t from)
{
  struct acklog L;
  struct nbd_handle *h = connect_uri (uri, now_ns () + 10000000000ULL);
  uint64_t lost = 0, checked_blocks = 0, size;
  static unsigned char buf[1 << 20];
  int r;

  if (!h) {
    fprintf (stderr, "ackload: cannot connect to %s: %s\n", uri, nbd_get_error ());
    return 2;
  }
  size = nbd_get_size (h);
  if (nblocks == 0 || nblocks > size / BS)
    nblocks = size / BS;
  /* The log is read before any block: a write acknowledged after this
   * point only makes a block newer, which the check accepts. */
  if ((r = read_log (logpath, nblocks, from, &L)) < 0) {
    fprintf (stderr, "ackload: %s: %s\n", logpath, strerror (-r));
    return 2;
  }
  /* 1 MiB at a time, skipping the pieces that hold no block to check
   * (with --from): one read per MiB costs less than one per block. */
  for (uint64_t b = 0; b < nblocks; b += sizeof buf / BS) {
    uint64_t n = nblocks - b < sizeof buf / BS ? nblocks - b : sizeof buf / BS;
    bool any = from == 0;
    for (uint64_t i = 0; i < n && !any; i++)
      any = L.touched[b + i];
    if (!any)
      continue;
    if (nbd_pread (h, buf, n * BS, b * BS, 0) < 0) {
      fprintf (stderr, "ackload: read at block %" PRIu64 ": %s\n", b, nbd_get_error ());
      return 2;
    }
    for (uint64_t i = 0; i < n; i++) {
      if (from != 0 && !L.touched[b + i])
        continue;
      check_block (buf + i * BS, b + i, tag, &L, &lost);
      checked_blocks++;
    }
  }
  nbd_shutdown (h, 0);
  nbd_close (h);
  printf ("log-offset %lld\n", (long long) L.size);
  printf ("checked %" PRIu64 " acknowledged writes (%" PRIu64 " blocks), %"
          PRIu64 " lost\n", L.lines_from, checked_blocks, lost);
  free (L.newest);
  free (L.touched);
  return lost ? 1 : 0;
}

/* ------------------------------------------------------------------ */

static int
usage (void)
{
  fprintf (stderr,
           "usage: ackload write URI LOG --tag TAG [--blocks N] [--qd D] [--flush-every K]\n"
           "                     [--rate W] [--seconds S] [--reconnect S]\n"
           "       ackload check URI LOG --tag TAG [--blocks N] [--from OFFSET]\n");
  return 2;
}

int
main (int argc, char **argv)
{
  const char *tag = NULL;
  uint64_t nblocks = 0;
  int qd = 16, flush_every = 64;
  double rate = 0, seconds = 0, reconnect = 0;
  long long from = 0;

  if (argc < 4)
    return usage ();
  for (int i = 4; i < argc; i += 2) {
    const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    char *end;
    if (!v)
      return usage ();
    errno = 0;
    if (strcmp (o, "--tag") == 0) {
      tag = v;
      continue;
    }
    double d = strtod (v, &end);
    if (errno || *end || d < 0) {
      fprintf (stderr, "ackload: cannot parse %s %s\n", o, v);
      return 2;
    }
    if (strcmp (o, "--blocks") == 0) nblocks = d;
    else if (strcmp (o, "--qd") == 0) qd = d;
    else if (strcmp (o, "--flush-every") == 0) flush_every = d;
    else if (strcmp (o, "--rate") == 0) rate = d;
    else if (strcmp (o, "--seconds") == 0) seconds = d;
    else if (strcmp (o, "--reconnect") == 0) reconnect = d;
    else if (strcmp (o, "--from") == 0) from = d;
    else return usage ();
  }
  if (!tag || !*tag || strlen (tag) > 8 || qd < 1 || qd > 256)
    return usage ();
  setvbuf (stdout, NULL, _IOLBF, 0);
  if (strcmp (argv[1], "write") == 0)
    return cmd_write (argv[2], argv[3], tag, nblocks, qd, flush_every, rate,
                      seconds, reconnect);
  if (strcmp (argv[1], "check") == 0)
    return cmd_check (argv[2], argv[3], tag, nblocks, from);
  return usage ();
}

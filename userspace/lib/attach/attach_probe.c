/* attach_probe.c - "contents" on the control socket: what is on an
 * attached volume, for "repvol status".
 *
 * repvold never lets an admin connection read an attached volume's data
 * (docs/DESIGN.md, "Trust"), so the attach, which serves the volume,
 * reads its first and last MiB itself, through what it serves (a->cow:
 * a restore's hydration answers too), runs libblkid over them
 * (replica/probe.h) and answers with one JSON line, then "ok".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach/attach_internal.h"
#include "replica/probe.h"

struct probe_job {
  struct attach *a;
  struct control_req *req;
  struct bdev_io io[2];
  void *buf[2];
  uint32_t head, tail_len;
  uint64_t tail_off;
  int pending, err;
};

static void
probe_finish (struct probe_job *j)
{
  struct volume_contents c;
  char *line;

  if (j->err) {
    memset (&c, 0, sizeof c);
    snprintf (c.why, sizeof c.why, "reading the volume: %s",
              strerror (j->err));
  }
  else
    probe_image_contents (j->a->vol.size, j->buf[0], j->head, j->buf[1],
                          j->tail_off, j->tail_len, &c);
  line = volume_contents_to_json (&c);
  if (line)
    control_reply (j->req, line);
  control_finish (j->req, line ? "ok" : "error: out of memory");
  free (line);
  free (j->buf[0]);
  free (j->buf[1]);
  free (j);
}

static void
probe_drop (struct probe_job *j, int err)
{
  if (err && !j->err)
    j->err = err;
  if (--j->pending == 0)
    probe_finish (j);
}

static void
probe_read_done (struct bdev_io *io, int err)
{
  probe_drop (io->opaque, err);
}

bool
attach_probe_control (struct attach *a, struct control_req *req,
                      const char *line)
{
  struct probe_job *j;
  uint32_t len[2];

  if (strcmp (line, "contents") != 0)
    return false;
  j = calloc (1, sizeof *j);
  if (!j) {
    control_finish (req, "error: out of memory");
    return true;
  }
  j->a = a;
  j->req = req;
  probe_geometry (a->vol.size, a->vol.block_size, &j->head, &j->tail_off,
                  &j->tail_len);
  len[0] = j->head;
  len[1] = j->tail_len;
  for (int i = 0; i < 2; i++)
    if (len[i] && posix_memalign (&j->buf[i], 4096, len[i]) != 0) {
      j->buf[i] = NULL;
      j->err = ENOMEM;
    }
  j->pending = 1;               /* ours, until both are submitted */
  for (int i = 0; i < 2 && !j->err; i++) {
    if (!len[i])
      continue;
    j->pending++;
    j->io[i].done = probe_read_done;
    j->io[i].opaque = j;
    bdev_read (a->cow, &j->io[i], i ? j->tail_off : 0, len[i], j->buf[i], 0);
  }
  probe_drop (j, 0);
  return true;
}

/* frontend.c - the table of frontends and the generic start/stop/free. */
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>

#include "core/util.h"
#include "frontend/frontend.h"

/* Adding a frontend: implement struct frontend_ops in its own file,
 * declare it in frontend.h and list it here.
 */
static const struct frontend_ops *const frontends[] = {
  &nbd_frontend_ops,
  &ublk_frontend_ops,
  &nbd_kernel_frontend_ops,
  &kmod_frontend_ops,
};

const struct frontend_ops *
frontend_find (const char *name)
{
  size_t i;

  for (i = 0; i < ARRAY_SIZE (frontends); i++)
    if (strcmp (frontends[i]->name, name) == 0)
      return frontends[i];
  return NULL;
}

struct frontend *
frontend_start (const char *name, struct loop *loop, struct bdev *dev,
                const char *export_name, const char *spec,
                struct tls_creds *tls)
{
  const struct frontend_ops *ops = frontend_find (name);
  struct frontend *f;

  if (!ops) {
    log_error ("unknown frontend '%s'", name);
    return NULL;
  }
  f = calloc (1, sizeof *f);
  if (!f || !(f->export_name = strdup (export_name))) {
    log_error ("%s frontend: out of memory", name);
    free (f);
    return NULL;
  }
  f->ops = ops;
  f->loop = loop;
  f->dev = dev;
  f->tls = tls;
  if (ops->start (f, spec) < 0) {
    ops->free (f);
    free (f->export_name);
    free (f);
    return NULL;
  }
  return f;
}

void
frontend_stop (struct frontend *f, void (*stopped) (void *opaque),
               void *opaque)
{
  f->ops->stop (f, stopped, opaque);
}

int
frontend_resized (struct frontend *f, const char **when)
{
  *when = "";
  return f->ops->resized ? f->ops->resized (f, when) : -ENOTSUP;
}

void
frontend_free (struct frontend *f)
{
  if (!f)
    return;
  f->ops->free (f);
  free (f->export_name);
  free (f);
}

/* The best kernel block device: ublk where the kernel has it, else
 * repvol.ko (recoverable like ublk, but a module of ours to load), else
 * the kernel's nbd driver; the probes (ublk_ctrl.c, kmod.c,
 * nbd_kernel.c) say why not.
 */
const char *
frontend_pick_device (struct error *err, char *why, size_t whylen)
{
  struct error ublk_err = { 0 }, kmod_err = { 0 }, nbd_err = { 0 };
  char dummy[1];

  if (!why) {
    why = dummy;
    whylen = sizeof dummy;
  }
  why[0] = '\0';
  if (ublk_probe (&ublk_err) == 0)
    return "ublk";
  if (kmod_probe (&kmod_err) == 0) {
    snprintf (why, whylen, "ublk: %s", error_msg (&ublk_err));
    return "kmod";
  }
  if (nbd_kernel_probe (&nbd_err) == 0) {
    snprintf (why, whylen, "ublk: %s; kmod: %s", error_msg (&ublk_err),
              error_msg (&kmod_err));
    return "nbd-kernel";
  }
  error_set (err, ENODEV, "ublk: %s; kmod: %s; nbd-kernel: %s",
             error_msg (&ublk_err), error_msg (&kmod_err),
             error_msg (&nbd_err));
  return NULL;
}

static const char nbd_kernel_desc[] = "nbd-kernel ", kmod_desc[] = "kmod /dev/";

int
frontend_release_stale (const char *desc, const char *vol, long pid,
                        char *where, size_t wherelen, struct error *err)
{
  if (strncmp (desc, nbd_kernel_desc, sizeof nbd_kernel_desc - 1) == 0) {
    snprintf (where, wherelen, "%s", desc + sizeof nbd_kernel_desc - 1);
    where[strcspn (where, ",")] = '\0';      /* ",dead-timeout=S" */
    return nbd_kernel_disconnect_stale (where, vol, pid, err);
  }
  /* "kmod queues=..." died before it had a device: nothing to free. */
  if (strncmp (desc, kmod_desc, sizeof kmod_desc - 1) == 0) {
    snprintf (where, wherelen, "%s", desc + 5);
    return kmod_release_stale (where, vol, pid, err);
  }
  return 0;                     /* sockets go with their process */
}

bool
frontend_may_recover (const char *name, const char *spec, const char *desc)
{
  const char *dev;
  size_t len;

  /* repvol.ko: the registry's device, checked against the state file
   * by the frontend (kmod.c, try_recover).
   */
  if (strcmp (name, "kmod") == 0)
    return strncmp (desc, kmod_desc, sizeof kmod_desc - 1) == 0;
  if (strcmp (name, "nbd-kernel") != 0 ||
      strncmp (desc, nbd_kernel_desc, sizeof nbd_kernel_desc - 1) != 0)
    return false;
  dev = desc + sizeof nbd_kernel_desc - 1;
  len = strcspn (dev, ",");
  /* auto finds it through the state file; /dev/nbdN only if the same. */
  return strncmp (spec, "auto", 4) == 0 ? spec[4] == '\0' || spec[4] == ','
         : strncmp (spec, dev, len) == 0 &&
           (spec[len] == '\0' || spec[len] == ',');
}

const char *
frontend_start_spec (const char *name, const char *spec, const char *prev,
                     char *buf, size_t len)
{
  if (!name || strcmp (name, "kmod") != 0)
    return spec;
  snprintf (buf, len, "%s%srecover=%s", spec ? spec : "",
            spec && spec[0] ? "," : "",
            prev && frontend_may_recover (name, spec, prev) ? prev + 5 : "none");
  return buf;
}

bool
frontend_queue_option (const char *tok, unsigned max_queues,
                       unsigned max_depth, unsigned *queues, unsigned *depth)
{
  uint64_t v;

  if (strncmp (tok, "queues=", 7) == 0 &&
      parse_uint (tok + 7, 1, max_queues, &v) == 0)
    *queues = v;
  else if (strncmp (tok, "depth=", 6) == 0 &&
           parse_uint (tok + 6, 1, max_depth, &v) == 0)
    *depth = v;
  else
    return false;
  return true;
}

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

int
frontend_release_stale (const char *desc, long pid, char *where,
                        size_t wherelen, struct error *err)
{
  static const char nbd_kernel[] = "nbd-kernel ", kmod[] = "kmod ";

  if (strncmp (desc, nbd_kernel, sizeof nbd_kernel - 1) == 0) {
    snprintf (where, wherelen, "%s", desc + sizeof nbd_kernel - 1);
    return nbd_kernel_disconnect_stale (where, pid, err);
  }
  if (strncmp (desc, kmod, sizeof kmod - 1) == 0) {
    snprintf (where, wherelen, "%s", desc + sizeof kmod - 1);
    return kmod_release_stale (where, pid, err);
  }
  return 0;                     /* sockets go with their process */
}

bool
frontend_takes_over (const char *name, const char *desc)
{
  return name && strcmp (name, "kmod") == 0 && strncmp (desc, "kmod ", 5) == 0;
}

const char *
frontend_start_spec (const char *name, const char *spec, const char *prev,
                     char *buf, size_t len)
{
  if (!name || strcmp (name, "kmod") != 0)
    return spec;
  snprintf (buf, len, "%s%srecover=%s", spec ? spec : "",
            spec && spec[0] ? "," : "",
            prev && frontend_takes_over (name, prev)
            && strncmp (prev + 5, "/dev/", 5) == 0 ? prev + 5 : "none");
  return buf;
}
